"""RLExperiments trained on real pods: the helm-installed operator running from its image,
`kubectl apply` of the examples, chaos on pods, scaling, suspend, MongoDB metadata, metrics.

Each test asserts on what a user looks at (`kubectl get rlx`, status, Events, `kubectl logs`,
the workers' /metrics) and prints a one-line summary of what it saw (timings, train steps).
"""

from __future__ import annotations

import copy
import re
import time
from pathlib import Path
from typing import Any

import prom_lint
import pytest
import tb_events
import yaml
from rlx import Experiment, LogFollower, eventually, metric_values, redis_restarts, scrape

from srl_runtime.config.ports import METRICS_PORT

# pytest-timeout is only a backstop here: each test's own waits (Running within 300 s, then
# RUN_TIMEOUT) say what must hold, and the first test also pays for bringing the node up (images
# imported into containerd: 190 s measured on a loaded machine), which pytest-timeout counts too.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = 600  # seconds from apply to Succeeded for one experiment on 2 shared cores


def example(name: str) -> dict[str, Any]:
    return yaml.safe_load((REPO / "examples" / name).read_text())


def bounded(doc: dict[str, Any], name: str, train_steps: int) -> dict[str, Any]:
    """`doc` renamed, stopping after `train_steps` (a run long enough to act on mid-way)."""
    doc = copy.deepcopy(doc)
    doc["metadata"]["name"] = name
    doc["spec"]["stop"] = {"trainSteps": train_steps, "wallSeconds": RUN_TIMEOUT}
    # Only the checkpoint written at SIGTERM (and the initial one) exist: a resume at the step where
    # the trainer stopped cannot come from a periodic checkpoint.
    doc["spec"]["trainers"]["checkpointEvery"] = 100_000
    return doc


def apply(cluster: Any, namespace: str, doc: dict[str, Any], volumes: Any) -> Experiment:
    volumes(1)  # the parameter-DB claim binds one of the node's local volumes
    cluster.apply({**doc, "metadata": {**doc["metadata"], "namespace": namespace}})
    return Experiment(cluster, namespace, doc["metadata"]["name"])


def assert_redis_untouched(exp: Experiment, uids: list[str]) -> None:
    now, restarts = redis_restarts(exp)
    assert now == uids and restarts == 0, f"Redis pods {uids} -> {now}, restarts {restarts}\n{exp.describe()}"
    scaled = [e["message"] for e in exp.events() if e["reason"] == "ScaledDown" and "redis" in e.get("message", "")]
    assert not scaled, scaled


def wait_redis(exp: Experiment) -> list[str]:
    eventually(lambda: [p for p in exp.redis_pods() if (p.get("status") or {}).get("phase") == "Running"], 180,
               f"{exp.name}: Redis pod Running")  # fmt: skip
    return redis_restarts(exp)[0]


def complete_message(status: dict[str, Any]) -> str:
    return next((c.get("message", "") for c in status.get("conditions") or [] if c["type"] == "Complete"), "")


# ---------------------------------------------------------------------------------------------


def test_cartpole_example_trains_to_succeeded(e2e_cluster: Any, srl_namespace: str, volumes: Any) -> None:
    """examples/cartpole.yaml exactly as in the repo: Succeeded, meanReturn >= 475, the stop reason shown."""
    exp = apply(e2e_cluster, srl_namespace, example("cartpole.yaml"), volumes)
    redis = wait_redis(exp)
    running = exp.wait_phase("Running", 300)
    t_running = exp.elapsed()
    done = exp.wait_phase("Succeeded", RUN_TIMEOUT)
    assert done["meanReturn"] >= 475, exp.describe()
    assert done.get("stopReason") == "target_mean_return", done
    assert "target_mean_return" in complete_message(done), done["conditions"]
    printed = exp.printed()
    assert "Succeeded" in printed.splitlines()[1], printed
    trainer_log = exp.logs(f"{exp.name}-trainer-0")
    assert "exit (stop: target_mean_return)" in trainer_log, trainer_log[-2000:]
    reasons = [e["reason"] for e in exp.events()]
    assert "Running" in reasons and "Succeeded" in reasons, reasons
    assert_redis_untouched(exp, redis)
    print(f"\ncartpole: Running after {t_running:.0f}s, Succeeded after {exp.elapsed():.0f}s, "
          f"meanReturn {done['meanReturn']:.1f}, trainSteps {done.get('trainSteps')}, "
          f"frames {done.get('envFrames')}, actors at Running {running.get('actorsReady')}, Redis restarts 0")  # fmt: skip


