"""bench/stats.py: censored medians, IQR, the bootstrap interval of a ratio of medians, run rotation."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import stats  # noqa: E402

pytestmark = pytest.mark.unit


def test_median_and_iqr_of_plain_values() -> None:
    s = stats.summary(stats.plain([5, 1, 3, 2, 4]))
    assert s["median"] == 3 and not s["median_censored"]
    assert s["iqr"] == [2, 4]
    assert s["n"] == 5 and s["censored"] == 0


def test_censored_runs_count_at_the_cap_and_rank_above_solved() -> None:
    cap = 40.0
    runs = [stats.Obs(10.0), stats.Obs(cap, censored=True), stats.Obs(cap, censored=True)]
    m = stats.median(runs)
    # Two of three never solved: the median is the cap, and only a lower bound.
    assert m.value == cap and m.censored
    # A censored run at the cap ranks above a solved run at exactly the cap.
    m2 = stats.median([stats.Obs(cap), stats.Obs(cap, censored=True), stats.Obs(1.0)])
    assert m2.value == cap and not m2.censored
    s = stats.summary(runs)
    assert s["censored"] == 2 and s["n"] == 3  # never dropped


def test_even_count_median_is_censored_if_either_middle_run_is() -> None:
    m = stats.median([stats.Obs(1.0), stats.Obs(2.0), stats.Obs(3.0, censored=True), stats.Obs(3.0, censored=True)])
    assert m.value == 2.5 and m.censored


def test_bootstrap_interval_covers_the_true_ratio() -> None:
    """Draws from two known distributions: the 95% interval of the ratio of medians must cover the
    true ratio in (about) 95% of repetitions; with 60 repetitions, at least 50 is far from chance."""
    rng = random.Random(1)
    true_ratio = 2.0  # medians 20 and 10 (normal, symmetric)
    covered = 0
    reps = 60
    for rep in range(reps):
        a = stats.plain([rng.gauss(20.0, 2.0) for _ in range(10)])
        b = stats.plain([rng.gauss(10.0, 1.0) for _ in range(10)])
        lo, hi = stats.bootstrap_ratio(a, b, resamples=400, seed=rep)["interval"]
        covered += lo <= true_ratio <= hi
    assert covered >= 50


def test_bootstrap_interval_is_narrow_for_identical_runs_and_contains_the_point() -> None:
    b = stats.bootstrap_ratio(stats.plain([6, 6, 6]), stats.plain([3, 3, 3]))
    assert b["ratio"] == 2.0 and b["interval"] == [2.0, 2.0] and b["bound"] == "none"
    b = stats.bootstrap_ratio(stats.plain([5, 7, 9]), stats.plain([2, 3, 4]), seed=3)
    lo, hi = b["interval"]
    assert lo <= b["ratio"] <= hi and lo < hi


def test_bootstrap_bound_direction_under_censoring() -> None:
    censored = [stats.Obs(40.0, censored=True)] * 3
    solved = stats.plain([10, 12, 14])
    assert stats.bootstrap_ratio(censored, solved)["bound"] == "lower"
    assert stats.bootstrap_ratio(solved, censored)["bound"] == "upper"
    assert stats.bootstrap_ratio(censored, censored)["bound"] == "unknown"


def test_rotation_gives_every_system_the_first_place_once() -> None:
    names = ["ours", "sf", "cleanrl", "rllib"]
    orders = [stats.rotated(names, i) for i in range(4)]
    assert [o[0] for o in orders] == names
    assert all(sorted(o) == sorted(names) for o in orders)
    # Each system takes each position exactly once over len(names) rounds.
    for pos in range(4):
        assert sorted(o[pos] for o in orders) == sorted(names)
    assert stats.rotated(names, 5) == stats.rotated(names, 1)


def test_quantile_matches_linear_interpolation() -> None:
    assert stats.quantile([1, 2, 3, 4], 0.5) == 2.5
    assert stats.quantile([1, 2, 3, 4], 0.25) == 1.75
    with pytest.raises(ValueError):
        stats.quantile([], 0.5)
