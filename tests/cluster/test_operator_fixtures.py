"""Fixtures and helpers for the operator's cluster tests (imported by test_operator*.py).

The chart is installed with helm (namespaced scope); the operator itself runs here as a subprocess
(`python -m srl_operator`, i.e. `kopf run`) with the chart ServiceAccount's token, so any RBAC rule
the chart lacks fails a test. kwok plays the kubelet on fake nodes.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from controlplane import ControlPlane

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "srl-operator"
CRD = REPO / "crds" / "rlexperiment.yaml"
RELEASE = "srl-operator"  # the chart's fullname is then "srl-operator"
OPERATOR_NAMESPACE = "srl-system"
SELECTOR_KEY = "srl.dev/experiment"


def eventually(fn: Callable[[], Any], timeout: float = 90, interval: float = 0.5, what: str = "") -> Any:
    """Poll fn until it returns something truthy; fail with its last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what or 'condition'} not met in {timeout}s; last value: {last!r}")


class OperatorProcess:
    """The operator as a subprocess under a given kubeconfig; restartable, stopped by its PID."""

    def __init__(
        self,
        kubeconfig: Path,
        namespaces: list[str],
        log: Path,
        interval: float = 2.0,
        chart_env: dict[str, str] | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.namespaces = namespaces
        self.log = log
        self.interval = interval
        self.chart_env = dict(chart_env or {})  # the installed chart's settings (see chart_operator_env)
        self.extra_env = dict(extra_env or {})  # a test's own settings on top
        self.proc: subprocess.Popen[bytes] | None = None
        self.liveness_port = _free_port()

    def start(self) -> None:
        env = {
            **os.environ,
            **self.chart_env,
            "KUBECONFIG": str(self.kubeconfig),
            "SRL_WATCH_NAMESPACES": ",".join(self.namespaces),
            "SRL_LIVENESS_PORT": str(self.liveness_port),
            "SRL_RECONCILE_INTERVAL": str(self.interval),
            "SRL_RUNTIME_IMAGE": "registry.invalid/srl-runtime:test",  # never pulled: kwok
            "SRL_REDIS_TIMEOUT": "0.5",
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "srl_operator", "--verbose"], stdout=out, stderr=subprocess.STDOUT, env=env
            )

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, as when a node dies mid-reconcile."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def peak_rss_kib(self) -> int | None:
        """VmHWM of the running process (kopf is exec'd in place, so it is this PID)."""
        if self.proc is None:
            return None
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        except OSError:
            return None
        return None

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the running process."""
        if self.proc is None:
            return None
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def forbidden_lines(self) -> list[str]:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [ln for ln in text.splitlines() if "403" in ln and "orbidden" in ln]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CRD_NAME = "rlexperiments.srl.dev"


def adopt_crd(cp: ControlPlane, release: str = RELEASE, namespace: str = OPERATOR_NAMESPACE) -> bool:
    """Give a CRD that Helm does not own (applied by kubectl, or installed from the chart's former
    crds/ directory, which Helm never marks) the ownership marks `helm install` requires: the step
    docs/operator.md gives for upgrading from such a chart. False when there is nothing to adopt."""
    found = cp.kubectl("get", "crd", CRD_NAME, "-o", "json", check=False)
    if found.returncode != 0:
        return False
    if (json.loads(found.stdout)["metadata"].get("annotations") or {}).get("meta.helm.sh/release-name"):
        return False  # a release owns it already (ours, or another one, which helm then reports)
    cp.kubectl("label", "--overwrite", "crd", CRD_NAME, "app.kubernetes.io/managed-by=Helm")
    cp.kubectl("annotate", "--overwrite", "crd", CRD_NAME,
               f"meta.helm.sh/release-name={release}", f"meta.helm.sh/release-namespace={namespace}")  # fmt: skip
    return True


def install_chart(
    cp: ControlPlane,
    watch: list[str],
    release: str = RELEASE,
    namespace: str = OPERATOR_NAMESPACE,
    sets: tuple[str, ...] = (),
    chart: Path = CHART,
) -> None:
    """helm upgrade --install in namespaced scope, watching `watch` (plus `--set` of each of `sets`);
    the chart installs and upgrades the CRD (templates/crd.yaml)."""
    adopt_crd(cp, release, namespace)  # the crd_installed fixture applies it with kubectl
    args = [
        "upgrade", "--install", release, str(chart), "-n", namespace, "--create-namespace", "--wait=false",
        "--set", "image.repository=registry.invalid/srl-operator", "--set", "image.tag=test",
        "--set", "scope=namespaced",
    ]  # fmt: skip
    for i, ns in enumerate(watch):
        args += ["--set", f"watchNamespaces[{i}]={ns}"]
    for value in sets:
        args += ["--set", value]
    cp.helm(*args)
    cp.kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")


def chart_operator_env(cp: ControlPlane, release: str = RELEASE, namespace: str = OPERATOR_NAMESPACE) -> dict[str, str]:
    """The SRL_* environment the installed chart gives the operator's container, resolved as the
    kubelet would (the downward API's metadata.namespace is the release namespace), so the chart's
    values reach the operator the tests run as a subprocess."""
    dep = cp.kubectl_json("get", "deployment", release, "-n", namespace)
    env: dict[str, str] = {}
    for e in dep["spec"]["template"]["spec"]["containers"][0].get("env") or []:
        if "value" in e:
            env[e["name"]] = e["value"]
        elif (e.get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath") == "metadata.namespace":
            env[e["name"]] = namespace
    return {k: v for k, v in env.items() if k.startswith("SRL_")}


def start_operator(
    cp: ControlPlane, namespace: str, log: Path, sets: tuple[str, ...] = (), extra_env: dict[str, str] | None = None
) -> OperatorProcess:
    """Install the chart (with `sets`) for `namespace` and start the operator under its ServiceAccount."""
    install_chart(cp, [namespace], sets=sets)
    kubeconfig = cp.serviceaccount_kubeconfig(OPERATOR_NAMESPACE, RELEASE)
    op = OperatorProcess(kubeconfig, [namespace], log, chart_env=chart_operator_env(cp), extra_env=extra_env)
    op.start()
    return op


def stop_operator(cp: ControlPlane, op: OperatorProcess) -> None:
    """Stop it; fail when it hit an RBAC denial (the chart lacks a rule the operator needs)."""
    op.stop()
    forbidden = op.forbidden_lines()
    cp.kubectl("delete", "pv", "-l", "srl-test=true", "--wait=false", check=False)
    if forbidden:
        pytest.fail("operator hit RBAC denials:\n" + "\n".join(forbidden[:10]), pytrace=False)


def pre_bind_volume(cp: ControlPlane, namespace: str, experiment: str) -> str:
    """A PersistentVolume reserved for the experiment's parameter-DB claim (no provisioner here)."""
    name = f"pv-{namespace}-{experiment}"[:63]
    cp.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": name, "labels": {"srl-test": "true"}},
            "spec": {
                "capacity": {"storage": "100Gi"},
                "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "",
                "hostPath": {"path": f"/tmp/srl-test-pv/{name}"},
                "claimRef": {"namespace": namespace, "name": f"{experiment}-params"},
            },
        }
    )
    return name


