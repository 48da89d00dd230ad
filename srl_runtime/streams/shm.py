"""Shared-memory payloads for same-host streams: the writer owns segments, the reader maps them.

A payload is written into a segment the sender created; the message over ZMQ only carries the
segment name and a layout: the JSON text of [[name, dtype, shape, offset]]. Readers validate the
layout against the mapped size before making views, exactly as the wire format validates frames.

A sender writes the same layout into the same segment over and over (an actor's slot holds one
observation batch, then its answer), so layouts travel as JSON text and each mapped segment keeps
the views it made for the last few layout texts (ViewCache): a repeated layout costs a dict lookup,
any other text is validated and viewed afresh.
"""

from __future__ import annotations

import _posixshmem  # the primitive SharedMemory uses; attaching through it skips resource_tracker
import functools
import glob
import mmap
import os
import re
import uuid
from multiprocessing import shared_memory
from typing import Any

import numpy as np

from srl_runtime.streams import wire
from srl_runtime.streams.wire import Arrays, MalformedMessage

ALIGN = 64  # cache-line aligned arrays
MIN_SEGMENT = 4096
NAME_RE = re.compile(r"^srl_(\d{1,10})_[0-9a-f]{10}$")


def align(n: int) -> int:
    """Round up to ALIGN."""
    return (n + ALIGN - 1) // ALIGN * ALIGN


def pid_namespace() -> str:
    """This process's pid namespace, so peers only judge our liveness if they share it."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def identity() -> dict[str, Any]:
    """Who owns our segments, sent with every shm message."""
    return {"pid": os.getpid(), "ns": pid_namespace()}


def process_gone(pid: int, ns: str) -> bool:
    """True only if we can tell for sure that `pid` (in namespace `ns`) has exited."""
    if not ns or ns != pid_namespace():
        return False  # another pid namespace (another container): pids mean nothing here
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # an unreaped zombie still answers kill(0) but will never touch its memory again
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


def payload_nbytes(arrays: Arrays, start: int = 0) -> int:
    """End offset of arrays laid out from `start` (for sizing segments)."""
    end = start
    for a in arrays.values():
        end = align(end) + np.asarray(a).nbytes
    return end


def segment_size(nbytes: int) -> int:
    """Power-of-two segment size holding `nbytes` (fewer reallocations as payloads vary)."""
    return max(MIN_SEGMENT, 1 << max(0, nbytes - 1).bit_length())


class OwnedSegment:
    """A segment this process created and will unlink (resource_tracker unlinks it if we crash)."""

    def __init__(self, size: int) -> None:
        self.name = f"srl_{os.getpid()}_{uuid.uuid4().hex[:10]}"
        self._shm = shared_memory.SharedMemory(name=self.name, create=True, size=size)
        self.size = size
        buf = self._shm.buf
        assert buf is not None  # typeshed: None only once closed
        self.buf: memoryview = buf

        self.views = ViewCache(buf)

    def write(self, arrays: Arrays, start: int = 0) -> tuple[str, int]:
        """Copy arrays in from `start`; returns (layout JSON, end offset). ValueError if they don't fit."""
        return write_arrays(self.buf, arrays, start)

    def read(self, layout: Any) -> Arrays:
        """Copies of arrays a peer wrote into this segment (validated like any wire input)."""
        return {k: v.copy() for k, v in self.views.get(layout).items()}

    def close(self) -> None:
        """Unmap and unlink."""
        self.views.close()
        self.buf = memoryview(b"")
        try:
            self._shm.close()
        except BufferError:  # a caller still holds a view; the mapping goes when it does
            pass
        try:
            self._shm.unlink()
        except FileNotFoundError:  # a peer already cleaned up after us
            pass


def write_arrays(buf: memoryview, arrays: Arrays, start: int = 0) -> tuple[str, int]:
    """Copy arrays into `buf` from `start`; returns (layout JSON, end). ValueError if they don't fit."""
    entries, off = [], start
    for name, array in arrays.items():
        a = wire.prepare(array)
        off = align(off)
        if off + a.nbytes > len(buf):
            raise ValueError(f"payload does not fit a segment of {len(buf)} bytes")
        np.ndarray(a.shape, a.dtype, buffer=buf, offset=off)[...] = a
        entries.append((name, a.dtype.str, a.shape, off))
        off += a.nbytes
    return layout_json(tuple(entries)), off


@functools.lru_cache(maxsize=wire.SPEC_CACHE_SIZE)
def layout_json(key: wire.SpecKey) -> str:
    """The JSON text of a layout ((name, dtype str, shape, offset), ...) (cached: slots repeat theirs)."""
    return wire.specs_json(key).decode()


def field(meta: Any, key: str, kind: type) -> Any:
    """meta[key] if meta is a dict and the value has type `kind`; MalformedMessage otherwise."""
    value = meta.get(key) if isinstance(meta, dict) else None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise MalformedMessage(f"field {key!r} missing or not {kind.__name__}")
    return value


