"""ZMQ sample stream: trainers bind PULL, actors PUSH to every trainer found in the name records."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import zmq

from srl_runtime.name_records import keys
from srl_runtime.name_records.base import NameRecords
from srl_runtime.streams import wire, zmq_util
from srl_runtime.streams.discovery import PeerDirectory
from srl_runtime.streams.sample.base import Arrays, SampleCheck, SampleConsumer, SampleProducer
from srl_runtime.streams.wire import MalformedMessage

log = logging.getLogger(__name__)

SAMPLE = "sample"


class ZmqSampleProducer(SampleProducer):
    """One PUSH socket connected to all consumers; ZMQ spreads messages round-robin.

    The send high-water mark bounds what queues per consumer, so a slow trainer blocks `post`
    instead of growing memory; IMMEDIATE keeps messages off consumers that are not connected.
    """

    def __init__(
        self,
        name_records: NameRecords,
        root: str,
        *,
        hwm: int = 8,
        linger_ms: int = 500,
        refresh_interval: float = 0.5,
    ) -> None:
        self._peers = PeerDirectory(
            name_records, keys.sample_streams(root), what="sample consumers (trainers)",
            refresh_interval=refresh_interval,
        )
        self._refresh_interval = refresh_interval
        # linger: give queued samples a moment to leave on a clean shutdown
        self._sock = zmq_util.socket(zmq.PUSH, linger_ms=linger_ms, receiver=False, sndhwm=hwm, immediate=1)
        self._connected: set[str] = set()
        self._sync()

    def _sync(self) -> None:
        addresses = set(self._peers.addresses())
        for address in self._connected - addresses:
            log.info("sample consumer %s went away", address)
            try:
                self._sock.disconnect(address)
            except zmq.ZMQError:
                pass
        for address in addresses - self._connected:
            log.info("sample consumer %s found", address)
            self._sock.connect(address)
        self._connected = addresses

    def post(self, meta: dict[str, Any], arrays: Arrays, timeout: float | None = None) -> None:
        # copy: frames go out zero-copy later, and actors overwrite their buffers right away
        frames = wire.encode(SAMPLE, meta, {k: np.array(v, copy=True) for k, v in arrays.items()})
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._sync()
            step = self._refresh_interval
            if deadline is not None:
                step = min(step, deadline - time.monotonic())
                if step <= 0:
                    raise TimeoutError("sample consumers did not take the sample in time")
            if self._sock.poll(int(step * 1000), zmq.POLLOUT):
                try:
                    self._sock.send_multipart(frames, copy=False, flags=zmq.NOBLOCK)
                    return
                except zmq.Again:
                    continue

    def flush(self, timeout: float | None = None) -> None:
        """ZMQ sends in the background; close() lingers to deliver what is queued."""

    def close(self) -> None:
        self._sock.close()


class ZmqSampleConsumer(SampleConsumer):
    """PULL on tcp://host:port (0: any free port), registered at keys.sample_stream(root, trainer_index)."""

    def __init__(
        self,
        name_records: NameRecords,
        root: str,
        trainer_index: int,
        host: str = "127.0.0.1",
        *,
        port: int = 0,
        advertise: str | None = None,
        hwm: int = 8,
        keepalive_ttl: float = 10.0,
        check: SampleCheck | None = None,
    ) -> None:
        self._check = check
        self._sock = zmq_util.socket(zmq.PULL, rcvhwm=hwm)
        self.address = zmq_util.bind_tcp(self._sock, host, port, advertise)
        self._records = name_records
        self._key = keys.sample_stream(root, trainer_index)
        name_records.add(self._key, self.address, keepalive_ttl=keepalive_ttl, replace=True)
        log.info("sample consumer %d listening on %s", trainer_index, self.address)

    def consume(self, timeout: float) -> tuple[dict[str, Any], Arrays] | None:
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
                kind, meta, arrays = wire.decode(frames)
                if kind != SAMPLE:
                    raise MalformedMessage(f"unexpected kind {kind!r}")
                if self._check is not None:
                    self._check(meta, arrays)
                return meta, arrays
            except MalformedMessage as e:
                self._drop(e, "sample")

    def close(self) -> None:
        try:
            self._records.delete(self._key)
        except Exception:  # noqa: BLE001 - already gone or records closed; the TTL handles it
            pass
        self._sock.close()
