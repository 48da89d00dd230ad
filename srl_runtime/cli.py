"""The `srl` command: run an experiment locally, validate a document, or run one worker (a pod).

This module imports only what parsing the command line needs (config.roles is light): `srl run`
starts the workers' fork server before anything else (launcher/forkserver.py), so its preload, most
of the start-up, overlaps the CLI's own imports and work.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from srl_runtime import timeline
from srl_runtime.config.roles import ROLES

if TYPE_CHECKING:
    from srl_runtime.config.experiment import RLExperiment

EXIT_INVALID = 2


def _load_checked(path: str) -> RLExperiment:
    """The experiment in `path`, validated, with an environment that can be found (InvalidExperiment else)."""
    from srl_runtime.config.load import InvalidExperiment, load_experiment
    from srl_runtime.envs.check import environment_problems

    experiment = load_experiment(path)
    problems = environment_problems(experiment.spec.environment)
    if problems:
        raise InvalidExperiment(problems)
    return experiment


def _cmd_validate(args: argparse.Namespace) -> int:
    _load_checked(args.file)
    print(f"{args.file}: valid")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from srl_runtime.launcher.local import STOP_SIGNALS, LocalLauncher, check_run_dir, run_dir_for
    from srl_runtime.launcher.serial import run_serial

    experiment = _load_checked(args.file)
    timeline.mark("experiment_parsed")
    run_dir = run_dir_for(experiment, Path(args.run_dir) if args.run_dir else None)
    check_run_dir(run_dir, args.resume, args.overwrite)
    level = logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s")
    if not args.quiet:
        spec = experiment.spec
        print(
            f"srl: {experiment.metadata.name}: {spec.environment.id or spec.environment.entry_point} | "
            f"actors {spec.actors.replicas}x{spec.actors.ring_size}x{spec.actors.envs_per_slot} envs, "
            f"policy workers {spec.policy_workers.replicas}, trainers {spec.trainers.replicas} | run dir {run_dir}",
            flush=True,
        )
    if args.serial:
        summary = run_serial(experiment, run_dir, resume=args.resume, overwrite=args.overwrite)
    else:
        summary = LocalLauncher(
            experiment, run_dir, resume=args.resume, overwrite=args.overwrite, quiet=args.quiet, log_level=level,
            metrics_port=args.metrics_port,
        ).run()
    result = summary.public()
    if not args.quiet:
        print(
            f"srl: stopped ({result['stop_reason']}) after {result['wall_seconds']:.1f}s: "
            f"{result['env_frames']:,} frames, {result['train_steps']} train steps, "
            f"version {result['policy_version']}, mean return {result['mean_return']}",
            flush=True,
        )
        bad = {k: result[k] for k in ("dropped_messages", "non_finite_env_values", "non_finite_samples",
                                      "skipped_updates", "rejected_checkpoints", "restarts") if result.get(k)}  # fmt: skip
        if bad:
            print("srl: " + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in bad.items()), flush=True)
    failure = result.get("failure")
    if failure:
        lines = "\n".join(f"    {line}" for line in failure.get("log_tail", [])) or "    (no log lines)"
        print(f"srl: run {result['stop_reason']}\nsrl: last log lines of {failure['worker']} ({failure['log']}):\n{lines}",
              file=sys.stderr, flush=True)  # fmt: skip
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps(result) + "\n")
    reason = result["stop_reason"] or ""
    by_signal = {stopped: 128 + sig for sig, stopped in STOP_SIGNALS.items()}  # interrupted 130, terminated 143
    return 1 if reason.startswith("failed") else by_signal.get(reason, 0)


def _cmd_worker(args: argparse.Namespace) -> int:
    from srl_runtime.config.env_settings import EnvironmentProblem
    from srl_runtime.config.ports import ListenPorts
    from srl_runtime.config.worker_env import read_worker_env
    from srl_runtime.launcher.single_worker import WorkerOptions, default_host, run_worker

    try:
        env = read_worker_env()
    except EnvironmentProblem as e:
        print(f"srl worker: {e}", file=sys.stderr)
        return EXIT_INVALID
    role = args.role or env.role
    index = args.index if args.index is not None else env.index
    path = args.experiment or env.experiment
    if not role or not path:
        print("srl worker: --role and --experiment (or $SRL_ROLE, $SRL_EXPERIMENT) are required", file=sys.stderr)
        return EXIT_INVALID
    args.file = path
    experiment = _load_checked(path)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {role}[{index}] %(levelname)s %(name)s: %(message)s")
    port = args.metrics_port if args.metrics_port is not None else env.metrics_port
    run_dir = args.run_dir or env.run_dir or (str(Path(env.param_db_path).parent) if env.param_db_path else "runs")
    opts = WorkerOptions(
        role=role,
        index=index,
        host=args.host or default_host(env),
        run_dir=Path(run_dir),
        metrics_port=None if port is None or port < 0 else port,
        ports=ListenPorts(inference=env.inference_port, sample=env.sample_port, peers=env.peers_port),
        advertise_host=args.advertise_host or env.advertise_host or None,
    )
    return run_worker(experiment, opts, env)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (separate so docs and tests can inspect it)."""
    parser = argparse.ArgumentParser(prog="srl", description="SRL-architecture reinforcement learning.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train an RLExperiment on this machine")
    run.add_argument("file", help="RLExperiment YAML")
    fresh = run.add_mutually_exclusive_group()
    fresh.add_argument("--resume", action="store_true", help="continue from the run directory's last checkpoint")
    fresh.add_argument("--overwrite", action="store_true", help="delete a previous run in the run directory and start afresh")
    run.add_argument("--summary-json", metavar="PATH", help="write a JSON summary here at the end")
    run.add_argument("--run-dir", metavar="DIR", help="run directory (default: runs/<name>)")
    run.add_argument("--serial", action="store_true", help="all workers in this process (debugging)")
    run.add_argument("--quiet", action="store_true", help="no progress lines")
    run.add_argument("-v", "--verbose", action="store_true", help="worker log lines")
    run.add_argument("--metrics-port", type=int, help="serve every worker's Prometheus metrics on this port (0 = any free port)")
    run.set_defaults(func=_cmd_run)

    worker = sub.add_parser("worker", help="run one worker of a distributed experiment (what a pod runs)")
    worker.add_argument("--role", choices=ROLES, help="$SRL_ROLE")
    worker.add_argument("--index", type=int, help="$SRL_INDEX (default 0)")
    worker.add_argument("--experiment", help="RLExperiment YAML ($SRL_EXPERIMENT)")
    worker.add_argument("--host", help="address to bind and advertise ($SRL_POD_IP, else this host's)")
    worker.add_argument("--advertise-host", help="name peers connect to instead of --host ($SRL_ADVERTISE_HOST)")
    worker.add_argument("--run-dir", help="run directory ($SRL_RUN_DIR; default: beside $SRL_PARAM_DB_PATH)")
    worker.add_argument("--metrics-port", type=int, help="Prometheus port ($SRL_METRICS_PORT; 0 = any free port)")
    worker.set_defaults(func=_cmd_worker)

    val = sub.add_parser("validate", help="check an RLExperiment document")
    val.add_argument("file")
    val.set_defaults(func=_cmd_validate)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `srl` console script."""
    timeline.mark("cli_main")
    args = build_parser().parse_args(argv)
    if args.command == "run" and not args.serial:
        from srl_runtime.launcher.forkserver import start_worker_server, stop_worker_server

        start_worker_server()
        code = _dispatch(args)
        if code == EXIT_INVALID:  # no run: don't leave the caller's output open to the server's preload
            stop_worker_server()
        return code
    return _dispatch(args)


def _dispatch(args: argparse.Namespace) -> int:
    """Run the chosen command; invalid input is one line on stderr and EXIT_INVALID."""
    try:
        from srl_runtime.config.load import InvalidExperiment
        from srl_runtime.launcher.local import RunDirInUse
    except ModuleNotFoundError as err:  # the core distribution without its `train` extra
        print(f"srl: {err.name} is not installed: training needs pip install 'srl-runtime[train]'", file=sys.stderr)
        return EXIT_INVALID
    try:
        return int(args.func(args))
    except InvalidExperiment as err:
        print(f"srl: {getattr(args, 'file', '')}: {err}", file=sys.stderr)
        return EXIT_INVALID
    except RunDirInUse as err:
        print(f"srl: {err}", file=sys.stderr)
        return EXIT_INVALID


if __name__ == "__main__":
    sys.exit(main())
