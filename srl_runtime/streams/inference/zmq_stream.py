"""ZMQ inference stream: policy workers bind a ROUTER, actors hold one DEALER per policy worker.

One DEALER per server (instead of one DEALER connected to all) lets the client know where each
request went, so requests to a server that left the name records are re-sent elsewhere.
"""

from __future__ import annotations

import collections
import itertools
import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import zmq

from srl_runtime.name_records import keys
from srl_runtime.name_records.base import NameRecords
from srl_runtime.streams import wire, zmq_util
from srl_runtime.streams.discovery import PeerDirectory
from srl_runtime.streams.inference.base import (
    Arrays,
    InferenceClient,
    InferenceRequest,
    InferenceServer,
    ReplyCheck,
    RequestCheck,
)
from srl_runtime.streams.wire import MalformedMessage

log = logging.getLogger(__name__)

REQUEST = "infer_req"
REPLY = "infer_rep"
MAX_REQUEST_ID = 2**63 - 1
MAX_IN_FLIGHT = 4096  # plausible requests one client has pending (an actor's ring slots x splits)


def request_id_of(meta: dict[str, Any]) -> int:
    """The request id in a message's meta; MalformedMessage if absent or not a plain int."""
    rid = meta.get("id")
    if type(rid) is not int or not 0 <= rid <= MAX_REQUEST_ID:
        raise MalformedMessage(f"bad request id {rid!r}")
    return rid


def in_flight_of(meta: dict[str, Any]) -> int:
    """How many requests the client had pending (meta "n", 1 if absent); MalformedMessage if implausible."""
    n = meta.get("n", 1)
    if type(n) is not int or not 1 <= n <= MAX_IN_FLIGHT:
        raise MalformedMessage(f"bad in-flight count {n!r}")
    return n


class ZmqInferenceServer(InferenceServer):
    """ROUTER on tcp://host:port (0: any free port), registered at keys.inference_stream(root, index)."""

    _copy_frames = False  # receive zmq.Frames: requests carry their arrays, which may be big

    def __init__(
        self,
        name_records: NameRecords,
        root: str,
        index: int,
        host: str = "127.0.0.1",
        *,
        port: int = 0,
        advertise: str | None = None,
        keepalive_ttl: float = 10.0,
        check: RequestCheck | None = None,
    ) -> None:
        self._check = check
        self._sock = zmq_util.socket(zmq.ROUTER)
        self._carry: deque[InferenceRequest] = deque()  # taken off the socket but over max_rows
        self.address = self._bind(host, port, advertise)
        self._records = name_records
        self._key = keys.inference_stream(root, index)
        name_records.add(self._key, self.address, keepalive_ttl=keepalive_ttl, replace=True)
        log.info("inference server %d listening on %s", index, self.address)

    # ---- transport hooks (shm overrides these)
    def _bind(self, host: str, port: int, advertise: str | None) -> str:
        return zmq_util.bind_tcp(self._sock, host, port, advertise)

    def _unpack(self, client: bytes, meta: dict[str, Any], arrays: Arrays) -> InferenceRequest:
        return InferenceRequest(client=client, request_id=request_id_of(meta), arrays=arrays)

    def _reply_frames(self, request: InferenceRequest, arrays: Arrays) -> list[Any]:
        return wire.encode(REPLY, {"id": request.request_id}, arrays)

    def _housekeeping(self) -> None:
        """Called once per poll_requests."""

    # ---- API
    def poll_requests(self, max_rows: int, timeout: float) -> list[InferenceRequest]:
        self._housekeeping()
        batch: list[InferenceRequest] = []
        rows = 0
        while self._carry and (not batch or rows + self._carry[0].rows <= max_rows):
            carried = self._carry.popleft()
            batch.append(carried)
            rows += carried.rows
        deadline = time.monotonic() + timeout
        while not batch:  # block (up to timeout) for the first valid request
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not zmq_util.readable(self._sock, max(0, int(remaining * 1000))):
                return []
            req = self._recv()
            if req is not None:
                batch.append(req)
                rows += req.rows
        while rows < max_rows and zmq_util.readable(self._sock):  # then only what is already here
            req = self._recv()
            if req is None:
                continue
            if rows + req.rows > max_rows:
                self._carry.append(req)
                break
            batch.append(req)
            rows += req.rows
        return batch

    def respond(self, request: InferenceRequest, arrays: Arrays) -> None:
        if not zmq_util.send_frames(self._sock, [request.client, *self._reply_frames(request, arrays)]):
            # that client's queue is full (it stopped reading): it will re-send
            log.warning("dropping reply %d: client queue full", request.request_id)

    def close(self) -> None:
        try:
            self._records.delete(self._key)
        except Exception:  # noqa: BLE001 - already gone or records closed; the TTL handles it
            pass
        self._sock.close()

    def _recv(self) -> InferenceRequest | None:
        """One message off the socket as a request, or None (counted in dropped) if malformed."""
        frames = zmq_util.recv_frames(self._sock, self._copy_frames)
        if frames is None:
            return None
        try:
            if len(frames) < 2:
                raise MalformedMessage("no payload")
            kind, meta, arrays = wire.decode(frames[1:])
            if kind != REQUEST:
                raise MalformedMessage(f"unexpected kind {kind!r}")
            client = frames[0] if isinstance(frames[0], bytes) else frames[0].bytes  # the ROUTER's peer identity
            req = self._unpack(client, meta, arrays)
            req.in_flight = in_flight_of(meta)
            if self._check is not None:
                self._check(req.arrays)
            return req
        except MalformedMessage as e:
            self._drop(e, "inference request")
            return None