def test_distributed_example_reaches_its_target(e2e_cluster: Any, srl_namespace: str, volumes: Any) -> None:
    """3 actors, a policy worker serving inference over ZMQ through its Service, 2 trainers in a
    gloo group; every worker's metrics port answers a scrape over its pod IP."""
    doc = example("cartpole-distributed.yaml")
    exp = apply(e2e_cluster, srl_namespace, doc, volumes)
    redis = wait_redis(exp)
    exp.wait_phase("Running", 300)
    spec = doc["spec"]
    want = {"actor": spec["actors"]["replicas"], "policy": 1, "trainer": 2}
    # Scrape while training: every worker serves Prometheus text with its own series.
    scraped: dict[str, int] = {}
    for role, count in want.items():
        pods = eventually(lambda r=role, c=count: len(p := exp.running_pods(r)) == c and p, 120, f"{role} pods Running")
        for pod in pods:
            text = eventually(lambda p=pod: _try_scrape(e2e_cluster, p), 90, f"metrics of {pod['metadata']['name']}")
            assert 'role="' + role + '"' in text, text[:500]
            scraped[pod["metadata"]["name"]] = len(text.splitlines())
    # Learner statistics on a real trainer pod, by the Prometheus conventions.
    trainer0 = next(p for p in exp.running_pods("trainer") if p["metadata"]["name"] == f"{exp.name}-trainer-0")
    stats = eventually(
        lambda: (t := _try_scrape(e2e_cluster, trainer0)) is not None and "srl_policy_loss{" in t and t,
        180, "learner statistics on trainer-0's /metrics",
    )  # fmt: skip
    assert not prom_lint.problems(stats), prom_lint.problems(stats)
    policy_log = exp.logs(f"{exp.name}-policy-0")
    service_name = f"{exp.name}-policy-0.{exp.name}-policy.{srl_namespace}.svc"
    assert f"inference server 0 listening on tcp://{service_name}:7100" in policy_log, policy_log[-2000:]
    done = exp.wait_phase("Succeeded", RUN_TIMEOUT)
    assert done["meanReturn"] >= 475 and done.get("stopReason") == "target_mean_return", exp.describe()
    for i in range(2):
        log = exp.logs(f"{exp.name}-trainer-{i}")
        assert "joining gloo process group" in log, log[-1500:]
    assert_redis_untouched(exp, redis)
    # Trainer 0 wrote TensorBoard event files into the run directory on the experiment's volume.
    run_dir = _run_dir_on_this_host(e2e_cluster, exp)
    if run_dir is not None:
        tags = tb_events.scalars(run_dir / "tensorboard")
        assert {"losses/policy_loss", "losses/value_loss", "charts/learning_rate"} <= tags.keys(), sorted(tags)
    print(f"\ndistributed: Succeeded after {exp.elapsed():.0f}s, meanReturn {done['meanReturn']:.1f}, "
          f"trainSteps {done.get('trainSteps')}, scraped {len(scraped)} workers "
          f"({min(scraped.values())}-{max(scraped.values())} lines)")  # fmt: skip


def _run_dir_on_this_host(cluster: Any, exp: Experiment) -> Path | None:
    """The experiment's run directory on its volume, when the volume is a local PV of this host's
    node (None on another cluster)."""
    claim = cluster.kubectl_json("get", "pvc", f"{exp.name}-params", "-n", exp.namespace)
    pv = cluster.kubectl_json("get", "pv", claim["spec"]["volumeName"])
    local = (pv["spec"].get("local") or pv["spec"].get("hostPath") or {}).get("path")
    path = Path(local) / exp.name / "run" if local else None
    return path if path is not None and path.is_dir() else None


def _try_scrape(cluster: Any, pod: dict[str, Any]) -> str | None:
    try:
        text = scrape(cluster, pod, METRICS_PORT)
    except AssertionError:
        return None
    # A worker's series (and their families) appear with its first progress report.
    return text if 'role="' in text else None