def views(buf: memoryview, layout: Any) -> Arrays:
    """Zero-copy arrays over `buf` described by a peer's layout JSON; MalformedMessage if out of bounds."""
    if not isinstance(layout, str):
        raise MalformedMessage("layout must be JSON text")
    out: Arrays = {}
    for spec in wire.parse_specs_json(layout, offsets=True):
        end = spec.offset + spec.nbytes
        if end > len(buf):
            raise MalformedMessage(f"array {spec.name!r} ends at {end}, segment has {len(buf)} bytes")
        out[spec.name] = wire.view(buf[spec.offset : end], spec)
    return out


class ViewCache:
    """Views of one segment by layout text: validated and made once per distinct layout.

    A hit needs the exact text seen before on this very segment (whose size never changes), so a
    changed or hostile layout is always validated afresh and a bad one raises every time. Holds at
    most `size` layouts; callers get a new dict of the cached views each time (mutating it cannot
    poison the cache). close() before unmapping, or the cached views keep the mapping alive.
    """

    def __init__(self, buf: memoryview, size: int = 8) -> None:
        self._buf = buf
        self._size = size
        self._views: dict[str, Arrays] = {}

    def get(self, layout: Any) -> Arrays:
        """views(buf, layout), from the cache when this exact layout text was viewed before."""
        hit = self._views.get(layout) if isinstance(layout, str) else None
        if hit is None:
            hit = views(self._buf, layout)  # raises MalformedMessage for anything invalid
            if len(self._views) >= self._size:
                self._views.pop(next(iter(self._views)))
            self._views[layout] = hit
        return dict(hit)

    def close(self) -> None:
        """Forget every view and the buffer (before the segment is unmapped): later gets see 0 bytes."""
        self._views.clear()
        self._buf = memoryview(b"")


class Attached:
    """A peer's segment mapped read-write (without registering it with our resource_tracker)."""

    def __init__(self, name: str) -> None:
        fd = _posixshmem.shm_open("/" + name, os.O_RDWR, mode=0o600)
        try:
            size = os.fstat(fd).st_size
            if size <= 0:
                raise MalformedMessage(f"segment {name} is empty")
            self._mmap = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        self.name = name
        self.buf = memoryview(self._mmap)
        self.views = ViewCache(self.buf)

    def close(self) -> None:
        """Unmap (later, if views are still alive: the mapping then goes with the last view)."""
        self.views.close()
        try:
            self.buf.release()
            self._mmap.close()
        except BufferError:
            pass


class PeerSegments:
    """Segments of peer processes we have mapped, keyed by owner, cleaned up when owners die."""

    def __init__(self, max_per_peer: int = 64) -> None:
        self._by_peer: dict[tuple[int, str], dict[str, Attached]] = {}
        self._max_per_peer = max_per_peer

    def get(self, name: Any, pid: Any, ns: Any) -> Attached:
        """Map (or reuse) segment `name` claimed by process `pid`; MalformedMessage if implausible."""
        if not isinstance(name, str) or type(pid) is not int or not isinstance(ns, str):
            raise MalformedMessage("bad shm reference")
        m = NAME_RE.match(name)
        if m is None or int(m.group(1)) != pid:
            raise MalformedMessage(f"segment name {name!r} does not belong to pid {pid}")
        segs = self._by_peer.setdefault((pid, ns), {})
        seg = segs.get(name)
        if seg is None:
            try:
                seg = Attached(name)
            except (OSError, ValueError) as e:
                raise MalformedMessage(f"cannot map segment {name}: {e}") from None
            if len(segs) >= self._max_per_peer:  # the peer replaced segments; drop the oldest mapping
                segs.pop(next(iter(segs))).close()
            segs[name] = seg
        return seg

    def forget(self, pid: int, ns: str, names: Any) -> None:
        """Unmap segments the peer said it retired."""
        segs = self._by_peer.get((pid, ns), {})
        for name in names if isinstance(names, list) else []:
            seg = segs.pop(name, None) if isinstance(name, str) else None
            if seg is not None:
                seg.close()

    def reap_dead(self) -> list[int]:
        """Unmap and unlink the segments of peers that have exited; returns their pids."""
        dead = [key for key in self._by_peer if process_gone(*key)]
        for pid, ns in dead:
            for name, seg in self._by_peer.pop((pid, ns)).items():
                seg.close()
                unlink(name)
            for path in glob.glob(f"/dev/shm/srl_{pid}_*"):  # segments it made but never sent
                unlink(os.path.basename(path))
        return [pid for pid, _ in dead]

    def close(self) -> None:
        """Unmap everything (owners unlink their own segments)."""
        for segs in self._by_peer.values():
            for seg in segs.values():
                seg.close()
        self._by_peer.clear()


def unlink(name: str) -> None:
    """Remove a segment name, ignoring that it is already gone."""
    try:
        _posixshmem.shm_unlink("/" + name)
    except FileNotFoundError:
        pass