@dataclass
class _Pending:
    payload: Any  # what _request_frames needs to (re)send the request
    rows: int | None = None  # rows the answer must have (of the request's obs)
    address: str | None = None  # server it was last sent to; None: not sent yet
    sent_at: float = 0.0
    posted_at: float = field(default_factory=time.perf_counter)  # when the actor posted it (round trips)


class ZmqInferenceClient(InferenceClient):
    """DEALERs to every server under keys.inference_streams(root), requests spread round-robin.

    Requests to a server that disappears (or whose address changes after a restart) are re-sent to
    a live one; a request unanswered for `resend_after` seconds is re-sent too, so a lost message
    delays an actor but never hangs it.

    Bookkeeping is incremental so that a post or wait costs the same with 1 or 1000 requests
    pending: requests without a live destination wait in `_unsent`, in-flight counts per server are
    kept in `_in_flight`, and all pending requests are only scanned when the server set changes or
    the earliest resend deadline (`_resend_due`) has passed.
    """

    _copy_frames = False  # receive zmq.Frames: replies carry their arrays

    def __init__(
        self,
        name_records: NameRecords,
        root: str,
        *,
        refresh_interval: float = 0.5,
        resend_after: float = 30.0,
        check: ReplyCheck | None = None,
    ) -> None:
        self._check = check
        self._peers = PeerDirectory(
            name_records, keys.inference_streams(root), what="inference servers (policy workers)",
            refresh_interval=refresh_interval,
        )
        self._refresh_interval = refresh_interval
        self._resend_after = resend_after
        self._socks: dict[str, zmq.Socket] = {}
        self._order: list[str] = []
        self._rr = 0
        self._ids = itertools.count()
        self._pending: dict[int, _Pending] = {}
        self._unsent: dict[int, None] = {}  # pending ids with no live destination, oldest first
        self._in_flight: collections.Counter[str] = collections.Counter()  # pending per server address
        self._resend_due = math.inf  # no sent request is overdue before this (monotonic) time
        self._results: dict[int, Arrays] = {}
        self._sync()

    # ---- transport hooks (shm overrides these)
    def _new_socket(self, address: str) -> zmq.Socket:
        sock = zmq_util.socket(zmq.DEALER)
        sock.connect(address)
        return sock

    def _payload(self, request_id: int, arrays: Arrays) -> Any:
        # copy: the actor reuses its observation buffers, and we may need to re-send
        return {k: wire.prepare(v).copy() for k, v in arrays.items()}

    def _request_frames(self, request_id: int, pending: _Pending, resend: bool, in_flight: int) -> list[Any]:
        """The message; `in_flight`: our requests pending at that server, this one included (meta "n")."""
        return wire.encode(REQUEST, {"id": request_id, "n": in_flight}, pending.payload)

    def _reply(self, pending: _Pending, meta: dict[str, Any], arrays: Arrays) -> Arrays:
        return arrays

    def _discard(self, pending: _Pending) -> None:
        """A pending request is finished or cancelled."""

    # ---- API
    def post_request(self, arrays: Arrays) -> int:
        request_id = next(self._ids)
        obs = arrays.get("obs")
        pending = _Pending(payload=self._payload(request_id, arrays), rows=None if obs is None else len(obs))
        self._pending[request_id] = pending
        self._unsent[request_id] = None
        self._sync()  # sends it, along with anything still waiting for a server
        return request_id

    def is_ready(self, request_id: int) -> bool:
        if request_id in self._results:
            return True
        self._check_known(request_id)
        self._sync()
        self._receive(0)
        return request_id in self._results

    def wait(self, request_id: int, timeout: float | None = None) -> Arrays:
        deadline = None if timeout is None else time.monotonic() + timeout
        while request_id not in self._results:
            self._check_known(request_id)
            self._sync()
            step = self._refresh_interval
            if deadline is not None:
                step = min(step, deadline - time.monotonic())
                if step <= 0:
                    raise TimeoutError(f"no answer to inference request {request_id} within {timeout}s")
            self._receive(step)
        return self._results.pop(request_id)

    def cancel(self, request_id: int) -> None:
        """Forget a request (e.g. after giving up on it); a late answer is ignored."""
        pending = self._pending.get(request_id)
        if pending is not None:
            self._finish(request_id, pending)
        self._results.pop(request_id, None)

    def wait_for_servers(self, timeout: float | None = None) -> list[str]:
        """Block until at least one server is registered; returns their addresses."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._order:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError("no inference server registered")
            time.sleep(self._refresh_interval)
            self._sync()
        return list(self._order)

    def close(self) -> None:
        for rid in list(self._pending):
            self.cancel(rid)
        for sock in self._socks.values():
            sock.close()
        self._socks.clear()
        self._order = []

    # ---- internals
    def _check_known(self, request_id: int) -> None:
        if request_id not in self._pending:
            raise KeyError(f"unknown or already consumed request {request_id}")

    def _sync(self) -> None:
        """Follow server membership and (re)send requests that have no live destination or are overdue."""
        addresses = self._peers.addresses()
        if addresses != self._order:
            self._follow(addresses)
        now = time.monotonic()
        if now >= self._resend_due:
            self._unassign_overdue(now)
        if self._unsent and self._order:
            for rid in list(self._unsent):  # one try each: a full queue waits for the next _sync
                self._send(rid, self._pending[rid])

    def _follow(self, addresses: list[str]) -> None:
        """Open sockets to new servers, close those of servers gone, and re-queue what they held."""
        for address in set(self._socks) - set(addresses):
            log.info("inference server %s went away", address)
            self._socks.pop(address).close()
        for address in addresses:
            if address not in self._socks:
                log.info("inference server %s found", address)
                self._socks[address] = self._new_socket(address)
        self._order = list(addresses)
        for rid, pending in self._pending.items():
            if pending.address is not None and pending.address not in self._socks:
                self._unassign(rid, pending)

    def _unassign_overdue(self, now: float) -> None:
        """Re-queue requests unanswered for resend_after seconds; note when the next one falls due."""
        due = math.inf
        for rid, pending in self._pending.items():
            if pending.address is None:
                continue
            if now - pending.sent_at > self._resend_after:
                self._unassign(rid, pending)
            else:
                due = min(due, pending.sent_at + self._resend_after)
        self._resend_due = due

    def _unassign(self, request_id: int, pending: _Pending) -> None:
        """The request has no destination (any more): count it off its server and queue it to send."""
        if pending.address is not None:
            self._in_flight[pending.address] -= 1
            pending.address = None
        self._unsent[request_id] = None

    def _finish(self, request_id: int, pending: _Pending) -> None:
        """A pending request is answered or cancelled: drop it from all bookkeeping."""
        del self._pending[request_id]
        self._unsent.pop(request_id, None)
        if pending.address is not None:
            self._in_flight[pending.address] -= 1
        self._discard(pending)

    def _send(self, request_id: int, pending: _Pending) -> bool:
        """Send a queued request to the next server round-robin; False if its queue is full."""
        address = self._order[self._rr % len(self._order)]
        self._rr += 1
        resend = pending.sent_at > 0  # it went out before (to a server since gone, or overdue)
        in_flight = 1 + self._in_flight[address]
        if not zmq_util.send_frames(self._socks[address], self._request_frames(request_id, pending, resend, in_flight)):
            return False
        del self._unsent[request_id]
        self._in_flight[address] += 1
        pending.address = address
        pending.sent_at = time.monotonic()
        self._resend_due = min(self._resend_due, pending.sent_at + self._resend_after)
        return True

    def _receive(self, timeout: float) -> None:
        if not self._socks:
            time.sleep(max(0.0, timeout))  # nothing to listen to until a server registers
            return
        for sock in zmq_util.ready(list(self._socks.values()), max(0, int(timeout * 1000))):
            while zmq_util.readable(sock):
                frames = zmq_util.recv_frames(sock, self._copy_frames)
                if frames is None:
                    break
                try:
                    kind, meta, arrays = wire.decode(frames)
                    if kind != REPLY:
                        raise MalformedMessage(f"unexpected kind {kind!r}")
                    rid = request_id_of(meta)
                    pending = self._pending.get(rid)
                    if pending is None:  # answered twice after a re-send, or cancelled
                        if arrays and self._check is not None:
                            self._check(arrays, None)  # a bad one is still counted
                        continue
                    reply = self._reply(pending, meta, arrays)
                    if self._check is not None:
                        self._check(reply, pending.rows)  # a bad reply leaves the request pending
                    self._results[rid] = reply
                    self._finish(rid, pending)
                    self.round_trips.observe(time.perf_counter() - pending.posted_at)
                except MalformedMessage as e:
                    self._drop(e, "inference reply")
