"""Build the parameter DB an experiment's spec asks for."""

from __future__ import annotations

import os
from pathlib import Path

from srl_runtime.config.experiment import ParameterDBSpec
from srl_runtime.config.worker_env import MONGO_URI as MONGODB_URI_ENV
from srl_runtime.param_db.base import ParameterDB
from srl_runtime.param_db.filesystem import FilesystemParameterDB
from srl_runtime.param_db.metadata import MetadataStore


def make_metadata_store(spec: ParameterDBSpec, path: Path, *, collection_prefix: str = "") -> MetadataStore:
    """SQLite inside `path`, or MongoDB (URI from the spec or $SRL_MONGO_URI, e.g. from a Secret)."""
    if spec.metadata == "sqlite":
        from srl_runtime.param_db.sqlite_store import SQLiteMetadataStore

        return SQLiteMetadataStore(path / "metadata.sqlite")
    from srl_runtime.param_db.mongo_store import MongoMetadataStore

    mongo = spec.mongodb
    uri = (mongo.uri if mongo else None) or os.environ.get(MONGODB_URI_ENV)
    if not uri:
        raise ValueError(f"parameterDB.mongodb.uri: needed for mongodb metadata (or ${MONGODB_URI_ENV})")
    return MongoMetadataStore(uri, mongo.database if mongo else "srl", collection_prefix)


def make_parameter_db(
    spec: ParameterDBSpec, run_dir: Path, *, collection_prefix: str = ""
) -> ParameterDB:
    """The filesystem parameter DB at spec.path (default run_dir/params) with its metadata store."""
    path = Path(spec.path) if spec.path else Path(run_dir) / "params"
    path.mkdir(parents=True, exist_ok=True)
    store = make_metadata_store(spec, path, collection_prefix=collection_prefix)
    return FilesystemParameterDB(path, store, keep_versions=spec.keep_versions)
