"""Exception hierarchy of ddb_core.

Every error a user can cause (bad input, missing weights, a misused stage) is a ``DDBError``
subclass, so a caller (the CLI, the app) can catch one class and show the message as it is.
Messages name the file, row or argument at fault.
"""

from __future__ import annotations


class DDBError(Exception):
    """Base class of every error ddb_core raises on purpose."""


class ConfigError(DDBError, ValueError):
    """A configuration value is out of range or inconsistent (names the field and its value)."""


class DatasetError(DDBError):
    """A dataset cannot be imported: missing columns, unknown labels, unreadable files, …"""


class ProjectError(DDBError):
    """A project folder or database is missing, locked or inconsistent."""


class ModelError(DDBError):
    """A checkpoint cannot be built or loaded (wrong architecture, class count, missing weights)."""


class WeightsUnavailableError(ModelError):
    """Pretrained weights are not on disk and cannot be downloaded (offline)."""


class Cancelled(DDBError):
    """Long work was cancelled by the user between two units of work; its progress is kept."""


def list_rows(rows: list[str], what: str, limit: int = 20) -> str:
    """Format a list of offending rows: the first ``limit`` of them and how many there are."""
    shown = "\n".join(f"  - {r}" for r in rows[:limit])
    more = f"\n  … and {len(rows) - limit} more" if len(rows) > limit else ""
    return f"{what} ({len(rows)} row{'s' if len(rows) != 1 else ''}):\n{shown}{more}"
