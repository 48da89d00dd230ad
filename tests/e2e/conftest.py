"""E2E tier: real pods on a real node. Every test under tests/e2e is marked `e2e`.

Two ways to get a cluster (fixture `e2e_cluster`, one per session):
  - ours (default): the cluster tier's control plane without kwok plus a RealNode (node.py):
    containerd, kubelet, kube-proxy, CoreDNS in a network namespace; needs root. Tools come from
    scripts/install-e2e-tools.sh, images from scripts/build-images.sh (both run here; cached runs
    only check stamps; SRL_E2E_NO_INSTALL=1 runs neither).
  - any cluster named by SRL_E2E_KUBECONFIG (never a plain KUBECONFIG): kind, for instance, with the images
    of images/e2e-images.json loaded (`kind load image-archive <tar>`); no node is started.
Fixtures: e2e_cluster (harness.E2ECluster), e2e_images (name -> ref), e2e_node (RealNode or None),
namespace (fresh per test); the experiment fixtures (srl_operator, srl_namespace, volumes,
ferretdb) are in srl_fixtures.py.
A machine that lacks what the node needs is a failure that names it (not a skip).
After the session the host is compared with its state before: a sysctl, iptables chain, path,
link or mount that the node left behind fails the session.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "cluster"))  # controlplane, kube_pki, kubeclient

from harness import REPO, E2ECluster  # noqa: E402
from hostguard import HostSnapshot  # noqa: E402
from node import NodeError, RealNode, missing_prerequisites  # noqa: E402
from node import e2e_cluster as start_node_cluster  # noqa: E402
from srl_fixtures import ferretdb, srl_namespace, srl_operator, volumes  # noqa: E402, F401

from images import REFS, built_images  # noqa: E402

INSTALL_TOOLS = REPO / "scripts" / "install-e2e-tools.sh"
BUILD_IMAGES = REPO / "scripts" / "build-images.sh"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


def _cache_dir() -> Path:
    return Path(os.environ.get("SRL_CACHE", Path.home() / ".cache" / "srl-test"))


def external_kubeconfig() -> Path | None:
    """The cluster to test instead of our own node, if the environment names one."""
    # Only the explicit variable: a KUBECONFIG left in a shell must not send the tier to a real cluster.
    value = os.environ.get("SRL_E2E_KUBECONFIG")
    if not value:
        return None
    return Path(value.split(os.pathsep)[0]).expanduser()


def _fail(msg: str) -> None:
    pytest.fail(msg, pytrace=False)


def _run_script(script: Path, what: str) -> None:
    start = time.monotonic()
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    if proc.returncode != 0:
        _fail(f"{script.relative_to(REPO)} ({what}) failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    print(f"{script.name}: {time.monotonic() - start:.0f}s", file=sys.stderr)


def _client_bin_dir(tmp: Path) -> Path:
    """kubectl + helm in one folder: ours if built, else those on PATH."""
    ours = _cache_dir() / "bin"
    if all(os.access(ours / t, os.X_OK) for t in ("kubectl", "helm")):
        return ours
    folder = tmp / "client-bin"
    folder.mkdir(exist_ok=True)
    for tool in ("kubectl", "helm"):
        found = shutil.which(tool)
        if not found:
            _fail(f"{tool} not found in {ours} or on PATH (needed to drive the external cluster)")
        (folder / tool).symlink_to(found)
    return folder


@pytest.fixture(scope="session")
def e2e_cluster() -> Iterator[E2ECluster]:
    """One cluster with a Ready real node for the whole session (or the external one)."""
    with tempfile.TemporaryDirectory(prefix="srl-e2e-") as tmp_name:
        tmp = Path(tmp_name)
        external = external_kubeconfig()
        if external is not None:
            if not external.exists():
                _fail(f"kubeconfig {external} (SRL_E2E_KUBECONFIG / KUBECONFIG) does not exist")
            yield E2ECluster(external, _client_bin_dir(tmp), tmp, dict(REFS))
            return
        yield from _own_cluster(tmp)


def _own_cluster(tmp: Path) -> Iterator[E2ECluster]:
    bin_dir = _cache_dir() / "bin"
    if not os.environ.get("SRL_E2E_NO_INSTALL"):
        _run_script(INSTALL_TOOLS, "node tools")
        if BUILD_IMAGES.exists():
            _run_script(BUILD_IMAGES, "images")
    missing = missing_prerequisites(bin_dir, RealNode(tmp, bin_dir).state_root)
    if missing:
        _fail("the e2e node cannot run on this machine; missing:\n  - " + "\n  - ".join(missing))
    try:
        tarballs = built_images()
    except FileNotFoundError as exc:
        _fail(str(exc))
    before = HostSnapshot.take()
    # SIGTERM (a CI timeout, a Ctrl-\ of a wrapper) must still run the teardown below.
    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    host_if = ""
    try:
        start = time.monotonic()
        with start_node_cluster(tmp, bin_dir, images=tarballs) as (cp, node):
            host_if = node.network.host_if
            print(
                f"e2e node up in {time.monotonic() - start:.1f}s: {node.timings}; "
                f"images {node.imported}",
                file=sys.stderr,
            )
            yield E2ECluster(cp.admin_kubeconfig, bin_dir, cp.workdir, dict(REFS), node)
        print(f"e2e node stopped; cleanup: {node.cleanup_report}", file=sys.stderr)
    except NodeError as exc:
        _fail(str(exc))
    finally:
        signal.signal(signal.SIGTERM, previous)
    left = before.differences(HostSnapshot.take(links=(host_if,) if host_if else ()))
    if left:
        _fail("the e2e node left host changes behind:\n  - " + "\n  - ".join(left))


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture
def namespace(e2e_cluster: E2ECluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards (without waiting)."""
    name = e2e_cluster.new_namespace(request.node.name)
    yield name
    e2e_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def e2e_images(e2e_cluster: E2ECluster) -> dict[str, str]:
    """Image name (runtime, operator, redis, ferretdb) -> the ref pods use."""
    return e2e_cluster.images


@pytest.fixture(scope="session")
def e2e_node(e2e_cluster: E2ECluster) -> RealNode | None:
    """Our node (None on an external cluster)."""
    return e2e_cluster.node
