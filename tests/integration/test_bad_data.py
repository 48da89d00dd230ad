"""Non-finite data from a user's environment never reaches the optimiser (issue 9, item 2), in serial
mode (every worker in this process, the same worker and stream code as `srl run`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from srl_runtime.config.load import parse_experiment
from srl_runtime.launcher.serial import run_serial
from srl_runtime.param_db import make_parameter_db

pytestmark = pytest.mark.integration


def _experiment(tmp_path: Path, what: str = "reward", **spec: Any) -> Any:
    return parse_experiment({
        "metadata": {"name": "nan-env"},
        "spec": {
            "environment": {"entryPoint": "bad_envs:NaNRewardCartPole",
                            "kwargs": {"marker": str(tmp_path / "nan-claimed"), "at_step": 30, "what": what}},
            "actors": {"replicas": 1, "envsPerSlot": 4, "sampleSteps": 16},
            "trainers": {"batchSize": 4},
            "stop": {"trainSteps": 12, "wallSeconds": 240},
            **spec,
        },
    })  # fmt: skip


def _latest_params_finite(tmp_path: Path, exp: Any) -> bool:
    db = make_parameter_db(exp.spec.parameter_db, tmp_path)
    try:
        state = db.get().state["policy"]
    finally:
        db.close()
    return all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


@pytest.mark.parametrize("what", ["reward", "observation"])
def test_one_non_finite_env_value_is_counted_dropped_and_training_goes_on(tmp_path: Path, what: str) -> None:
    exp = _experiment(tmp_path, what="reward" if what == "reward" else "obs")
    summary = run_serial(exp, tmp_path / "run")
    assert summary.stop_reason == "train_steps", summary
    assert _latest_params_finite(tmp_path / "run", exp), "the policy was poisoned"
    assert summary.non_finite_env_values == 1, summary
    assert summary.non_finite_samples >= 1, "the trainer must skip the sample holding the NaN/inf"
    assert summary.skipped_updates == 0, "nothing non-finite may reach an update"
    assert summary.mean_return is not None and math.isfinite(summary.mean_return), "a NaN return reached the window"


def test_non_finite_fail_policy_ends_the_run(tmp_path: Path) -> None:
    exp = _experiment(tmp_path, failurePolicy={"nonFinite": "fail"})
    summary = run_serial(exp, tmp_path / "run")
    assert summary.stop_reason is not None and summary.stop_reason.startswith("failed: non-finite reward from env"), summary
    assert summary.train_steps < 12, summary
