"""Where a local run's worker processes come from: a fork server that preloaded the worker code.

Why a fork server: the worker code imports torch, seconds of CPU that every spawned worker would pay
again, all at once on a small machine; the server imports it once and forks each worker from there
(no torch state is inherited: the server only imported modules). Why started early: that preload is
most of `srl run`'s start-up, so the CLI starts the server first thing (`start_worker_server`) and
the import runs while the CLI itself parses the experiment and prepares the run directory. This
module imports nothing heavy, so the CLI can call it before its own imports.
"""

from __future__ import annotations

import multiprocessing as mp
import multiprocessing.forkserver
import os
import signal

# What the fork server imports once for every worker it forks. The last one only marks the end of
# the preload on the start-up timeline (srl_runtime/timeline.py).
FORKSERVER_PRELOAD = (
    "srl_runtime.workers.actor", "srl_runtime.workers.trainer", "srl_runtime.workers.policy_worker",
    "srl_runtime.launcher.preloaded",
)  # fmt: skip


# numpy's BLAS threads in every worker, unless the user's environment says otherwise. Local workers
# are one process each and already share the cores; a BLAS pool per worker (numpy's OpenBLAS starts
# one thread per core) turns the policy worker's batched numpy forward pass into threads fighting the
# actors for the same cores: measured in bench/inference_path.py --serve, 459 us of server time per
# request with the default pool against 114 us with one thread. torch's threads are set per role
# (torchThreads); pods get OMP_NUM_THREADS from the operator.
WORKER_BLAS_THREADS = {"OPENBLAS_NUM_THREADS": "1"}


def worker_context() -> mp.context.ForkServerContext | mp.context.SpawnContext:
    """Worker processes come from a fork server that preloaded the worker code; `spawn` where there is
    no fork server. $SRL_WORKER_START=spawn forces spawn. Sets WORKER_BLAS_THREADS in this process's
    environment (where unset), which the server and spawned workers inherit before they load numpy."""
    for name, value in WORKER_BLAS_THREADS.items():
        os.environ.setdefault(name, value)
    method = os.environ.get("SRL_WORKER_START", "forkserver")
    if method not in mp.get_all_start_methods():
        method = "spawn"
    if method == "forkserver":
        server = mp.get_context("forkserver")
        server.set_forkserver_preload(list(FORKSERVER_PRELOAD))
        return server
    return mp.get_context("spawn")


def start_worker_server() -> None:
    """Start the fork server now, without waiting: its preload runs beside the caller (a no-op with
    spawn). The first worker start then waits only for what is left of the preload.

    If the caller gives up (an invalid experiment), the server finishes its imports and exits, as it
    does whenever the process that started it is gone.
    """
    if isinstance(worker_context(), mp.context.ForkServerContext):
        multiprocessing.forkserver.ensure_running()


def stop_worker_server() -> None:
    """Stop the fork server at once, when no worker will come from it (the run did not start: an
    invalid experiment, a run directory in use).

    It may still be importing torch, and it holds the caller's stdout and stderr: whoever reads
    those to the end (a pipe, `subprocess.run`) would otherwise wait out its preload, seconds after
    `srl run` printed the error and exited. Uses multiprocessing's private handle of the server
    (its pid; `_stop` closes the "alive" pipe, reaps it and removes its socket).
    """
    server = multiprocessing.forkserver._forkserver
    pid = getattr(server, "_forkserver_pid", None)
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    server._stop()  # type: ignore[attr-defined]  # private, in 3.11-3.13
