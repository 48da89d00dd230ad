"""Same-host inference: payloads in the client's shared-memory slots, notifications over ipc://.

Each in-flight request owns one client-created segment: the request at offset 0, the reply written
by the server right after it. Only the segment name, layout and request id cross the socket. A reply
that does not fit travels inline over the socket, and the client sizes its next slots to fit it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from srl_runtime.name_records.base import NameRecords
from srl_runtime.streams import shm, wire, zmq_util
from srl_runtime.streams.inference.base import Arrays, InferenceRequest
from srl_runtime.streams.inference.zmq_stream import (
    REPLY,
    REQUEST,
    ZmqInferenceClient,
    ZmqInferenceServer,
    _Pending,
    request_id_of,
)
from srl_runtime.streams.wire import MalformedMessage

log = logging.getLogger(__name__)


class ShmInferenceServer(ZmqInferenceServer):
    """ROUTER on a fresh ipc:// socket; maps clients' segments and answers into them."""

    _copy_frames = True  # requests are small headers: bytes are cheaper than zmq.Frames

    def __init__(self, name_records: NameRecords, root: str, index: int, host: str = "127.0.0.1", **kw: Any) -> None:
        self._segments = shm.PeerSegments()
        self._ipc_path: str | None = None
        self._last_reap = time.monotonic()
        super().__init__(name_records, root, index, host, **kw)

    def _bind(self, host: str, port: int, advertise: str | None) -> str:  # one host: an ipc socket
        address, self._ipc_path = zmq_util.bind_ipc(self._sock, "inf")
        return address

    def _unpack(self, client: bytes, meta: dict[str, Any], arrays: Arrays) -> InferenceRequest:
        rid = request_id_of(meta)
        ref = meta.get("shm")
        if ref is None:  # inline request (allowed: same format as zmq)
            return InferenceRequest(client=client, request_id=rid, arrays=arrays)
        pid, ns = shm.field(meta, "pid", int), shm.field(meta, "ns", str)
        self._segments.forget(pid, ns, meta.get("retired"))
        seg = self._segments.get(shm.field(ref, "seg", str), pid, ns)
        views = seg.views.get(ref.get("a"))  # validated once per slot layout, then looked up
        reply_at = shm.field(ref, "r", int)
        return InferenceRequest(client=client, request_id=rid, arrays=views, handle=(seg, reply_at))

    def _reply_frames(self, request: InferenceRequest, arrays: Arrays) -> list[Any]:
        if request.handle is not None:
            seg, reply_at = request.handle
            try:
                layout, _ = shm.write_arrays(seg.buf, arrays, reply_at)
                return wire.encode(REPLY, {"id": request.request_id, "shm": {"a": layout}}, {})
            except (ValueError, BufferError):  # does not fit, or the segment was retired meanwhile
                pass
        return wire.encode(REPLY, {"id": request.request_id}, arrays)

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if now - self._last_reap >= 1.0:  # a dead actor's segments would otherwise stay in /dev/shm
            self._last_reap = now
            for pid in self._segments.reap_dead():
                log.info("inference client pid %d exited; removed its shared memory", pid)

    def close(self) -> None:
        super().close()
        self._segments.close()
        zmq_util.remove_file(self._ipc_path)


@dataclass
class _Slot:
    segment: shm.OwnedSegment
    layout: str  # JSON text (shm.write_arrays)
    reply_at: int


class ShmInferenceClient(ZmqInferenceClient):
    """DEALERs over ipc://; each request is copied once into a slot the servers map."""

    _copy_frames = True  # replies are small headers (an inline reply is copied out anyway)

    def __init__(self, name_records: NameRecords, root: str, *, max_free_slots: int = 16, **kw: Any) -> None:
        self._free: list[shm.OwnedSegment] = []
        self._retired: list[str] = []
        self._max_free = max_free_slots
        self._reply_hint = 1024  # bytes reserved for the reply; grows when a reply came inline
        self._identity = shm.identity()
        super().__init__(name_records, root, **kw)

    def _take(self, need: int) -> shm.OwnedSegment:
        for i, seg in enumerate(self._free):
            if seg.size >= need:
                return self._free.pop(i)
        if self._free:  # payloads grew: replace the smallest free slot instead of adding one
            self._free.sort(key=lambda s: s.size)
            self._retire(self._free.pop(0))
        return shm.OwnedSegment(shm.segment_size(need))

    def _retire(self, seg: shm.OwnedSegment) -> None:
        self._retired.append(seg.name)
        seg.close()

    def _payload(self, request_id: int, arrays: Arrays) -> _Slot:
        need = shm.align(shm.payload_nbytes(arrays)) + self._reply_hint
        seg = self._take(need)
        layout, end = seg.write(arrays)
        return _Slot(seg, layout, shm.align(end))

    def _request_frames(self, request_id: int, pending: _Pending, resend: bool, in_flight: int) -> list[Any]:
        slot: _Slot = pending.payload
        if resend:  # a fresh slot, so a late reply from the previous server can't land in a reused one
            seg = self._take(slot.segment.size)
            seg.buf[: slot.reply_at] = slot.segment.buf[: slot.reply_at]
            self._retire(slot.segment)
            slot.segment = seg
        meta = {
            "id": request_id,
            "n": in_flight,  # lets the server wait for an actor's whole ring (see batching)
            **self._identity,
            "shm": {"seg": slot.segment.name, "a": slot.layout, "r": slot.reply_at},
        }
        if self._retired:
            meta["retired"], self._retired = self._retired[:64], self._retired[64:]
        return wire.encode(REQUEST, meta, {})

    def _reply(self, pending: _Pending, meta: dict[str, Any], arrays: Arrays) -> Arrays:
        ref = meta.get("shm")
        if ref is None:
            self._reply_hint = max(self._reply_hint, shm.payload_nbytes(arrays) + shm.ALIGN)
            return {k: v.copy() for k, v in arrays.items()}
        if arrays:
            raise MalformedMessage("shm reply with inline arrays")
        return pending.payload.segment.read(ref.get("a") if isinstance(ref, dict) else None)

    def _discard(self, pending: _Pending) -> None:
        seg = pending.payload.segment
        if len(self._free) < self._max_free:
            self._free.append(seg)
        else:
            self._retire(seg)

    def close(self) -> None:
        super().close()
        for seg in self._free:
            seg.close()
        self._free.clear()
