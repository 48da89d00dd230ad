"""Name records as one small file per entry under a directory; safe on NFS shared by several hosts.

Layout: the entry `a/b/c` lives in `<root>/a/b/c/.entry` as JSON `{"value": ..., "expires": t}`,
where `t` is a wall-clock (time.time()) expiry or null. Name components are percent-encoded and a
leading dot is escaped, so no component directory collides with `.entry` or with temp files.

Only operations that are atomic on NFS are relied on: rename (write a temp file, then rename it over
the entry) and hard links (create-if-absent). No flock: its semantics across NFS clients vary.
Hosts must keep their clocks roughly in sync (NTP), since expiry times are compared across hosts.
"""

from __future__ import annotations

import errno
import json
import os
import time
import uuid
from pathlib import Path
from urllib.parse import quote, unquote

from srl_runtime.name_records.base import NameEntryExists, NameRecords

ENTRY_FILE = ".entry"
_TMP_PREFIX = ".tmp-"
_GRAVE_PREFIX = ".grave-"
_RETRIES = 5


class DirectoryNameRecords(NameRecords):
    """Entries are files under `path`; any number of processes and hosts may share the directory."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)

    # ---- paths
    def _dir(self, name: str) -> Path:
        if not name:
            return self.path
        return self.path.joinpath(*(_encode(part) for part in name.split("/")))

    def _file(self, name: str) -> Path:
        return self._dir(name) / ENTRY_FILE

    # ---- primitives
    def _put(self, name: str, value: str, ttl: float | None, replace: bool) -> None:
        _check_name(name)
        data = json.dumps({"value": value, "expires": None if ttl is None else time.time() + ttl})
        target = self._file(name)
        for attempt in range(_RETRIES):
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = _write_tmp(target.parent, data)
            except FileNotFoundError:
                # A concurrent delete pruned the (empty) parent directories between mkdir and write.
                if attempt == _RETRIES - 1:
                    raise
                continue
            try:
                if replace:
                    os.replace(tmp, target)
                    return
                if _link_if_absent(tmp, target):
                    return
                if _read(target) is not None:
                    raise NameEntryExists(name)
                # The existing entry has expired: move it aside, then retry the create.
                self._bury_if_expired(target)
            finally:
                _unlink(tmp)
        raise NameEntryExists(name)

    def _get(self, name: str) -> str | None:
        try:
            _check_name(name)
        except ValueError:
            return None
        entry = _read(self._file(name))
        return None if entry is None else entry[0]

    def _subtree(self, root: str) -> dict[str, str]:
        if root:
            try:
                _check_name(root)
            except ValueError:
                return {}
        base = self._dir(root)
        out: dict[str, str] = {}
        for dirpath, dirnames, filenames in os.walk(base):
            # Temp/graveyard names start with a dot and are never entries.
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            if ENTRY_FILE not in filenames:
                continue
            file = Path(dirpath) / ENTRY_FILE
            rel = Path(dirpath).relative_to(self.path)
            name = "/".join(unquote(p) for p in rel.parts)
            try:
                raw = file.read_text()
            except (FileNotFoundError, NotADirectoryError):
                continue
            entry = _parse(raw)
            if entry is None:
                self._bury_if_expired(file)  # lazy cleanup so expired entries do not pile up
                continue
            out[name] = entry[0]
        return out

    def _delete(self, name: str) -> bool:
        try:
            _check_name(name)
        except ValueError:
            return False
        target = self._file(name)
        alive = _read(target) is not None
        try:
            target.unlink()
        except FileNotFoundError:
            return False
        self._prune_dirs(target.parent)
        return alive

    # ---- helpers
    def _bury_if_expired(self, target: Path) -> None:
        """Remove an expired entry without ever removing a live one written concurrently."""
        grave = target.parent / f"{_GRAVE_PREFIX}{uuid.uuid4().hex}"
        try:
            os.rename(target, grave)
        except FileNotFoundError:
            return
        try:
            raw = grave.read_text()
        except FileNotFoundError:
            return
        if _parse(raw) is not None:
            # We raced a writer and moved a fresh entry: put it back unless someone re-created it.
            _link_if_absent(grave, target)
        _unlink(grave)

    def _prune_dirs(self, directory: Path) -> None:
        """Remove now-empty directories up to the root (best effort; a writer may re-create them)."""
        while directory != self.path and self.path in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent


def _encode(part: str) -> str:
    enc = quote(part, safe="")
    return "%2E" + enc[1:] if enc.startswith(".") else enc


def _check_name(name: str) -> None:
    if not name or any(p in ("", ".", "..") for p in name.split("/")):
        raise ValueError(f"invalid name record {name!r}")


def _write_tmp(directory: Path, data: str) -> Path:
    tmp = directory / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
    # No fsync: NFS flushes on close (close-to-open consistency), and name records are rebuilt
    # by their owners' keep-alives after a crash anyway.
    with open(tmp, "w") as f:
        f.write(data)
    return tmp


def _link_if_absent(src: Path, dst: Path) -> bool:
    """Atomically create `dst` as a hard link to `src`; False if `dst` exists."""
    try:
        os.link(src, dst)
        return True
    except FileExistsError:
        return False
    except OSError as e:
        # NFS may report an error for a link that did succeed (lost reply to a retransmitted RPC).
        if e.errno != errno.EEXIST and src.exists() and src.stat().st_nlink == 2:
            return True
        raise


def _parse(raw: str) -> tuple[str, float | None] | None:
    """(value, expires) of a live entry, None if expired or unreadable."""
    try:
        doc = json.loads(raw)
        value, expires = doc["value"], doc["expires"]
    except (ValueError, KeyError, TypeError):
        return None
    if expires is not None and expires < time.time():
        return None
    return value, expires


def _read(file: Path) -> tuple[str, float | None] | None:
    try:
        return _parse(file.read_text())
    except (FileNotFoundError, NotADirectoryError):
        return None


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
