"""How the operator handles a large experiment: bring-up, status, memory, CPU at rest, scale-down, delete.

Starts its own control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok; binaries from
scripts/install-cluster-tools.sh), installs the chart with helm, runs the operator under the chart's
ServiceAccount, applies an RLExperiment with N actors on kwok fake nodes, and measures, from
`kubectl apply`:

- seconds to the first status, to every actor pod created (status.actors.replicas == N) and to every
  actor ready (status.actors.ready == N);
- the operator's peak RSS (VmHWM) and CPU-seconds, its CPU-seconds per reconcile interval once the
  experiment is idle, and the LIST calls it makes at rest (from its own /metrics);
- `kubectl scale rlx --replicas=M` until M actors are left (pods gone, not just marked), then
  `kubectl delete rlx` until no pod and no child of the experiment is left (garbage collection);
- the API requests the operator made (its own counter) and the API server served (apiserver_request_total).

The control plane's own clients are given the rate limits a large cluster runs with (the defaults, 50
QPS for the scheduler and 20 for the controller-manager, would bind 15,000 pods in 300 s and
garbage-collect them in 750 s whatever the operator does); the flags are printed with the result.

    python bench/operator_scale.py [--actors 1000] [--nodes 4] [--interval 10] [--scale-to 100]

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "cluster"))

from controlplane import ControlPlane  # noqa: E402
from kubernetes import client, config  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from test_operator_fixtures import (  # noqa: E402
    OPERATOR_NAMESPACE,
    RELEASE,
    OperatorProcess,
    _free_port,
    chart_operator_env,
    experiment_doc,
    install_chart,
    pre_bind_volume,
)

from srl_runtime.config.crd_schema import GROUP, PLURAL, VERSION  # noqa: E402

# Client rate limits of the control plane's own components, as large clusters raise them.
CONTROL_PLANE_FLAGS = {
    "kube-scheduler": ["--kube-api-qps=1000", "--kube-api-burst=2000"],
    "kube-controller-manager": ["--kube-api-qps=1000", "--kube-api-burst=2000"],
}
CHILD_KINDS = "pods,services,configmaps,persistentvolumeclaims,secrets,deployments,replicasets,networkpolicies"


def cpu_seconds(pid: int) -> float:
    """User + system CPU-seconds of a process so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def component_cpu(cp: ControlPlane, op: OperatorProcess) -> dict[str, float]:
    """CPU-seconds so far of every control-plane component and of the operator."""
    out = {c.name: cpu_seconds(c.proc.pid) for c in cp._components}
    out["operator"] = op.cpu_seconds() or 0.0
    return out


def metric_samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples]