def load_example(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def rlx(cp: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    return cp.kubectl_json("get", "rlx", name, "-n", namespace)


def children(cp: ControlPlane, namespace: str, experiment: str, kinds: str = "pods") -> list[dict[str, Any]]:
    return cp.kubectl_json("get", kinds, "-n", namespace, "-l", f"{SELECTOR_KEY}={experiment}")["items"]


def worker_pods(cp: ControlPlane, namespace: str, experiment: str, role: str | None = None) -> list[dict[str, Any]]:
    selector = f"{SELECTOR_KEY}={experiment},srl.dev/role" + (f"={role}" if role else "")
    return cp.kubectl_json("get", "pods", "-n", namespace, "-l", selector)["items"]


def live(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def status_of(cp: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    return rlx(cp, namespace, name).get("status") or {}


def events_for(cp: ControlPlane, namespace: str, name: str) -> list[dict[str, Any]]:
    items = cp.kubectl_json(
        "get", "events", "-n", namespace, "--field-selector", f"involvedObject.kind=RLExperiment,involvedObject.name={name}"
    )["items"]
    return sorted(items, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")


def experiment_doc(name: str, **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"environment": {"id": "CartPole-v1"}, "stop": {"trainSteps": 1000}}
    base.update(spec)
    return {"apiVersion": "srl.dev/v1alpha1", "kind": "RLExperiment", "metadata": {"name": name}, "spec": base}


@pytest.fixture(scope="module")
def crd_installed(control_plane: ControlPlane) -> ControlPlane:
    """The generated CRD, applied as checked in."""
    control_plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    control_plane.kubectl("wait", "--for=condition=Established", "crd/rlexperiments.srl.dev", "--timeout=60s")
    return control_plane


@pytest.fixture(scope="module")
def fake_nodes(control_plane: ControlPlane) -> list[str]:
    """Enough kwok capacity for every test (GPUs for cuda trainers); created once per session."""
    existing = control_plane.kubectl_json("get", "nodes", "-l", "srl-test=operator")["items"]
    if existing:
        return [n["metadata"]["name"] for n in existing]
    return control_plane.add_fake_nodes(
        4, cpu="1000", memory="4Ti", pods="1000", gpus=8, prefix="srl-op-node", labels={"srl-test": "operator"}
    )


@pytest.fixture(scope="module")
def operator_namespace(control_plane: ControlPlane) -> Iterator[str]:
    """One namespace the operator watches for a whole test module."""
    name = f"srl-op-{secrets.token_hex(3)}"
    control_plane.kubectl("create", "namespace", name)
    control_plane.kubectl("wait", "--for=create", "serviceaccount/default", "-n", name, "--timeout=30s")
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def operator(
    control_plane: ControlPlane, fake_nodes: list[str], operator_namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """helm-installed chart + the operator running under the chart's ServiceAccount."""
    op = start_operator(control_plane, operator_namespace, tmp_path_factory.mktemp("operator") / "operator.log")
    try:
        yield op
    finally:
        stop_operator(control_plane, op)


def dump(cp: ControlPlane, namespace: str, name: str, op: OperatorProcess | None = None) -> str:
    """Diagnostics for an assertion message."""
    parts = [json.dumps(status_of(cp, namespace, name), indent=1)]
    parts.append(cp.kubectl("get", "pods,svc,cm,pvc,deploy", "-n", namespace, "-o", "wide", check=False).stdout)
    if op is not None:
        parts.append(op.log_tail())
    return "\n".join(parts)
