"""Invalid experiment documents fail before anything starts, naming the field."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from srl_runtime.cli import EXIT_INVALID, main
from srl_runtime.config.load import InvalidExperiment, load_experiment, parse_experiment

pytestmark = pytest.mark.unit

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.yaml"))
BASE = {
    "apiVersion": "srl.dev/v1alpha1",
    "kind": "RLExperiment",
    "metadata": {"name": "bad"},
    "spec": {"environment": {"id": "CartPole-v1"}, "stop": {"envFrames": 100}},
}


def _with(path: str, value: object) -> dict:
    doc = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node = doc
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value
    return doc


INVALID = [
    (_with("spec.actors.ringSize", 0), "spec.actors.ringSize: must be >= 1"),
    (_with("spec.actors.envsPerSlot", -3), "spec.actors.envsPerSlot: must be >= 1"),
    (_with("spec.algorithm.ppo.discount", 1.5), "spec.algorithm.ppo.discount: must be <= 1"),
    (_with("spec.policy.encoder", "transformer"), "spec.policy.encoder: Input should be 'mlp' or 'cnn'"),
    (_with("spec.trainers.replicas", 0), "spec.trainers.replicas: must be >= 1"),
    (_with("spec.stop", {}), "spec.stop: set at least one of"),
    (_with("spec.actors.ringsize", 2), "spec.actors.ringsize: unknown field (did you mean ringSize?)"),
    (_with("spec.environment", {"id": "CartPole-v1", "entryPoint": "pkg:Env"}), "spec.environment: exactly one of id or entryPoint"),
    (_with("metadata.name", "Not_A_DNS_Label"), "metadata.name: String should match pattern"),
    (_with("spec.streams.inference", "zmq"), "spec.streams.inference: shm/zmq need policyWorkers.replicas >= 1"),
    (_with("spec.trainers", {"batchSize": 32, "bufferCapacity": 16}), "spec.trainers.bufferCapacity: must be >= trainers.batchSize"),
    (_with("spec.algorithm.ppo.lrSchedule", "linear"), "spec.algorithm.ppo.lrSchedule: linear decays to 0 over stop.trainSteps"),
    (_with("spec.actors.restartLimit", -1), "spec.actors.restartLimit: must be >= 0"),
    (_with("spec.failurePolicy.nonFinite", "ignore"), "spec.failurePolicy.nonFinite: Input should be 'warn' or 'fail'"),
]


@pytest.mark.parametrize("doc,expected", INVALID, ids=[e.split(":")[0] for _, e in INVALID])
def test_invalid_document_names_the_field(doc: dict, expected: str) -> None:
    with pytest.raises(InvalidExperiment) as info:
        parse_experiment(doc)
    problems = info.value.problems
    assert any(p.startswith(expected) for p in problems), f"expected {expected!r}, saw {problems}"


def test_cli_exits_2_and_prints_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_with("spec.actors.ringSize", 0)))
    code = main(["run", str(path), "--quiet"])
    err = capsys.readouterr().err
    assert code == EXIT_INVALID, f"exit code {code}, stderr: {err}"
    assert "spec.actors.ringSize: must be >= 1" in err, err


UNKNOWN = [
    ("spec.algorithm.ppo.gamma", "discount"),  # other libraries' names for our fields
    ("spec.algorithm.ppo.lr", "learningRate"),
    ("spec.algorithm.ppo.gae_lambda", "gaeLambda"),
    ("spec.algorithm.ppo.lambda", "gaeLambda"),
    ("spec.algorithm.impala.gamma", "discount"),
    ("spec.actors.n_envs", "envsPerSlot"),
    ("spec.actors.ringsize", "ringSize"),  # a case slip
    ("spec.policyWorkers.batchsize", "batchSize"),
    ("spec.trainers.bufferCapacty", "bufferCapacity"),  # a typo
    ("spec.policyWorkers.pullInterval", "paramPullInterval"),  # the field's old name
    ("spec.parameterDb.mongodb.databse", "database"),
]


@pytest.mark.parametrize("path,field", UNKNOWN, ids=[p for p, _ in UNKNOWN])
def test_unknown_field_suggests_the_field_meant(path: str, field: str) -> None:
    with pytest.raises(InvalidExperiment) as info:
        parse_experiment(_with(path, {"uri": "mongodb://m"} if path.endswith("databse") else 1))
    problems = [p for p in info.value.problems if p.startswith(path)]
    assert problems and problems[0].startswith(f"{path}: unknown field"), info.value.problems
    assert f"{field}?" in problems[0] or f": {field})" in problems[0], problems[0]


def test_unknown_field_far_from_every_name_gets_no_guess() -> None:
    with pytest.raises(InvalidExperiment) as info:
        parse_experiment(_with("spec.actors.flux", 1))
    assert info.value.problems == ["spec.actors.flux: unknown field"]


def test_validate_suggests_discount_for_gamma(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "gamma.yaml"
    path.write_text(yaml.safe_dump(_with("spec.algorithm", {"ppo": {"gamma": 0.98}})))
    code = main(["validate", str(path)])
    err = capsys.readouterr().err
    assert code == EXIT_INVALID, err
    assert err.strip().splitlines()[-1].endswith("spec.algorithm.ppo.gamma: unknown field (did you mean discount?)"), err


def test_yaml_syntax_error_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("spec: [unclosed\n")
    with pytest.raises(InvalidExperiment) as info:
        load_experiment(path)
    assert info.value.problems[0].startswith("YAML syntax error at line 2, column 1"), info.value.problems


@pytest.mark.parametrize("block", ["ppg", "impala"])
def test_empty_algorithm_blocks_are_valid_documents(block: str) -> None:
    doc = _with(f"spec.algorithm.{block}", {})
    experiment = parse_experiment(doc)
    algorithm = experiment.spec.algorithm
    assert getattr(algorithm, block) is not None and algorithm.ppo.off_policy_correction == "none"
    assert parse_experiment(experiment.model_dump(mode="json", by_alias=True)) == experiment
    assert parse_experiment(BASE).spec.algorithm.ppg is None and parse_experiment(BASE).spec.algorithm.impala is None


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_are_valid(path: Path) -> None:
    experiment = load_experiment(path)
    assert experiment.metadata.name
    # The document round-trips: what the launcher hands to worker processes parses again.
    again = parse_experiment(experiment.model_dump(mode="json", by_alias=True))
    assert again == experiment
