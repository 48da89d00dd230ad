"""Parameter DB under real concurrency: one writer process pushing (and collecting) at full speed
while two reader processes read `latest` and verify a checksum of every checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]

_SCRIPT = textwrap.dedent(
    """
    import hashlib, json, sys, time
    import torch
    torch.set_num_threads(1)
    from srl_runtime.param_db import FilesystemParameterDB, VersionNotFound

    path, role, duration, numel = sys.argv[1], sys.argv[2], *map(float, sys.argv[3:5])
    db = FilesystemParameterDB(path, keep_versions=2)
    print("ready", flush=True)
    start = float(sys.stdin.readline())  # the parent's go, once every process has imported torch
    time.sleep(max(0.0, start - time.time()))
    end = start + duration
    out = {"role": role, "ok": 0, "not_found": 0, "torn": [], "errors": [], "versions_seen": 0}

    def digest(t):
        return hashlib.sha256(t.numpy().tobytes()).hexdigest()

    if role == "writer":
        v = 0
        while time.time() < end:
            v += 1
            w = torch.randn(int(numel), generator=torch.Generator().manual_seed(v))
            db.push({"w": w, "version": v, "sha": digest(w)}, v, metadata={"train_step": v})
            db.gc()  # keep_versions=2: readers constantly race the deletion of what they just found
        out["ok"] = v
    else:
        def check(ck):
            s = ck.state
            if s["version"] != ck.version or digest(s["w"]) != s["sha"]:
                out["torn"].append(ck.version)
            else:
                out["ok"] += 1

        last = None
        polls = 0
        while time.time() < end:
            polls += 1
            latest = db.latest_version()  # the cheap poll actors do
            if latest is None or latest == last:
                time.sleep(0.001)
                continue
            try:
                ck = db.get()
            except VersionNotFound:
                out["not_found"] += 1
                continue
            except Exception as e:
                out["errors"].append(repr(e))
                continue
            check(ck)
            if ck.version != last:
                out["versions_seen"] += 1
            last = ck.version
            # The previous version is deleted by the writer's next gc: read it right at that edge.
            try:
                check(db.get(version=ck.version - 1))
            except VersionNotFound:
                out["not_found"] += 1
            except Exception as e:
                out["errors"].append(repr(e))
        out["polls"] = polls
    out["seconds"] = duration
    print(json.dumps(out), flush=True)
    """
)


def test_no_torn_reads_while_writer_pushes_and_collects(tmp_path: Path) -> None:
    duration, numel = 2.0, 64 * 1024  # 256 KiB float32 per checkpoint
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _SCRIPT, str(tmp_path), role, str(duration), str(numel)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for role in ("writer", "reader-1", "reader-2")
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready", p.stderr.read()
    start = f"{time.time() + 0.2}\n"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(start)
        p.stdin.flush()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, f"{p.args[3]} exited {p.returncode}:\n{err[-3000:]}"
        results.append(json.loads(out.strip().splitlines()[-1]))
    writer, *readers = results
    summary = (
        f"writer pushed {writer['ok']} versions in {duration}s ({writer['ok'] / duration:.0f}/s); "
        + "; ".join(
            f"{r['role']}: {r['ok']} verified reads (latest + previous) ({r['ok'] / duration:.0f}/s), "
            f"{r['versions_seen']} versions, {r['polls']} polls, {r['not_found']} not-found, {len(r['torn'])} torn, "
            f"errors {r['errors'][:3]}"
            for r in readers
        )
    )
    print(summary)
    assert writer["ok"] >= 20, summary
    for r in readers:
        assert r["torn"] == [] and r["errors"] == [], summary
        assert r["ok"] >= 10, summary
    assert sorted(os.listdir(tmp_path / "tmp")) == [], "no temp files left behind"
