"""DDB Studio core: Diffusion Driven Balancing of biased image datasets.

Importing this package stays light: torch, torchvision and every heavy model library
(diffusers, transformers, segment_anything, captum) are imported inside the functions that
need them. Stage modules: ``demo_data`` (offline benchmark), ``datasets`` (import),
``store`` (project DB), ``models`` (classifiers), ``training`` (ERM), ``evaluation`` (group
metrics), ``api`` (the facade the CLI and the app call).
"""

from .errors import Cancelled, ConfigError, DatasetError, DDBError, ModelError, ProjectError, WeightsUnavailableError

__version__ = "0.1.0"

__all__ = ["DDBError", "ConfigError", "DatasetError", "ProjectError", "ModelError", "WeightsUnavailableError",
           "Cancelled", "__version__"]
