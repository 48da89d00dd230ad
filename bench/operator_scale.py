"""How fast the operator brings up a 1,000-actor experiment, and how much memory it needs.

Starts its own control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok; binaries
from scripts/install-cluster-tools.sh), installs the chart with helm, runs the operator under the
chart's ServiceAccount, applies an RLExperiment with N actors on kwok fake nodes, and measures the
time from `kubectl apply` until `.status.actors.ready == N` plus the operator's peak RSS (VmHWM).

    python bench/operator_scale.py [--actors 1000] [--nodes 4] [--interval 5]

Prints one JSON line with the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "cluster"))

from controlplane import ControlPlane  # noqa: E402
from test_operator_fixtures import (  # noqa: E402
    OPERATOR_NAMESPACE,
    RELEASE,
    OperatorProcess,
    experiment_doc,
    install_chart,
    pre_bind_volume,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actors", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--interval", type=float, default=5.0, help="operator reconcile interval (s)")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    bin_dir = Path(os.environ.get("SRL_CACHE", Path.home() / ".cache" / "srl-test")) / "bin"

    with tempfile.TemporaryDirectory(prefix="srl-bench-") as tmp:
        cp = ControlPlane(Path(tmp), bin_dir)
        cp.start()
        op: OperatorProcess | None = None
        try:
            ns = "bench"
            cp.kubectl("create", "namespace", ns)
            cp.kubectl("wait", "--for=create", "serviceaccount/default", "-n", ns, "--timeout=30s")
            per_node = str(args.actors // args.nodes + 50)
            cp.add_fake_nodes(args.nodes, cpu="1000", memory="4Ti", pods=per_node, gpus=8)
            install_chart(cp, [ns])
            kubeconfig = cp.serviceaccount_kubeconfig(OPERATOR_NAMESPACE, RELEASE)
            op = OperatorProcess(kubeconfig, [ns], Path(tmp) / "operator.log", interval=args.interval)
            op.start()

            peak = {"kib": 0}
            stop = threading.Event()

            def sample_rss() -> None:
                while not stop.is_set():
                    peak["kib"] = max(peak["kib"], op.peak_rss_kib() or 0)
                    time.sleep(0.2)

            sampler = threading.Thread(target=sample_rss, daemon=True)
            sampler.start()
            time.sleep(3)  # let kopf finish its initial listing: measure reconciling, not start-up
            idle_kib = op.peak_rss_kib()

            name = "scale"
            pre_bind_volume(cp, ns, name)
            doc = experiment_doc(name, actors={"replicas": args.actors, "resources": {"cpu": "10m"}})
            doc["metadata"]["namespace"] = ns
            cpu0 = op.cpu_seconds() or 0.0
            t0 = time.monotonic()
            cp.apply(doc)
            first_pod_at = all_created_at = None
            ready = 0
            while time.monotonic() - t0 < args.timeout:
                st = cp.kubectl_json("get", "rlx", name, "-n", ns).get("status") or {}
                actors = st.get("actors") or {}
                ready = actors.get("ready", 0)
                if first_pod_at is None and actors.get("replicas", 0) > 0:
                    first_pod_at = time.monotonic() - t0
                if all_created_at is None and actors.get("replicas", 0) >= args.actors:
                    all_created_at = time.monotonic() - t0
                if ready >= args.actors:
                    break
                time.sleep(0.5)
            elapsed = time.monotonic() - t0
            cpu = (op.cpu_seconds() or 0.0) - cpu0
            time.sleep(1)
            stop.set()
            sampler.join()
            result = {
                "actors": args.actors,
                "ready": ready,
                "seconds_to_all_ready": round(elapsed, 1),
                "seconds_to_first_pod_in_status": None if first_pod_at is None else round(first_pod_at, 1),
                "seconds_to_all_created_in_status": None if all_created_at is None else round(all_created_at, 1),
                "operator_peak_rss_mib": round(peak["kib"] / 1024, 1),
                "operator_idle_rss_mib": None if idle_kib is None else round(idle_kib / 1024, 1),
                "operator_cpu_seconds": round(cpu, 1),
                "reconcile_interval_s": args.interval,
                "fake_nodes": args.nodes,
            }
            print(json.dumps(result))
            return 0 if ready >= args.actors else 1
        finally:
            if op is not None:
                op.stop()
            cp.stop()


if __name__ == "__main__":
    raise SystemExit(main())
