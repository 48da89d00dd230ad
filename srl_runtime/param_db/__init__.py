"""Parameter DB: versioned, tagged policy checkpoints on a filesystem, metadata in SQLite or MongoDB."""

from srl_runtime.param_db.base import (
    LATEST,
    Checkpoint,
    ParameterDB,
    UnreadableCheckpoint,
    VersionNotFound,
)
from srl_runtime.param_db.factory import make_parameter_db
from srl_runtime.param_db.filesystem import FilesystemParameterDB
from srl_runtime.param_db.metadata import MetadataStore

__all__ = [
    "LATEST",
    "Checkpoint",
    "FilesystemParameterDB",
    "MetadataStore",
    "ParameterDB",
    "UnreadableCheckpoint",
    "VersionNotFound",
    "make_parameter_db",
]
