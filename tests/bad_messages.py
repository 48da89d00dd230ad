"""Well-formed-but-wrong stream contents for CartPole-shaped experiments (obs [4] float32, 2 actions):
every content error of issue 9 item 1 plus NaN/inf payloads. The unit tier checks each against the
schema; the integration tier sends thousands of them to a live run."""

from __future__ import annotations

from typing import Any

import numpy as np

OBS = 4


def good_request(rows: int) -> dict[str, np.ndarray]:
    return {"obs": np.zeros((rows, OBS), np.float32)}


def good_reply(rows: int) -> dict[str, np.ndarray]:
    return {
        "action": np.ones(rows, np.int64), "logp": np.full(rows, -0.7, np.float32),
        "value": np.zeros(rows, np.float32), "rnn_state": np.zeros((rows, 0), np.float32),
        "policy_version": np.full(rows, 3, np.int64),
    }  # fmt: skip


def good_sample(length: int, rows: int) -> dict[str, np.ndarray]:
    shape = (length, rows)
    return {
        "obs": np.zeros((*shape, OBS), np.float32), "action": np.ones(shape, np.int64),
        "logp": np.full(shape, -0.7, np.float32), "value": np.zeros(shape, np.float32),
        "reward": np.ones(shape, np.float32), "done": np.zeros(shape, bool), "truncated": np.zeros(shape, bool),
        "policy_version": np.full(shape, 3, np.int64),
    }  # fmt: skip


def _with(arrays: dict[str, np.ndarray], **changes: Any) -> dict[str, np.ndarray]:
    out = dict(arrays)
    for k, v in changes.items():
        if v is None:
            out.pop(k)
        else:
            out[k] = v
    return out


def _bad_value(a: np.ndarray, value: float = np.nan) -> np.ndarray:
    a = a.copy()
    a.flat[a.size // 2] = value
    return a


def bad_requests(rows: int) -> list[tuple[str, dict[str, np.ndarray]]]:
    obs = np.zeros((rows, OBS), np.float32)
    return [
        ("no-obs", {}),
        ("obs-renamed", {"observation": obs}),
        ("obs-wrong-trailing-shape", {"obs": np.zeros((rows, OBS + 1), np.float32)}),
        ("obs-huge-1d", {"obs": np.zeros(20_000, np.float32)}),
        ("obs-wrong-dtype", {"obs": obs.astype(np.float64)}),
        ("obs-zero-rows", {"obs": np.zeros((0, OBS), np.float32)}),
        ("obs-too-many-rows", {"obs": np.zeros((rows + 1, OBS), np.float32)}),
        ("extra-array", _with(good_request(rows), rnn_state=np.zeros((rows, 8), np.float32))),
        ("obs-nan", {"obs": _bad_value(obs)}),
        ("obs-inf", {"obs": _bad_value(obs, np.inf)}),
    ]


def bad_replies(rows: int) -> list[tuple[str, dict[str, np.ndarray]]]:
    good = good_reply(rows)
    return [
        ("no-action", _with(good, action=None)),
        ("action-out-of-range", _with(good, action=np.full(rows, 2, np.int64))),
        ("action-negative", _with(good, action=np.full(rows, -1, np.int64))),
        ("action-float", _with(good, action=np.ones(rows, np.float32))),
        ("rows-disagree", _with(good, logp=np.zeros(rows - 1, np.float32))),
        ("rows-not-the-request's", good_reply(rows - 2)),
        ("logp-nan", _with(good, logp=_bad_value(good["logp"]))),
        ("value-inf", _with(good, value=_bad_value(good["value"], -np.inf))),
        ("huge-action", _with(good, action=np.zeros(20_000, np.int64))),
    ]


def bad_samples(length: int, rows: int) -> list[tuple[str, dict[str, np.ndarray]]]:
    good = good_sample(length, rows)
    shape = (length, rows)
    return [
        ("no-reward", _with(good, reward=None)),
        ("lengths-disagree", _with(good, reward=np.ones((length - 3, rows), np.float32))),
        ("wrong-length", {k: v[:-1] for k, v in good.items()}),
        ("wrong-columns", {k: v[:, :-1] for k, v in good.items()}),
        ("action-out-of-range", _with(good, action=np.full(shape, 7, np.int64))),
        ("action-negative", _with(good, action=np.full(shape, -3, np.int64))),
        ("done-not-bool", _with(good, done=np.zeros(shape, np.uint8))),
        ("version-below-minus-one", _with(good, policy_version=np.full(shape, -5, np.int64))),
        ("obs-1d", _with(good, obs=np.zeros(length * rows * OBS, np.float32))),
        ("reward-nan", _with(good, reward=_bad_value(good["reward"]))),
        ("value-inf", _with(good, value=_bad_value(good["value"], np.inf))),
        ("obs-nan", _with(good, obs=_bad_value(good["obs"]))),
        ("logp-minus-inf", _with(good, logp=_bad_value(good["logp"], -np.inf))),
    ]
