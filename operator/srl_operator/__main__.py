"""`python -m srl_operator`: run kopf with this operator, scoped by environment variables.

SRL_WATCH_NAMESPACES  comma-separated namespaces to watch; empty or "*" watches all (cluster-wide)
SRL_LIVENESS_PORT     port of kopf's liveness endpoint (/healthz); empty disables it
Extra command-line arguments are passed to `kopf run` unchanged.
"""

from __future__ import annotations

import os
import sys


def kopf_argv(env: dict[str, str], extra: list[str]) -> list[str]:
    """The `kopf run` command line for this environment."""
    argv = ["kopf", "run", "-m", "srl_operator.main", "--standalone"]
    namespaces = [n.strip() for n in env.get("SRL_WATCH_NAMESPACES", "").split(",") if n.strip()]
    if not namespaces or namespaces == ["*"]:
        argv.append("--all-namespaces")
    else:
        for ns in namespaces:
            argv += ["--namespace", ns]
    port = env.get("SRL_LIVENESS_PORT", "8080").strip()
    if port:
        argv.append(f"--liveness=http://0.0.0.0:{port}/healthz")
    return argv + extra


def main() -> None:
    argv = kopf_argv(dict(os.environ), sys.argv[1:])
    os.execvp(sys.executable, [sys.executable, "-m", *argv])


if __name__ == "__main__":
    main()