def test_chaos_trainer_actor_and_operator_deleted_mid_run(
    e2e_cluster: Any, srl_namespace: str, volumes: Any, srl_operator: Any
) -> None:
    """Delete an actor pod and (gracefully, as on preemption) the trainer pod mid-run, then the
    operator's pod: replaced, the trainer resumes at the step it stopped, no duplicates, it completes."""
    doc = bounded(example("cartpole.yaml"), "chaos", train_steps=260)
    exp = apply(e2e_cluster, srl_namespace, doc, volumes)
    redis = wait_redis(exp)
    exp.wait_phase("Running", 300)
    before = exp.wait_status(lambda s: (s.get("trainSteps") or 0) >= 30, 300, "30 train steps")
    trainer = f"{exp.name}-trainer-0"
    old_trainer_uid = next(p["metadata"]["uid"] for p in exp.live_pods("trainer"))
    follower = LogFollower(e2e_cluster, srl_namespace, trainer).start()
    time.sleep(1.0)  # the follower is attached before the SIGTERM
    e2e_cluster.kubectl("delete", "pod", f"{exp.name}-actor-0", "-n", srl_namespace, "--wait=false")
    e2e_cluster.kubectl("delete", "pod", trainer, "-n", srl_namespace, "--grace-period=60", "--wait=true", timeout=120)
    old_log = follower.text(timeout=30)
    saved = re.findall(r"checkpoint at version (\d+) \(train step (\d+)\) on exit \(preempted: SIGTERM\)", old_log)
    assert len(saved) == 1, f"no SIGTERM checkpoint in the deleted trainer's log:\n{old_log[-3000:]}"
    version, step = saved[0]
    assert int(step) >= before["trainSteps"], (step, before)

    def resumed() -> str | None:
        pods = exp.running_pods("trainer")
        if not pods or pods[0]["metadata"]["uid"] == old_trainer_uid:
            return None
        log = exp.logs(trainer)
        return log if "resumed from version" in log else None

    new_log = eventually(resumed, 240, "a new trainer pod resuming")
    assert f"resumed from version {version} (train step {step})" in new_log, new_log[-2000:]
    eventually(lambda: len(exp.running_pods("actor")) == 1, 180, "actor-0 replaced")

    # The operator's own pod goes; its Deployment brings it back and it takes over the run.
    op_pods = srl_operator.pods()
    e2e_cluster.kubectl("delete", "pod", op_pods[0]["metadata"]["name"], "-n", srl_operator.namespace, "--wait=false")
    duplicates: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        names = [p["metadata"]["name"] for p in exp.live_pods()]
        if len(names) != len(set(names)) or len(names) > 2:
            duplicates.append(",".join(sorted(names)))
        time.sleep(2)
    assert not duplicates, duplicates
    eventually(lambda: [p for p in srl_operator.pods() if p["metadata"]["uid"] != op_pods[0]["metadata"]["uid"]
                        and (p.get("status") or {}).get("phase") == "Running"], 180, "a new operator pod")  # fmt: skip
    done = exp.wait_phase("Succeeded", RUN_TIMEOUT)
    assert done["trainSteps"] >= 260 and done.get("stopReason") == "train_steps", exp.describe()
    assert len(exp.pods()) == 2, [p["metadata"]["name"] for p in exp.pods()]
    assert_redis_untouched(exp, redis)
    restarts = done["trainers"]["restarts"], done["actors"]["restarts"]
    print(f"\nchaos: SIGTERM checkpoint at train step {step} (status showed {before['trainSteps']} just before), "
          f"replacement resumed at {step}; Succeeded after {exp.elapsed():.0f}s at {done['trainSteps']} steps; "
          f"restarts trainer/actor {restarts}; Redis restarts 0")  # fmt: skip


