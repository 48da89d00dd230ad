"""Cluster tier: one real control plane (etcd, kube-apiserver, controller-manager, scheduler,
kwok) for the whole session. Every test under tests/cluster is marked `cluster`.

Binaries come from scripts/install-cluster-tools.sh (run here when something is missing; the
first build takes a long while, later runs only check stamps). Under CI=true a tool that cannot
be installed fails the session; elsewhere the tier is skipped with the reason.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from controlplane import TOOLS, ControlPlane, ControlPlaneError

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
INSTALL = REPO / "scripts" / "install-cluster-tools.sh"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # This hook sees every collected item, not just ours: mark only tests under this folder.
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.cluster)


def _cache_dir() -> Path:
    return Path(os.environ.get("SRL_CACHE", Path.home() / ".cache" / "srl-test"))


def _unavailable(msg: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{msg} (CI=true: a missing cluster tool is a failure)", pytrace=False)
    pytest.skip(msg)


def _ensure_tools(bin_dir: Path) -> None:
    """Run the (idempotent) installer; a cached run is a few seconds of stamp checks."""
    if os.environ.get("SRL_CLUSTER_NO_INSTALL"):
        missing = [t for t in TOOLS if not (bin_dir / t).exists()]
        if missing:
            _unavailable(
                f"cluster tools missing in {bin_dir}: {', '.join(missing)}; "
                f"run {INSTALL.relative_to(REPO)}"
            )
        return
    proc = subprocess.run(["bash", str(INSTALL)], capture_output=True, text=True)
    if proc.returncode != 0:
        _unavailable(f"{INSTALL.relative_to(REPO)} failed:\n{proc.stdout}{proc.stderr}")


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    bin_dir = _cache_dir() / "bin"
    _ensure_tools(bin_dir)
    with tempfile.TemporaryDirectory(prefix="srl-cluster-") as tmp:
        cp = ControlPlane(Path(tmp), bin_dir)
        try:
            cp.start()
        except ControlPlaneError as exc:
            # The message holds the tail of every component's log.
            pytest.fail(str(exc), pytrace=False)
        try:
            yield cp
        finally:
            cp.stop()


@pytest.fixture
def namespace(control_plane: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards (without waiting for finalization)."""
    # DNS-1123 label: lowercase alphanumerics and '-', at most 63 chars; unique per run.
    slug = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower())[:48].strip("-")
    name = f"t-{slug}-{secrets.token_hex(3)}"
    control_plane.kubectl("create", "namespace", name)
    # The namespace's `default` ServiceAccount is made by a controller; pods wait on it.
    control_plane.kubectl(
        "wait", "--for=create", "serviceaccount/default", "-n", name, "--timeout=30s"
    )
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)
