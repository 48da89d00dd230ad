"""The operator installs as `srl-runtime[operator]` without torch: its whole import graph is covered
by the core dependencies plus the `operator` extra (the operator image installs exactly those)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]
TRAINING_ONLY = ("torch", "numpy", "gymnasium", "zmq", "pymongo", "tensorboardX", "ale_py", "cv2")


def _names(requirements: list[str]) -> set[str]:
    return {r.split(">")[0].split("=")[0].split("[")[0].strip().lower() for r in requirements}


def test_core_and_operator_extra_pull_no_training_dependency() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = _names(project["dependencies"]) | _names(project["optional-dependencies"]["operator"])
    assert not names & {"torch", "numpy", "gymnasium", "pyzmq", "pymongo", "tensorboardx"}, names
    assert {"torch", "numpy", "gymnasium"} <= _names(project["optional-dependencies"]["train"])


def test_the_operator_imports_without_the_training_dependencies() -> None:
    """Import srl_operator.main with every training-only module made unimportable."""
    code = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {TRAINING_ONLY!r}:
            raise ModuleNotFoundError(f"{{name}} is blocked", name=name)
sys.meta_path.insert(0, Block())
import srl_operator.main
print("ok")
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{REPO}:{REPO / 'operator'}", "SRL_WATCH_NAMESPACES": "x"},
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
