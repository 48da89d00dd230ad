"""Statistics of the bench: medians, IQR, censoring at a cap, bootstrap intervals of ratios, run order.

A time-to-solve run that did not solve is *censored* at the cap: it counts as ">= cap" (never dropped).
It enters the median at the cap value and ranks above every solved run (a solve time is <= the cap);
a median that falls on a censored run is itself only a lower bound, and is flagged so.
Pure Python (runs in every bench venv and in the tests).
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Obs:
    """One run's value; `censored` means the true value is >= value (the run hit the cap first)."""

    value: float
    censored: bool = False


def _sorted(obs: Sequence[Obs]) -> list[Obs]:
    # Censored values rank above an equal uncensored one: ">= cap" is not smaller than "cap".
    return sorted(obs, key=lambda o: (o.value, o.censored))


def median(obs: Sequence[Obs]) -> Obs:
    """The median; censored when the middle run(s) are censored (then the true median is >= it)."""
    if not obs:
        raise ValueError("median of no runs")
    s = _sorted(obs)
    n = len(s)
    if n % 2:
        return s[n // 2]
    lo, hi = s[n // 2 - 1], s[n // 2]
    return Obs((lo.value + hi.value) / 2, lo.censored or hi.censored)


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile (numpy's default method) of plain values."""
    s = sorted(values)
    if not s:
        raise ValueError("quantile of no values")
    pos = (len(s) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def summary(obs: Sequence[Obs], digits: int = 3) -> dict:
    """median, IQR (25th-75th percentile, censored values at the cap), n, fraction censored, values."""
    m = median(obs)
    vals = [o.value for o in obs]
    return {
        "median": round(m.value, digits), "median_censored": m.censored,
        "iqr": [round(quantile(vals, 0.25), digits), round(quantile(vals, 0.75), digits)],
        "n": len(obs), "censored": sum(o.censored for o in obs),
        "values": [round(v, digits) for v in vals],
    }


def bootstrap_ratio(a: Sequence[Obs], b: Sequence[Obs], *, resamples: int = 2000, level: float = 0.95,
                    seed: int = 0) -> dict:
    """Ratio of medians median(a) / median(b) and its percentile bootstrap interval: each system's runs
    are resampled (with replacement) on their own, `resamples` times.

    `bound` says what censoring makes of the point estimate: "lower" when a's median is censored (a's
    true median is larger, so the ratio is at least this), "upper" when b's is, "none" when neither,
    "unknown" when both.
    """
    if not a or not b:
        raise ValueError("a ratio needs runs on both sides")
    ma, mb = median(a), median(b)
    rng = random.Random(seed)
    ratios = []
    for _ in range(resamples):
        ra = median([rng.choice(a) for _ in a]).value
        rb = median([rng.choice(b) for _ in b]).value
        if rb:  # a resample with a zero median has no ratio; it is left out
            ratios.append(ra / rb)
    tail = (1 - level) / 2
    bound = {(False, False): "none", (True, False): "lower", (False, True): "upper"}.get((ma.censored, mb.censored), "unknown")
    return {
        "ratio": ma.value / mb.value if mb.value else None,
        "interval": [quantile(ratios, tail), quantile(ratios, 1 - tail)] if ratios else None,
        "level": level, "bound": bound,
    }


def rotated(names: Sequence[str], round_index: int) -> list[str]:
    """The run order of one round: round i starts with the i-th system (mod their number), so no system
    always goes first and each takes each place equally often over len(names) rounds."""
    k = round_index % len(names) if names else 0
    return [*names[k:], *names[:k]]


def plain(values: Sequence[float]) -> list[Obs]:
    """Uncensored observations from plain numbers."""
    return [Obs(float(v)) for v in values]


def median_of(values: Sequence[float]) -> float:
    """The plain median of numbers (no censoring)."""
    return float(statistics.median(values))