def test_scale_then_suspend_and_resume(e2e_cluster: Any, srl_namespace: str, volumes: Any) -> None:
    """`kubectl scale rlx` adds actors that contribute frames; suspend removes the workers and keeps
    the PVC; resume continues the train-step count."""
    doc = bounded(example("cartpole.yaml"), "scaling", train_steps=400)
    exp = apply(e2e_cluster, srl_namespace, doc, volumes)
    redis = wait_redis(exp)
    exp.wait_phase("Running", 300)
    exp.wait_status(lambda s: (s.get("trainSteps") or 0) >= 5, 300, "5 train steps")
    e2e_cluster.kubectl("scale", "rlx", exp.name, "-n", srl_namespace, "--replicas=3")
    new_actors = eventually(lambda: len(p := exp.running_pods("actor")) == 3 and p, 180, "3 actors Running")
    frames: dict[str, float] = {}
    for pod in new_actors:
        name = pod["metadata"]["name"]
        if name.endswith("-actor-0"):
            continue

        def stepped(p: dict[str, Any] = pod) -> float | None:
            text = _try_scrape(e2e_cluster, p)
            values = metric_values(text or "", "srl_env_frames")
            return values[0] if values and values[0] > 0 else None

        frames[name] = eventually(stepped, 180, f"{name} stepping environments")
    assert len(frames) == 2, frames
    before = exp.wait_status(lambda s: (s.get("trainSteps") or 0) >= 20, 300, "20 train steps")

    e2e_cluster.kubectl("patch", "rlx", exp.name, "-n", srl_namespace, "--type=merge", "-p", '{"spec":{"suspend":true}}')
    exp.wait_phase("Suspended", 120)
    eventually(lambda: not exp.pods(), 180, "every worker pod gone")
    pvc = e2e_cluster.kubectl_json("get", "pvc", f"{exp.name}-params", "-n", srl_namespace)
    assert pvc["status"]["phase"] == "Bound", pvc["status"]
    suspended_at = exp.status().get("trainSteps") or 0
    assert suspended_at >= before["trainSteps"]

    e2e_cluster.kubectl("patch", "rlx", exp.name, "-n", srl_namespace, "--type=merge", "-p", '{"spec":{"suspend":false}}')
    exp.wait_phase("Running", 300)
    log = eventually(lambda: "resumed from version" in (t := exp.logs(f"{exp.name}-trainer-0")) and t, 240,
                     "the trainer resuming after suspend")  # fmt: skip
    resumed_step = int(re.search(r"resumed from version \d+ \(train step (\d+)\)", log).group(1))  # type: ignore[union-attr]
    assert resumed_step >= before["trainSteps"], (resumed_step, before["trainSteps"])
    after = exp.wait_status(lambda s: (s.get("trainSteps") or 0) > suspended_at + 5, 300, "train steps to continue")
    assert_redis_untouched(exp, redis)
    print(f"\nscale/suspend: new actors' frames {sorted(int(v) for v in frames.values())}; suspended at "
          f"{suspended_at} steps, resumed at {resumed_step}, then {after['trainSteps']}; PVC kept (Bound)")  # fmt: skip


def test_version_metadata_in_mongodb_with_the_uri_from_a_secret(
    e2e_cluster: Any, srl_namespace: str, volumes: Any, ferretdb: Any
) -> None:
    """parameterDb.metadata: mongodb against FerretDB in a pod, the URI only in a Secret."""
    e2e_cluster.apply({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "srl-mongo", "namespace": srl_namespace},
        "stringData": {"uri": ferretdb.in_cluster_uri},
    })  # fmt: skip
    doc = bounded(example("cartpole.yaml"), "mongo", train_steps=40)
    doc["spec"]["parameterDb"] = {"metadata": "mongodb", "mongodb": {"secretName": "srl-mongo", "database": "srl_e2e"}}
    exp = apply(e2e_cluster, srl_namespace, doc, volumes)
    done = exp.wait_phase("Succeeded", RUN_TIMEOUT)
    cm = e2e_cluster.kubectl_json("get", "configmap", f"{exp.name}-experiment", "-n", srl_namespace)
    assert "mongodb://" not in cm["data"]["experiment.yaml"], "the URI leaked into the ConfigMap"
    versions, latest = ferretdb.versions("srl_e2e")
    assert versions >= 1 and latest is not None and latest >= done["policyVersion"] - 1, (versions, latest, done)
    print(f"\nmongodb: {versions} version documents, tag latest -> {latest}, policyVersion {done['policyVersion']}")
