"""Metadata in MongoDB (any MongoDB-wire server): the cluster's store, shared by every pod.

Only plain CRUD with simple filters and sorts is used, so FerretDB and managed MongoDB-compatible
services work as well as MongoDB itself.
"""

from __future__ import annotations

import time
from typing import Any

import pymongo

from srl_runtime.param_db.metadata import BestBy, MetadataStore


class MongoMetadataStore(MetadataStore):
    """Collections `<prefix>versions`, `<prefix>tags`, `<prefix>evals` in `database`."""

    def __init__(
        self,
        uri: str,
        database: str = "srl",
        collection_prefix: str = "",
        *,
        timeout_ms: int = 10_000,
    ) -> None:
        self._client: pymongo.MongoClient = pymongo.MongoClient(
            uri,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            retryWrites=True,
            retryReads=True,
        )
        db = self._client[database]
        self._versions = db[f"{collection_prefix}versions"]
        self._tags = db[f"{collection_prefix}tags"]
        self._evals = db[f"{collection_prefix}evals"]

    def record_version(
        self,
        version: int,
        *,
        train_step: int,
        timestamp: float,
        episode_return: float | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Insert or overwrite the record of `version`."""
        doc = {
            "train_step": int(train_step),
            "timestamp": float(timestamp),
            "episode_return": None if episode_return is None else float(episode_return),
            "extra": extra or {},
        }
        self._versions.replace_one({"_id": int(version)}, doc, upsert=True)

    def set_tag(self, tag: str, version: int) -> None:
        """Record that `tag` now names `version`."""
        self._tags.replace_one({"_id": tag}, {"version": int(version)}, upsert=True)

    def remove_tag(self, tag: str) -> None:
        """Forget `tag`."""
        self._tags.delete_one({"_id": tag})

    def add_eval_result(self, version: int, tag: str, mean_return: float, episodes: int) -> None:
        """Append one evaluation result."""
        self._evals.insert_one(
            {
                "version": int(version),
                "tag": tag,
                "mean_return": float(mean_return),
                "episodes": int(episodes),
                "timestamp": time.time(),
            }
        )

    def get(self, version: int) -> dict[str, Any]:
        """The full record of `version`; raises KeyError."""
        version = int(version)
        doc = self._versions.find_one({"_id": version})
        evals = [
            {k: e[k] for k in ("tag", "mean_return", "episodes", "timestamp")}
            for e in self._evals.find({"version": version}).sort("timestamp", pymongo.ASCENDING)
        ]
        if doc is None and not evals:
            raise KeyError(version)
        doc = doc or {}
        return {
            "version": version,
            "train_step": doc.get("train_step"),
            "timestamp": doc.get("timestamp"),
            "episode_return": doc.get("episode_return"),
            "extra": doc.get("extra", {}),
            "tags": sorted(t["_id"] for t in self._tags.find({"version": version})),
            "evals": evals,
        }

    def query_best(self, by: BestBy = "eval_return") -> dict[str, Any] | None:
        """The record with the highest eval mean return (or episode return)."""
        if by == "eval_return":
            cursor = self._evals.find({}).sort(
                [("mean_return", pymongo.DESCENDING), ("version", pymongo.DESCENDING)]
            )
            key = "version"
        elif by == "episode_return":
            cursor = self._versions.find({"episode_return": {"$ne": None}}).sort(
                [("episode_return", pymongo.DESCENDING), ("_id", pymongo.DESCENDING)]
            )
            key = "_id"
        else:
            raise ValueError(f"query_best: unknown key {by!r}")
        for doc in cursor.limit(1):
            return self.get(doc[key])
        return None

    def list_versions(self) -> list[int]:
        """Recorded versions, ascending."""
        return [d["_id"] for d in self._versions.find({}, {"_id": 1}).sort("_id", pymongo.ASCENDING)]

    def close(self) -> None:
        """Close the client."""
        self._client.close()
