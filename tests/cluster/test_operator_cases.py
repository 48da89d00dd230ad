"""Invalid RLExperiment documents, shared by the admission tests (API server, tests/cluster) and the
model tests (pydantic, tests/unit/test_crd.py): both must reject each, naming the same field.

Data only: no fixtures or cluster imports, so the unit tier can load it by path.
"""

from __future__ import annotations

import copy
from typing import Any

BASE: dict[str, Any] = {
    "apiVersion": "srl.dev/v1alpha1",
    "kind": "RLExperiment",
    "metadata": {"name": "bad"},
    "spec": {"environment": {"id": "CartPole-v1"}, "stop": {"trainSteps": 100}},
}


def _with(path: str, value: Any) -> dict[str, Any]:
    """BASE with spec.<path> set to value (value _DELETE removes it)."""
    doc = copy.deepcopy(BASE)
    node = doc["spec"]
    parts = path.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    if value is _DELETE:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value
    return doc


_DELETE = object()


def _with_all(*changes: tuple[str, Any]) -> dict[str, Any]:
    """BASE with several spec paths set."""
    doc = copy.deepcopy(BASE)
    for path, value in changes:
        node = doc["spec"]
        *parents, last = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return doc


# (case id, document, field the API server names, field parse_experiment names)
INVALID_CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("negative-actors", _with("actors.replicas", -1), "spec.actors.replicas", "spec.actors.replicas"),
    ("env-id-and-entrypoint", _with("environment.entryPoint", "my.mod:Env"), "spec.environment.id", "spec.environment"),
    ("env-neither", _with("environment", {"kwargs": {"a": 1}}), "spec.environment.id", "spec.environment"),
    (
        "entrypoint-no-colon",
        _with("environment", {"entryPoint": "my.module.Env"}),
        "spec.environment.entryPoint",
        "spec.environment",
    ),
    ("stop-without-condition", _with("stop", {"returnWindow": 5}), "spec.stop", "spec.stop"),
    ("stop-missing", _with("stop", _DELETE), "spec.stop", "spec.stop"),
    ("unknown-encoder", _with("policy.encoder", "transformer"), "spec.policy.encoder", "spec.policy.encoder"),
    ("discount-zero", _with("algorithm.ppo.discount", 0), "spec.algorithm.ppo.discount", "spec.algorithm.ppo.discount"),
    ("discount-above-one", _with("algorithm.ppo.discount", 1.5), "spec.algorithm.ppo.discount", "spec.algorithm.ppo.discount"),
    ("no-trainers", _with("trainers.replicas", 0), "spec.trainers.replicas", "spec.trainers.replicas"),
    ("zmq-without-policy-workers", _with("streams.inference", "zmq"), "spec.streams.inference", "spec.streams.inference"),
    ("mongodb-without-settings", _with("parameterDb.metadata", "mongodb"), "spec.parameterDb.mongodb", "spec.parameterDb"),
    (
        "splits-above-envs",
        _with("actors", {"inferenceSplits": 4, "envsPerSlot": 2}),
        "spec.actors.inferenceSplits",
        "spec.actors.inferenceSplits",
    ),
    ("empty-hidden-sizes", _with("policy.hiddenSizes", []), "spec.policy.hiddenSizes", "spec.policy.hiddenSizes"),
    ("unknown-device", _with("trainers.device", "tpu"), "spec.trainers.device", "spec.trainers.device"),
    (
        "bad-toleration-effect",
        _with("actors.tolerations", [{"key": "k", "effect": "Sometimes"}]),
        "spec.actors.tolerations[0].effect",
        "spec.actors.tolerations[0].effect",
    ),
    ("seed-not-integer", _with("seed", "abc"), "spec.seed", "spec.seed"),
    (
        "buffer-below-batch",
        _with("trainers", {"batchSize": 32, "bufferCapacity": 16}),
        "spec.trainers.bufferCapacity",
        "spec.trainers.bufferCapacity",
    ),
    (
        "linear-lr-without-train-steps",
        {**BASE, "spec": {**BASE["spec"], "stop": {"wallSeconds": 60}, "algorithm": {"ppo": {"lrSchedule": "linear"}}}},
        "spec.algorithm.ppo.lrSchedule",
        "spec.algorithm.ppo.lrSchedule",
    ),
    (
        "mongodb-uri-with-credentials",
        _with("parameterDb", {"metadata": "mongodb", "mongodb": {"uri": "mongodb://srl:hunter2@mongo:27017/srl"}}),
        "spec.parameterDb.mongodb.uri",
        "spec.parameterDb.mongodb.uri",
    ),
    (
        "relative-mount-path",
        _with("actors.volumes", [{"name": "data", "mountPath": "data", "source": {"emptyDir": {}}}]),
        "spec.actors.volumes[0].mountPath",
        "spec.actors.volumes[0].mountPath",
    ),
    ("dual-clip-not-above-one", _with("algorithm.ppo.dualClip", 1.0), "spec.algorithm.ppo.dualClip", "spec.algorithm.ppo.dualClip"),
    (
        "unknown-off-policy-correction",
        _with("algorithm.ppo.offPolicyCorrection", "retrace"),
        "spec.algorithm.ppo.offPolicyCorrection",
        "spec.algorithm.ppo.offPolicyCorrection",
    ),
    ("impala-rho-clip-zero", _with("algorithm.impala", {"rhoClip": 0}), "spec.algorithm.impala.rhoClip", "spec.algorithm.impala.rhoClip"),
    ("ppg-zero-aux-epochs", _with("algorithm.ppg", {"auxEpochs": 0}), "spec.algorithm.ppg.auxEpochs", "spec.algorithm.ppg.auxEpochs"),
    (
        "popart-and-normalize-returns",
        _with("algorithm.ppo", {"popart": True, "normalizeReturns": True}),
        "spec.algorithm.ppo.normalizeReturns",
        "spec.algorithm.ppo.normalizeReturns",
    ),
    ("ppg-and-impala", _with("algorithm", {"ppg": {}, "impala": {}}), "spec.algorithm.impala", "spec.algorithm.impala"),
    (
        "ppg-recurrent",
        _with_all(("algorithm.ppg", {}), ("policy.rnn", {"hiddenSize": 8})),
        "spec.algorithm.ppg",
        "spec.algorithm.ppg",
    ),
    (
        "centralized-value-shared-encoder",
        _with("policy", {"centralizedValue": True, "sharedEncoder": True}),
        "spec.policy.centralizedValue",
        "spec.policy.centralizedValue",
    ),
    (
        "centralized-value-gym-id",
        _with("policy.centralizedValue", True),
        "spec.policy.centralizedValue",
        "spec.policy.centralizedValue",
    ),
]
