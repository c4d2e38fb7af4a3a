"""DDB Studio core: Diffusion Driven Balancing of biased image datasets.

Importing this package stays light: torch, torchvision and every heavy model library
(diffusers, transformers, segment_anything, captum) are imported inside the functions that
need them. The code is in wings named for what they hold (docs/architecture.md): ``project``, ``data``,
``classifiers``, ``method``, ``pipeline``, ``curation``, ``demo``, ``bench`` and ``cli``; ``api`` is the facade
that the command line and the app call.
"""

from .project.errors import Cancelled, ConfigError, DatasetError, DDBError, ModelError, ProjectError, WeightsUnavailableError

__version__ = "0.1.0"

__all__ = ["DDBError", "ConfigError", "DatasetError", "ProjectError", "ModelError", "WeightsUnavailableError",
           "Cancelled", "__version__"]
