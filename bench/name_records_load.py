"""The name-record load of N workers on one real redis-server: ops/s, server CPU, client latency.

Drives the Go load generator bench/nrload (built into ~/.cache/srl-bench/bin when missing), which
simulates the workers, one TCP connection each (two for workers with a keep-alive thread), each
replaying its role's command sequence from bench/nrload/worker_commands.json: the description
tests/integration/test_name_records_redis.py checks against a real worker. Default mix: 15,000
actors, 32 policy workers, 8 trainers (trainer 0 also runs the experiment monitor), starting evenly
over the first second.

This script raises its own open-file limit to the hard limit (inherited by redis-server and the
generator), starts redis-server on loopback with maxclients high enough, and measures over the
generator's window (after ramp and warm-up): commands/s the server processed (INFO stats
total_commands_processed delta), redis-server CPU seconds per second (/proc/PID/stat), the
generator's round-trip latency p50/p99, and whether it kept up (round trips done vs intended, and
how late it ran against its schedule). Prints one JSON line; the server is stopped by its PID.

    python bench/name_records_load.py [--actors 15000] [--policies 32] [--trainers 8] [--seconds 30]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "bench" / "nrload"
BIN_DIR = Path(os.environ.get("SRL_BENCH_BIN", Path.home() / ".cache" / "srl-bench" / "bin"))
sys.path.insert(0, str(REPO / "tests"))

from servers import RedisServer, find_redis_server  # noqa: E402

from srl_runtime.name_records.redis_backend import INDEX_KEY  # noqa: E402


def generator() -> Path:
    """The nrload binary for the current sources (named by their hash), built when missing."""
    digest = hashlib.sha256()
    for name in ("main.go", "go.mod"):
        digest.update((SRC / name).read_bytes())
    binary = BIN_DIR / f"nrload-{digest.hexdigest()[:12]}"
    if not binary.exists():
        go = shutil.which("go") or "/usr/local/go/bin/go"
        BIN_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run([go, "build", "-o", str(binary), "."], cwd=SRC, check=True)
    return binary


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (/proc/stat: everything but idle and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def server_sample(admin: Any, pid: int, gen_pid: int) -> tuple[float, int, float, float, float]:
    """(redis-server CPU s, commands processed, wall time, generator CPU s, machine busy CPU s) now."""
    cmds = int(admin.info("stats")["total_commands_processed"])
    return proc_cpu_seconds(pid), cmds, time.time(), proc_cpu_seconds(gen_pid), machine_busy_seconds()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--actors", type=int, default=15_000)
    ap.add_argument("--policies", type=int, default=32)
    ap.add_argument("--trainers", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=30.0, help="measured window")
    ap.add_argument("--ramp", type=float, default=1.0, help="workers start evenly over this many s")
    ap.add_argument("--warmup", type=float, default=6.0, help="s after the ramp before measuring")
    args = ap.parse_args()
    binary = find_redis_server()
    if binary is None:
        sys.exit("redis-server not found (PATH or /usr/bin)")
    nrload = generator()
    workers = args.actors + args.policies + args.trainers
    connections = workers + args.policies + args.trainers + 2  # keep-alive threads; the monitor's two
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # for us, redis-server and nrload
    if hard != resource.RLIM_INFINITY and hard < connections + 200:
        sys.exit(f"the open-file limit {hard} is below {connections} connections: raise ulimit -Hn")
    load_before = os.getloadavg()

    import redis

    with tempfile.TemporaryDirectory(prefix="srl-nrload-") as tmp:
        server = RedisServer(binary, Path(tmp))
        server.start()
        gen = None
        try:
            admin = redis.Redis(host="127.0.0.1", port=server.port)
            # The default 10,000 is below 15,000 workers; the operator sets it from the experiment.
            admin.config_set("maxclients", max(10_000, connections + 100))
            gen = subprocess.Popen(
                [
                    str(nrload), "-addr", f"127.0.0.1:{server.port}", "-commands", str(SRC / "worker_commands.json"),
                    "-actors", str(args.actors), "-policies", str(args.policies), "-trainers", str(args.trainers),
                    "-ramp", str(args.ramp), "-warmup", str(args.warmup), "-seconds", str(args.seconds),
                ],
                stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            assert gen.stdout is not None
            marks: dict[str, tuple[float, int, float, float, float]] = {}
            result: dict[str, Any] = {}
            connected = 0
            for line in gen.stdout:
                line = line.strip()
                if line == "measure start":
                    admin.config_resetstat()  # commandstats over the window: server time per command
                    marks["start"] = server_sample(admin, server.pid, gen.pid)
                    connected = int(admin.info("clients")["connected_clients"])
                elif line == "measure end":
                    marks["end"] = server_sample(admin, server.pid, gen.pid)
                    cmdstats = admin.info("commandstats")
                    mem = admin.info("memory")["used_memory"]
                    index_members = admin.zcard(INDEX_KEY)
                elif line.startswith("{"):
                    result = json.loads(line)
            if gen.wait(timeout=60) != 0 or "end" not in marks or not result:
                sys.exit(f"nrload failed (exit {gen.returncode})")
            admin.close()
        finally:
            if gen is not None and gen.poll() is None:
                gen.kill()
                gen.wait()
            server.stop()
    (cpu0, cmd0, w0, g0, m0), (cpu1, cmd1, w1, g1, m1) = marks["start"], marks["end"]
    window = w1 - w0
    intended, done = result["intended_round_trips_per_s"], result["round_trips_per_s"]
    print(json.dumps({
        "bench": "name_records_load", "workers": workers, "actors": args.actors, "policies": args.policies,
        "trainers": args.trainers, "seconds": round(window, 1), "connected_clients": connected,
        "server_ops_per_s": round((cmd1 - cmd0) / window),
        "server_cpu_s_per_s": round((cpu1 - cpu0) / window, 3),
        "server_cpu_us_per_round_trip": round((cpu1 - cpu0) / window / max(1, done) * 1e6, 1),
        "generator_cpu_s_per_s": round((g1 - g0) / window, 3),
        "machine_busy_cores": round((m1 - m0) / window, 2), "cores": os.cpu_count(),
        "round_trips_per_s": done, "intended_round_trips_per_s": intended,
        "kept_up": done >= 0.98 * intended and result["lateness_ms"]["p99"] < 100,
        "latency_ms": result["latency_ms"], "lateness_ms": result["lateness_ms"],
        "late_over_100ms": result["late_over_100ms"],
        "server_usec_per_call": {
            k.removeprefix("cmdstat_"): v["usec_per_call"] for k, v in cmdstats.items() if v["calls"] >= window
        },
        "redis_used_memory_mb": round(mem / 2**20, 1), "index_members": index_members,
        "loadavg_before": [round(x, 2) for x in load_before], "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }))  # fmt: skip


if __name__ == "__main__":
    main()
