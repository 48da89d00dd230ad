"""Reads TensorBoard event files back: the scalars a run wrote, by tag.

Event files are TFRecord files of `Event` protos (tensorboardX ships the proto classes), so the
tests need no TensorBoard install: each record is a little-endian uint64 length, its masked CRC,
the bytes and their masked CRC.
"""

from __future__ import annotations

import struct
from collections import defaultdict
from pathlib import Path

from tensorboardX.proto import event_pb2


def records(path: Path) -> list[bytes]:
    """The records of one TFRecord file (a truncated last record, still being written, is left out)."""
    data = path.read_bytes()
    out, pos = [], 0
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from("<Q", data, pos)
        end = pos + 12 + length + 4
        if end > len(data):
            break
        out.append(data[pos + 12 : pos + 12 + length])
        pos = end
    return out


def scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value), ...] from every event file under `logdir`."""
    out: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for path in sorted(logdir.rglob("events.out.tfevents.*")):
        for raw in records(path):
            event = event_pb2.Event.FromString(raw)
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    out[value.tag].append((event.step, value.simple_value))
                elif value.HasField("tensor") and value.tensor.float_val:
                    out[value.tag].append((event.step, value.tensor.float_val[0]))
    return dict(out)