def operator_requests(port: int) -> Counter[str]:
    """The operator's API requests so far, by verb."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out: Counter[str] = Counter()
    for name, labels, value in metric_samples(text):
        if name == "srl_operator_api_requests_total":
            out[labels["verb"]] += int(value)
    return out


def apiserver_requests(cp: ControlPlane) -> Counter[str]:
    """Requests the API server has served, by 'VERB resource'."""
    text = cp.kubectl("get", "--raw", "/metrics").stdout
    out: Counter[str] = Counter()
    for name, labels, value in metric_samples(text):
        if name == "apiserver_request_total":
            out[f"{labels.get('verb')} {labels.get('resource')}"] += int(value)
    return out


class Watcher:
    """Reads the experiment's status and the namespace's pod count through the admin client."""

    def __init__(self, kubeconfig: Path, namespace: str, name: str) -> None:
        api = config.new_client_from_config(str(kubeconfig))
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.ns, self.name = namespace, name

    def status(self) -> dict[str, Any]:
        try:
            obj = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, self.name)
        except ApiException as e:
            if e.status == 404:
                return {}
            raise
        return obj.get("status") or {}

    def pods(self) -> int:
        """Pods in the namespace (one page of 1 and the server's count of the rest: no full LIST)."""
        resp = self.core.list_namespaced_pod(self.ns, limit=1, _preload_content=False)
        page = json.loads(resp.data)
        return len(page.get("items") or []) + int((page.get("metadata") or {}).get("remainingItemCount") or 0)

    def wait(self, what: str, check: Any, t0: float, timeout: float, poll: float = 0.5) -> float | None:
        """Seconds from t0 until check() holds; None on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return round(time.monotonic() - t0, 1)
            time.sleep(poll)
        print(f"timed out waiting for {what}", file=sys.stderr)
        return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actors", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--interval", type=float, default=10.0, help="operator reconcile interval (s)")
    parser.add_argument("--scale-to", type=int, default=100, help="actors after the scale-down")
    parser.add_argument(
        "--delete-at-scale", action="store_true", help="delete the experiment with all N actors (no scale-down)"
    )
    parser.add_argument("--idle-intervals", type=int, default=3, help="reconcile intervals measured at rest")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--keep-logs", type=Path, help="copy the operator's and the control plane's logs here")
    parser.add_argument("--trace", action="store_true", help="print the status every 5 s to stderr")
    args = parser.parse_args()
    bin_dir = Path(os.environ.get("SRL_CACHE", Path.home() / ".cache" / "srl-test")) / "bin"

    with tempfile.TemporaryDirectory(prefix="srl-bench-") as tmp:
        kwok_options = {"podPlayStageParallelism": max(16, args.nodes)}  # kwok plays every kubelet at once
        cp = ControlPlane(Path(tmp), bin_dir, extra_args=CONTROL_PLANE_FLAGS, kwok_options=kwok_options)
        cp.start()
        op: OperatorProcess | None = None
        try:
            ns, name, n = "bench", "scale", args.actors
            cp.kubectl("create", "namespace", ns)
            cp.kubectl("wait", "--for=create", "serviceaccount/default", "-n", ns, "--timeout=30s")
            per_node = str(n // args.nodes + 50)
            cp.add_fake_nodes(args.nodes, cpu="1000", memory="4Ti", pods=per_node, gpus=8)
            install_chart(cp, [ns])
            metrics_port = _free_port()
            op = OperatorProcess(
                cp.serviceaccount_kubeconfig(OPERATOR_NAMESPACE, RELEASE), [ns], Path(tmp) / "operator.log",
                interval=args.interval, chart_env=chart_operator_env(cp),
                extra_env={"SRL_OPERATOR_METRICS_PORT": str(metrics_port)},
            )  # fmt: skip
            op.start()
            watcher = Watcher(cp.admin_kubeconfig, ns, name)

            peak = {"kib": 0}
            stop = threading.Event()

            def sample_rss() -> None:
                while not stop.is_set():
                    peak["kib"] = max(peak["kib"], op.peak_rss_kib() or 0)
                    time.sleep(0.2)

            threading.Thread(target=sample_rss, daemon=True).start()
            time.sleep(3)  # kopf's initial listing: measure reconciling, not start-up
            idle_kib = op.peak_rss_kib()
            pre_bind_volume(cp, ns, name)
            doc = experiment_doc(name, actors={"replicas": n, "resources": {"cpu": "10m"}})
            doc["metadata"]["namespace"] = ns
            api0, ops0, cpu0 = apiserver_requests(cp), operator_requests(metrics_port), op.cpu_seconds() or 0.0
            parts0 = component_cpu(cp, op)

            t0 = time.monotonic()
            cp.apply(doc)
            first_status = all_created = all_ready = None
            deadline = t0 + args.timeout
            while time.monotonic() < deadline:
                actors = watcher.status().get("actors") or {}
                now = round(time.monotonic() - t0, 1)
                if first_status is None and actors:
                    first_status = now
                if all_created is None and actors.get("replicas", 0) >= n:
                    all_created = now
                if actors.get("ready", 0) >= n:
                    all_ready = now
                    break
                if args.trace and int(now * 2) % 10 == 0:
                    print(f"{now:6.1f}s replicas {actors.get('replicas')} ready {actors.get('ready')}"
                          f" load {os.getloadavg()[0]:.1f}", file=sys.stderr)
                time.sleep(0.5)
            cpu_bringup = (op.cpu_seconds() or 0.0) - cpu0
            # Who spent the machine's CPU while the experiment came up: the bound, in numbers.
            parts1 = component_cpu(cp, op)
            bringup_cpu = {k: round(parts1[k] - parts0.get(k, 0.0), 1) for k in parts1}

            # At rest: CPU per reconcile interval and LIST calls, once the bring-up round is over.
            time.sleep(args.interval)
            lists0, cpu_idle0 = operator_requests(metrics_port)["list"], op.cpu_seconds() or 0.0
            time.sleep(args.interval * args.idle_intervals)
            idle_cpu = ((op.cpu_seconds() or 0.0) - cpu_idle0) / args.idle_intervals
            lists_at_rest = operator_requests(metrics_port)["list"] - lists0

            scaled = None
            if not args.delete_at_scale:
                pods_before = watcher.pods()
                t1 = time.monotonic()
                cp.kubectl("scale", "rlx", name, "-n", ns, f"--replicas={args.scale_to}")
                want = pods_before - (n - args.scale_to)
                scaled = watcher.wait(
                    "scale-down", lambda: watcher.pods() <= want
                    and (watcher.status().get("actors") or {}).get("replicas") == args.scale_to, t1, args.timeout,
                )  # fmt: skip
            pods_at_delete = watcher.pods()

            t2 = time.monotonic()
            cp.kubectl("delete", "rlx", name, "-n", ns, "--wait=false")
            deleted = watcher.wait("deletion", lambda: watcher.pods() == 0 and not watcher.status(), t2, args.timeout)
            orphans = [
                o["kind"] + "/" + o["metadata"]["name"]
                for o in cp.kubectl_json("get", CHILD_KINDS, "-n", ns, "-l", f"srl.dev/experiment={name}")["items"]
            ]
            cpu_total = (op.cpu_seconds() or 0.0) - cpu0
            api1, ops1 = apiserver_requests(cp), operator_requests(metrics_port)
            stop.set()
            served = api1 - api0
            result = {
                "actors": n,
                "fake_nodes": args.nodes,
                "seconds_to_first_status": first_status,
                "seconds_to_all_created": all_created,
                "seconds_to_all_ready": all_ready,
                "scale_down_to": None if args.delete_at_scale else args.scale_to,
                "scale_down_seconds": scaled,
                "pods_at_delete": pods_at_delete,
                "delete_seconds": deleted,
                "orphans": orphans,
                "operator_peak_rss_mib": round(peak["kib"] / 1024, 1),
                "operator_idle_rss_mib": None if idle_kib is None else round(idle_kib / 1024, 1),
                "operator_cpu_seconds_bringup": round(cpu_bringup, 1),
                "bringup_cpu_seconds_by_process": bringup_cpu,
                "operator_cpu_seconds_total": round(cpu_total, 1),
                "operator_idle_cpu_seconds_per_interval": round(idle_cpu, 3),
                "operator_lists_at_rest": lists_at_rest,
                "operator_api_requests": dict(ops1 - ops0),
                "apiserver_requests": dict(served.most_common(8)),
                "apiserver_requests_total": sum(served.values()),
                "reconcile_interval_s": args.interval,
                "control_plane_flags": CONTROL_PLANE_FLAGS,
                "kwok_options": kwok_options,
                "load_average": os.getloadavg()[0],
            }
            print(json.dumps(result))
            ok = all_ready is not None and (scaled is not None or args.delete_at_scale) and deleted is not None and not orphans
            return 0 if ok else 1
        except subprocess.CalledProcessError as e:
            print(f"{e}\n{e.stdout}\n{e.stderr}", file=sys.stderr)
            raise
        finally:
            if op is not None:
                op.stop()
            cp.stop()
            if args.keep_logs:
                args.keep_logs.mkdir(parents=True, exist_ok=True)
                for log in [Path(tmp) / "operator.log", *cp.logs.glob("*.log")]:
                    if log.exists():
                        shutil.copy(log, args.keep_logs / log.name)


if __name__ == "__main__":
    raise SystemExit(main())
