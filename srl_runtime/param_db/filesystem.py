"""Parameter DB on a filesystem (local disk, or a PVC shared over NFS by several nodes).

Layout under `path`:
    versions/<version, 12 digits>.pt   torch.save({"version", "state", "metadata"}); loaded with
                                       torch.load(weights_only=True): tensors, numeric numpy arrays and
                                       plain values only; a file that would run code is refused
                                       (UnreadableCheckpoint) and counted in rejected_checkpoints
    tags/<percent-encoded tag>         the version number as text
    tmp/                               files being written; renamed into place when complete
Every file is written to tmp/ and then os.replace()d into place, which is atomic on POSIX and NFS,
so a reader sees a whole checkpoint or none. Deleting a file a reader has open is safe locally; on
NFS another host may get ESTALE, which is treated like a garbage-collected version.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from srl_runtime.param_db.base import (
    LATEST,
    Checkpoint,
    ParameterDB,
    UnreadableCheckpoint,
    VersionNotFound,
)
from srl_runtime.param_db.metadata import MetadataStore

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

_SUFFIX = ".pt"
_STALE_TMP_SECONDS = 3600.0  # temp files older than this were left by a crashed writer
_GONE_ERRNOS = {errno.ENOENT, errno.ESTALE}


class FilesystemParameterDB(ParameterDB):
    """Checkpoints as files with atomic write-then-rename; tags as small files; metadata in a store."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        metadata_store: MetadataStore | None = None,
        keep_versions: int = 8,
        *,
        fsync: bool = True,
        map_location: str | torch.device | None = "cpu",
        poll_interval: float = 0.05,
    ) -> None:
        if keep_versions < 1:
            raise ValueError("keep_versions must be >= 1")
        self.path = Path(path)
        self._versions_dir = self.path / "versions"
        self._tags_dir = self.path / "tags"
        self._tmp_dir = self.path / "tmp"
        for d in (self._versions_dir, self._tags_dir, self._tmp_dir):
            d.mkdir(parents=True, exist_ok=True)
        if metadata_store is None:
            from srl_runtime.param_db.sqlite_store import SQLiteMetadataStore

            metadata_store = SQLiteMetadataStore(self.path / "metadata.sqlite")
        self.metadata = metadata_store
        self.keep_versions = keep_versions
        self.fsync = fsync
        self.map_location = map_location
        self.poll_interval = poll_interval
        self.rejected_checkpoints = 0
        self._refused: dict[int, str] = {}  # version -> why it was refused (each file is counted once)

    # ---- paths and atomic writes
    def _version_file(self, version: int) -> Path:
        if version < 0:
            raise ValueError(f"version must be >= 0, got {version}")
        return self._versions_dir / f"{version:012d}{_SUFFIX}"

    def _tag_file(self, tag: str) -> Path:
        if not tag:
            raise ValueError("empty tag")
        return self._tags_dir / quote(tag, safe="")

    def _atomic_write(self, target: Path, write: Any, durable: bool = True) -> None:
        """Write via `write(file)` to a temp file, then rename it over `target`."""
        tmp = self._tmp_dir / f"{target.name}.{uuid.uuid4().hex}"
        try:
            with open(tmp, "wb") as f:
                write(f)
                if self.fsync and durable:
                    f.flush()
                    os.fsync(f.fileno())  # the rename must not reach disk before the data does
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    # ---- API
    def push(
        self,
        state: dict[str, Any],
        version: int,
        *,
        tags: Iterable[str] = (),
        metadata: dict[str, Any] | None = None,
        durable: bool = True,
    ) -> None:
        """Store `state` as `version`; tag it latest and each of `tags`.

        durable=False skips fsync: readers still never see a partial file (rename is atomic), but
        a machine crash may lose it — right for the many short-lived versions actors pull, not for
        a resumable checkpoint.
        """
        version = int(version)
        metadata = dict(metadata or {})
        import torch  # lazily: importing the package (e.g. for metadata only) stays light

        _check_data(state, "state")
        _check_data(metadata, "metadata")

        payload = {"version": version, "state": state, "metadata": metadata}
        self._atomic_write(self._version_file(version), lambda f: torch.save(payload, f), durable)
        self._meta(
            "record_version",
            version,
            train_step=int(metadata.get("train_step", version)),
            timestamp=time.time(),
            episode_return=metadata.get("episode_return"),
            extra=_jsonable({k: v for k, v in metadata.items() if k not in ("train_step", "episode_return")}),
        )
        # Other tags first, latest last: whoever follows latest finds the other tags already set.
        for t in [*dict.fromkeys(t for t in tags if t != LATEST), LATEST]:
            self.tag(version, t, durable=durable)

    def get(
        self,
        *,
        version: int | None = None,
        tag: str = LATEST,
        block: bool = False,
        timeout: float | None = None,
    ) -> Checkpoint:
        """The checkpoint of `version`, else of `tag`; with block, wait until it exists."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                return self._get_once(version, tag)
            except VersionNotFound:
                if not block or (deadline is not None and time.monotonic() >= deadline):
                    raise
            time.sleep(self.poll_interval)

    def _get_once(self, version: int | None, tag: str) -> Checkpoint:
        if version is not None:
            return self._load(int(version))
        v = self._read_tag(tag)
        try:
            return self._load(v)
        except VersionNotFound:
            # Garbage-collected between reading the tag and opening the file: the tag has moved on.
            v2 = self._read_tag(tag)
            if v2 == v:
                raise
            return self._load(v2)

    def _load(self, version: int) -> Checkpoint:
        import torch

        if version in self._refused:
            raise UnreadableCheckpoint(self._refused[version])
        path = self._version_file(version)
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed below
        except OSError as e:
            if e.errno in _GONE_ERRNOS:
                raise VersionNotFound(f"version {version}") from None
            raise
        try:
            with f, torch.serialization.safe_globals(_numpy_globals()):
                # weights_only: tensors, numpy arrays and plain values only. The volume may be shared
                # with other experiments, so a file that asks the unpickler to call anything else is refused.
                payload = torch.load(f, map_location=self.map_location, weights_only=True)
        except OSError as e:
            if e.errno == errno.ESTALE:  # NFS: collected by another host while we read it
                raise VersionNotFound(f"version {version}") from None
            self._refuse(version, f"{path}: not a loadable checkpoint ({type(e).__name__}: {_first_line(e)})")
        except Exception as e:  # noqa: BLE001 - unpickling errors come in many types
            self._refuse(version, f"{path}: not a loadable checkpoint ({type(e).__name__}: {_first_line(e)})")
        if not (
            isinstance(payload, dict)
            and type(payload.get("version")) is int
            and isinstance(payload.get("state"), dict)
            and isinstance(payload.get("metadata"), dict)
        ):
            self._refuse(version, f"{path}: not a checkpoint (expected version, state, metadata)")
        return Checkpoint(version=payload["version"], state=payload["state"], metadata=payload["metadata"])

    def _refuse(self, version: int, why: str) -> None:
        self._refused[version] = why
        self.rejected_checkpoints += 1
        log.warning("parameter DB: refused %s", why)
        raise UnreadableCheckpoint(why)

    def _read_tag(self, tag: str) -> int:
        try:
            text = self._tag_file(tag).read_text()
        except OSError as e:
            if e.errno in _GONE_ERRNOS:
                raise VersionNotFound(f"tag {tag!r}") from None
            raise
        try:
            return int(text)
        except ValueError:
            raise VersionNotFound(f"tag {tag!r} holds {text!r}") from None

    def latest_version(self) -> int | None:
        """Version tagged latest (reads one tiny file)."""
        try:
            return self._read_tag(LATEST)
        except VersionNotFound:
            return None

    def tag(self, version: int, tag: str, *, durable: bool = True) -> None:
        """Point `tag` at `version`; raises VersionNotFound if it is not stored."""
        version = int(version)
        if not self._version_file(version).exists():
            raise VersionNotFound(f"version {version}")
        self._atomic_write(self._tag_file(tag), lambda f: f.write(str(version).encode()), durable)
        self._meta("set_tag", tag, version)

    def untag(self, tag: str) -> None:
        """Remove `tag`."""
        self._tag_file(tag).unlink(missing_ok=True)
        self._meta("remove_tag", tag)

    def versions(self) -> list[int]:
        """Stored versions, ascending."""
        out = []
        for name in os.listdir(self._versions_dir):
            if name.endswith(_SUFFIX) and name[: -len(_SUFFIX)].isdigit():
                out.append(int(name[: -len(_SUFFIX)]))
        return sorted(out)

    def tags(self) -> dict[str, int]:
        """Every tag and its version."""
        out = {}
        for name in os.listdir(self._tags_dir):
            tag = unquote(name)
            try:
                out[tag] = self._read_tag(tag)
            except VersionNotFound:
                continue  # removed while listing
        return out

    def gc(self) -> int:
        """Delete untagged versions beyond the newest keep_versions; returns the count deleted."""
        tagged = set(self.tags().values())
        versions = self.versions()
        keep = set(versions[-self.keep_versions :]) | tagged
        deleted = 0
        for v in versions:
            if v in keep:
                continue
            try:
                self._version_file(v).unlink()
                deleted += 1
            except FileNotFoundError:
                pass  # another process collected it
        self._remove_stale_tmp()
        return deleted

    def _remove_stale_tmp(self) -> None:
        cutoff = time.time() - _STALE_TMP_SECONDS
        for entry in os.scandir(self._tmp_dir):
            try:
                if entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
            except FileNotFoundError:
                pass

    def close(self) -> None:
        """Close the metadata store."""
        self.metadata.close()

    def _meta(self, method: str, *args: Any, **kwargs: Any) -> None:
        # The checkpoint is already safe on disk: a metadata outage must not fail a trainer's push.
        try:
            getattr(self.metadata, method)(*args, **kwargs)
        except Exception:  # noqa: BLE001
            log.warning("parameter DB metadata %s failed", method, exc_info=True)


_PLAIN = (int, float, bool, str, bytes, type(None))


def _numpy_globals() -> list[Any]:
    """What the weights-only unpickler needs to rebuild numeric numpy arrays and scalars (no code paths:
    an array's elements still go through the same restricted unpickler)."""
    import numpy as np

    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray  # type: ignore[no-redef]
    dtype_classes = [type(np.dtype(t)) for t in (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8,
                                                 np.uint16, np.uint32, np.uint64, np.float16, np.float32, np.float64)]  # fmt: skip
    return [multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype, *dtype_classes]


def _check_data(value: Any, where: str) -> None:
    """TypeError unless `value` is tensors, numeric numpy values and plain values (what loading accepts)."""
    import numpy as np
    import torch

    if isinstance(value, (torch.Tensor, *_PLAIN)):
        return
    if isinstance(value, (np.ndarray, np.generic)) and value.dtype.kind in "biuf":
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, _PLAIN):
                raise TypeError(f"parameter DB: {where} has a key of type {type(k).__name__}")
            _check_data(v, f"{where}.{k!s}")
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_data(v, f"{where}[{i}]")
        return
    raise TypeError(
        f"parameter DB: {where} is a {type(value).__module__}.{type(value).__name__}; states hold tensors, numeric "
        "numpy arrays and plain values only (they are loaded with weights_only=True)"
    )


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0][:200] if lines else ""


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    """`d` with values any metadata store can hold (numbers, strings, lists, dicts)."""
    return json.loads(json.dumps(d, default=lambda o: o.item() if hasattr(o, "item") else str(o)))
