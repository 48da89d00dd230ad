"""Validate-time check that an experiment's environment can be found, without building it.

`srl validate` and `srl run` call this so that a misspelt gymnasium id or a user module that does not
import fails at once, naming the field and saying which of the two it is (with the import error's
first line), instead of every worker crash-looping on it.
"""

from __future__ import annotations

import importlib
from typing import Any

from srl_runtime.config.experiment import EnvironmentSpec

FIELD = "spec.environment"


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def _import(module: str) -> tuple[Any, str | None]:
    """(module, None) or (None, the error's one line); user modules may raise anything on import."""
    try:
        return importlib.import_module(module), None
    except (Exception, SystemExit) as err:  # noqa: BLE001 - reported, not handled
        return None, _one_line(err)


def _entry_point_problem(entry_point: str) -> str | None:
    module_name, _, attr = entry_point.partition(":")
    module, err = _import(module_name)
    if err is not None:
        return f"module {module_name!r} failed to import: {err}"
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            return f"module {module_name!r} has no attribute {attr!r}"
        obj = getattr(obj, part)
    return None


def environment_problems(spec: EnvironmentSpec) -> list[str]:
    """'spec.environment.<field>: problem' lines (empty when the environment can be made)."""
    if spec.entry_point is not None:
        problem = _entry_point_problem(spec.entry_point)
        return [f"{FIELD}.entryPoint: {problem}"] if problem else []
    assert spec.id is not None
    import gymnasium as gym

    env_id = spec.id
    if spec.id.startswith("ALE/") or spec.atari is not None:
        _, err = _import("ale_py")
        if err is not None:
            return [f"{FIELD}.id: {env_id!r} needs ale_py, which failed to import: {err}"]
        from srl_runtime.envs.atari import register_ale

        register_ale()
    if ":" in env_id:  # gymnasium's "module:EnvId": importing the module registers the id
        module_name, env_id = env_id.split(":", 1)
        _, err = _import(module_name)
        if err is not None:
            return [f"{FIELD}.id: module {module_name!r} failed to import: {err}"]
    try:
        env_spec = gym.spec(env_id)
    except gym.error.Error as err:
        return [f"{FIELD}.id: {env_id!r} is not registered with gymnasium: {str(err).strip().splitlines()[0]}"]
    entry = env_spec.entry_point
    if isinstance(entry, str):
        problem = _entry_point_problem(entry)
        if problem:
            return [f"{FIELD}.id: {env_id!r} is registered, but its entry point {entry!r}: {problem}"]
    return []
