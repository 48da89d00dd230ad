"""Build the name-record backend an experiment's spec asks for."""

from __future__ import annotations

import os
from pathlib import Path

from srl_runtime.config.experiment import NameRecordsSpec
from srl_runtime.config.worker_env import NAME_RECORDS_REDIS as REDIS_ADDRESS_ENV
from srl_runtime.config.worker_env import NAME_RECORDS_REDIS_PASSWORD as REDIS_PASSWORD_ENV
from srl_runtime.name_records.base import NameRecords


def make_name_records(spec: NameRecordsSpec, run_dir: Path | None) -> NameRecords:
    """auto: redis when an address is known (spec or $SRL_NAME_RECORDS_REDIS), else a directory in run_dir.

    The Redis password, if any, comes only from $SRL_NAME_RECORDS_REDIS_PASSWORD (in a pod: a
    secretKeyRef to the experiment's `<exp>-redis-auth` Secret), never from the document.
    """
    backend = spec.backend
    redis_address = spec.redis_address or os.environ.get(REDIS_ADDRESS_ENV)
    if backend == "auto":
        backend = "redis" if redis_address else "directory"
    if backend == "memory":
        from srl_runtime.name_records.memory import MemoryNameRecords

        return MemoryNameRecords()
    if backend == "directory":
        from srl_runtime.name_records.directory import DirectoryNameRecords

        if spec.path is not None:
            path = Path(spec.path)
        elif run_dir is not None:
            path = Path(run_dir) / "name_records"
        else:
            raise ValueError("nameRecords.path: the directory backend needs a path or a run directory")
        return DirectoryNameRecords(path)
    if backend == "redis":
        from srl_runtime.name_records.redis_backend import RedisNameRecords

        if not redis_address:
            raise ValueError(
                f"nameRecords.redisAddress: the redis backend needs host:port (or ${REDIS_ADDRESS_ENV})"
            )
        return RedisNameRecords(redis_address, password=os.environ.get(REDIS_PASSWORD_ENV) or None)
    raise ValueError(f"nameRecords.backend: unknown backend {backend!r}")
