"""What a user looks at while an RLExperiment trains on real pods: `kubectl get rlx`, status,
Events, `kubectl logs`, and the workers' Prometheus endpoints. Helpers for the e2e tests.

`cluster` is anything with the ControlPlane methods `kubectl`, `kubectl_json` and `apply` and its
`bin_dir` / `admin_kubeconfig` (tests/cluster/controlplane.py, or the e2e tier's wrapper around an
external $KUBECONFIG).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

EXPERIMENT_LABEL = "srl.dev/experiment"
ROLE_LABEL = "srl.dev/role"


def eventually(fn: Callable[[], Any], timeout: float, what: str, interval: float = 1.0) -> Any:
    """Poll `fn` until it returns something truthy; fail with its last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout:.0f}s; last value: {last!r}")


@dataclass
class Experiment:
    """One applied RLExperiment and the kubectl views of it."""

    cluster: Any
    namespace: str
    name: str
    started: float = field(default_factory=time.monotonic)

    # ---- kubectl get
    def get(self) -> dict[str, Any]:
        return self.cluster.kubectl_json("get", "rlx", self.name, "-n", self.namespace)

    def status(self) -> dict[str, Any]:
        return self.get().get("status") or {}

    def printed(self) -> str:
        """`kubectl get rlx NAME` as a user sees it."""
        return self.cluster.kubectl("get", "rlx", self.name, "-n", self.namespace).stdout

    def pods(self, role: str | None = None) -> list[dict[str, Any]]:
        selector = f"{EXPERIMENT_LABEL}={self.name},{ROLE_LABEL}" + (f"={role}" if role else "")
        return self.cluster.kubectl_json("get", "pods", "-n", self.namespace, "-l", selector)["items"]

    def live_pods(self, role: str | None = None) -> list[dict[str, Any]]:
        return [p for p in self.pods(role) if not p["metadata"].get("deletionTimestamp")]

    def running_pods(self, role: str | None = None) -> list[dict[str, Any]]:
        return [p for p in self.live_pods(role) if (p.get("status") or {}).get("phase") == "Running"]

    def redis_pods(self) -> list[dict[str, Any]]:
        selector = f"{EXPERIMENT_LABEL}={self.name},srl.dev/component=redis"
        return self.cluster.kubectl_json("get", "pods", "-n", self.namespace, "-l", selector)["items"]

    def events(self) -> list[dict[str, Any]]:
        items = self.cluster.kubectl_json(
            "get", "events", "-n", self.namespace,
            "--field-selector", f"involvedObject.kind=RLExperiment,involvedObject.name={self.name}",
        )["items"]  # fmt: skip
        return sorted(items, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")

    def logs(self, pod: str, previous: bool = False) -> str:
        args = ["logs", pod, "-n", self.namespace] + (["--previous"] if previous else [])
        out = self.cluster.kubectl(*args, check=False)
        return out.stdout + out.stderr

    # ---- waiting
    def wait_phase(self, phase: str, timeout: float) -> dict[str, Any]:
        try:
            return eventually(lambda: (s := self.status()).get("phase") == phase and s, timeout, f"{self.name} phase {phase}")
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.describe()}") from None

    def wait_status(self, predicate: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict[str, Any]:
        try:
            return eventually(lambda: (s := self.status()) and predicate(s) and s, timeout, what)
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.describe()}") from None

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    # ---- what a failing test prints
    def describe(self, log_lines: int = 25) -> str:
        parts = [self.printed(), json.dumps(self.status(), indent=1)[:4000]]
        parts.append("events: " + "; ".join(f"{e['reason']}: {e.get('message', '')[:160]}" for e in self.events()[-15:]))
        for p in self.pods():
            name = p["metadata"]["name"]
            st = p.get("status") or {}
            parts.append(f"--- pod {name} phase={st.get('phase')} ip={st.get('podIP')}")
            parts.append("\n".join(self.logs(name).splitlines()[-log_lines:]))
        return "\n".join(parts)


# ---- stop reasons, logs and metrics


def redis_restarts(exp: Experiment) -> tuple[list[str], int]:
    """(uids, total container restarts) of the experiment's Redis pods."""
    pods = [p for p in exp.redis_pods() if not p["metadata"].get("deletionTimestamp")]
    uids = sorted(p["metadata"]["uid"] for p in pods)
    restarts = sum(c.get("restartCount", 0) for p in pods for c in (p.get("status") or {}).get("containerStatuses") or [])
    return uids, restarts


def scrape(cluster: Any, pod: dict[str, Any], port: int, timeout: float = 5.0) -> str:
    """GET http://<pod IP>:<port>/metrics: from this host where the pod network is routed here, else
    through the API server's pod proxy (which dials the same pod IP)."""
    ip = (pod.get("status") or {}).get("podIP")
    if ip:
        try:
            with urllib.request.urlopen(f"http://{ip}:{port}/metrics", timeout=timeout) as resp:
                return resp.read().decode()
        except OSError:
            pass
    meta = pod["metadata"]
    out = cluster.kubectl(
        "get", "--raw", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}:{port}/proxy/metrics", check=False
    )
    if out.returncode != 0:
        raise AssertionError(f"no metrics from {meta['name']} ({ip}:{port}): {out.stderr[-300:]}")
    return out.stdout


def metric_values(text: str, name: str) -> list[float]:
    """Every sample of metric `name` (or `name_total`) in a Prometheus text exposition."""
    pattern = re.compile(rf"^{re.escape(name)}(?:_total)?(?:\{{[^}}]*\}})? ([-+0-9.eEinfaNI]+)$", re.M)
    return [float(v) for v in pattern.findall(text)]


@dataclass
class LogFollower:
    """`kubectl logs -f POD` into memory: a deleted pod's last lines (its SIGTERM checkpoint) stay."""

    cluster: Any
    namespace: str
    pod: str
    proc: subprocess.Popen[str] | None = None

    def start(self) -> LogFollower:
        argv = [str(self.cluster.bin_dir / "kubectl"), "--kubeconfig", str(self.cluster.admin_kubeconfig),
                "logs", "-f", self.pod, "-n", self.namespace]  # fmt: skip
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return self

    def text(self, timeout: float = 60) -> str:
        """Wait for the stream to end (the container exited), then return what it printed."""
        assert self.proc is not None
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return out
