"""Same-host sample stream: a ring of producer-owned shared-memory slots, notifications over ipc://.

The producer copies a sample into a free slot and tells a consumer (ROUTER on ipc://) where it is;
the consumer copies it out and answers "release", which frees the slot. With every slot in flight
the producer blocks on its sockets for a release: back-pressure without busy polling.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import zmq

from srl_runtime.name_records import keys
from srl_runtime.name_records.base import NameRecords
from srl_runtime.streams import shm, wire, zmq_util
from srl_runtime.streams.discovery import PeerDirectory
from srl_runtime.streams.sample.base import Arrays, SampleCheck, SampleConsumer, SampleProducer
from srl_runtime.streams.sample.zmq_stream import SAMPLE
from srl_runtime.streams.wire import MalformedMessage

log = logging.getLogger(__name__)

SHM_SAMPLE = "shm_sample"
RELEASE = "shm_release"


class ShmSampleProducer(wire.DropCounter, SampleProducer):
    """Up to `ring_size` slots in flight, each sent to the consumer holding the fewest unreleased
    slots (round-robin among equals).

    Least-loaded, not strict round-robin: a consumer that stops consuming for a while (a trainer
    waiting in its group's all-reduce for a peer that still needs samples) must not collect every
    slot of the ring — that would starve the peer it waits for, and the group would never step.
    """

    def __init__(
        self,
        name_records: NameRecords,
        root: str,
        *,
        ring_size: int = 8,
        refresh_interval: float = 0.5,
    ) -> None:
        self._peers = PeerDirectory(
            name_records, keys.sample_streams(root), what="sample consumers (trainers)",
            refresh_interval=refresh_interval,
        )
        self._refresh_interval = refresh_interval
        self._ring_size = ring_size
        self._identity = shm.identity()
        self._socks: dict[str, zmq.Socket] = {}
        self._order: list[str] = []
        self._rr = 0
        self._poller = zmq.Poller()
        self._free: list[shm.OwnedSegment] = []
        self._busy: dict[str, tuple[shm.OwnedSegment, str]] = {}  # segment name -> (segment, consumer)
        self._retired: list[str] = []
        self._sync()

    def _sync(self) -> None:
        addresses = self._peers.addresses()
        if addresses == self._order:
            return
        for address in set(self._socks) - set(addresses):
            log.info("sample consumer %s went away", address)
            sock = self._socks.pop(address)
            self._poller.unregister(sock)
            sock.close()
            for name, (seg, where) in list(self._busy.items()):
                if where == address:  # nobody will release it now; those samples are lost
                    del self._busy[name]
                    self._free.append(seg)
        for address in addresses:
            if address not in self._socks:
                log.info("sample consumer %s found", address)
                sock = zmq_util.socket(zmq.DEALER)
                sock.connect(address)
                self._socks[address] = sock
                self._poller.register(sock, zmq.POLLIN)
        self._order = list(addresses)

    def _take(self, need: int) -> shm.OwnedSegment | None:
        for i, seg in enumerate(self._free):
            if seg.size >= need:
                return self._free.pop(i)
        if self._free:  # samples grew: replace a free slot that is too small
            self._free.sort(key=lambda s: s.size)
            seg = self._free.pop(0)
            self._retired.append(seg.name)
            seg.close()
        if len(self._free) + len(self._busy) < self._ring_size:
            return shm.OwnedSegment(shm.segment_size(need))
        return None

    def _wait_release(self, timeout: float) -> None:
        """Block up to `timeout` s for release notes from consumers."""
        if not self._socks:
            time.sleep(max(0.0, timeout))
            return
        for sock, _ in self._poller.poll(max(0, int(timeout * 1000))):
            while True:
                try:
                    frames = sock.recv_multipart(copy=False, flags=zmq.NOBLOCK)
                except zmq.Again:
                    break
                try:
                    kind, meta, _ = wire.decode(frames)
                    name = shm.field(meta, "seg", str)
                    if kind != RELEASE or name not in self._busy:
                        raise MalformedMessage("unexpected release")
                    self._free.append(self._busy.pop(name)[0])
                except MalformedMessage as e:
                    self._drop(e, "release note")

    def _least_loaded(self) -> str:
        held = dict.fromkeys(self._order, 0)
        for _, where in self._busy.values():
            if where in held:
                held[where] += 1
        n = len(self._order)
        start = self._rr % n
        self._rr += 1
        rotated = self._order[start:] + self._order[:start]
        return min(rotated, key=held.__getitem__)

    def post(self, meta: dict[str, Any], arrays: Arrays, timeout: float | None = None) -> None:
        need = shm.payload_nbytes(arrays)
        deadline = None if timeout is None else time.monotonic() + timeout
        self._wait_release(0)
        while True:
            self._sync()
            seg = self._take(need) if self._order else None
            if seg is not None:
                break
            step = self._refresh_interval
            if deadline is not None:
                step = min(step, deadline - time.monotonic())
                if step <= 0:
                    raise TimeoutError("no free sample slot: consumers are not keeping up")
            self._wait_release(step)
        layout, _ = seg.write(arrays)
        address = self._least_loaded()
        note = {"m": meta, **self._identity, "shm": {"seg": seg.name, "a": layout}}
        if self._retired:
            note["retired"], self._retired = self._retired[:64], self._retired[64:]
        self._busy[seg.name] = (seg, address)
        try:
            self._socks[address].send_multipart(wire.encode(SHM_SAMPLE, note, {}), flags=zmq.NOBLOCK)
        except zmq.Again:  # cannot happen with ring_size < HWM; keep the slot usable if it does
            del self._busy[seg.name]
            self._free.append(seg)
            raise TimeoutError("sample consumer queue full") from None

    def flush(self, timeout: float | None = None) -> None:
        """Wait until consumers released every slot (or `timeout` passed)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._busy:
            self._sync()
            step = self._refresh_interval
            if deadline is not None:
                step = min(step, deadline - time.monotonic())
                if step <= 0:
                    return
            self._wait_release(step)

    def close(self) -> None:
        for sock in self._socks.values():
            sock.close()
        self._socks.clear()
        for seg in [*self._free, *(s for s, _ in self._busy.values())]:
            seg.close()
        self._free.clear()
        self._busy.clear()


class ShmSampleConsumer(SampleConsumer):
    """ROUTER on a fresh ipc:// socket, registered at keys.sample_stream(root, trainer_index)."""

    def __init__(
        self,
        name_records: NameRecords,
        root: str,
        trainer_index: int,
        host: str = "127.0.0.1",
        *,
        keepalive_ttl: float = 10.0,
        check: SampleCheck | None = None,
    ) -> None:
        self._check = check
        self._segments = shm.PeerSegments()
        self._last_reap = time.monotonic()
        self._sock = zmq_util.socket(zmq.ROUTER)
        self.address, self._ipc_path = zmq_util.bind_ipc(self._sock, "smp")
        self._records = name_records
        self._key = keys.sample_stream(root, trainer_index)
        name_records.add(self._key, self.address, keepalive_ttl=keepalive_ttl, replace=True)
        log.info("shm sample consumer %d listening on %s", trainer_index, self.address)

    def consume(self, timeout: float) -> tuple[dict[str, Any], Arrays] | None:
        self._reap()
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if not self._sock.poll(max(0, int(remaining * 1000)), zmq.POLLIN):
                return None
            try:
                frames = self._sock.recv_multipart(copy=False, flags=zmq.NOBLOCK)
            except zmq.Again:
                continue
            try:
                meta, arrays = self._unpack(frames)
                if self._check is not None:
                    self._check(meta, arrays)  # after the copy out: the producer cannot change it now
                return meta, arrays
            except MalformedMessage as e:
                self._drop(e, "sample")

    def _unpack(self, frames: list[Any]) -> tuple[dict[str, Any], Arrays]:
        if len(frames) < 2:
            raise MalformedMessage("no payload")
        kind, meta, arrays = wire.decode(frames[1:])
        if kind == SAMPLE:  # inline samples are fine too
            return meta, arrays
        if kind != SHM_SAMPLE or arrays:
            raise MalformedMessage(f"unexpected kind {kind!r}")
        pid, ns = shm.field(meta, "pid", int), shm.field(meta, "ns", str)
        user_meta = shm.field(meta, "m", dict)
        ref = shm.field(meta, "shm", dict)
        name = shm.field(ref, "seg", str)
        self._segments.forget(pid, ns, meta.get("retired"))
        seg = self._segments.get(name, pid, ns)
        # copy out so the slot is free at once; the trainer keeps samples for a while
        data = {k: v.copy() for k, v in seg.views.get(ref.get("a")).items()}
        release = [frames[0], *wire.encode(RELEASE, {"seg": name}, {})]
        try:
            self._sock.send_multipart(release, flags=zmq.NOBLOCK)
        except zmq.ZMQError:  # producer gone: its slots die with it
            pass
        return user_meta, data

    def _reap(self) -> None:
        now = time.monotonic()
        if now - self._last_reap >= 1.0:  # a dead actor's ring would otherwise stay in /dev/shm
            self._last_reap = now
            for pid in self._segments.reap_dead():
                log.info("sample producer pid %d exited; removed its shared memory", pid)

    def close(self) -> None:
        try:
            self._records.delete(self._key)
        except Exception:  # noqa: BLE001 - already gone or records closed; the TTL handles it
            pass
        self._sock.close()
        self._segments.close()
        zmq_util.remove_file(self._ipc_path)
