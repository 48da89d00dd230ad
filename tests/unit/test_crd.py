"""The generated RLExperiment CRD: checked-in copies match, the schema is structural, and it agrees
with the pydantic models on defaults and on what is invalid."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml

from srl_runtime.config import crd_schema
from srl_runtime.config.load import InvalidExperiment, parse_experiment

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def _admission_cases() -> list[tuple[str, dict[str, Any], str, str]]:
    """The invalid documents the cluster tier sends to the API server (one list for both tiers)."""
    path = REPO / "tests" / "cluster" / "test_operator_cases.py"
    spec = importlib.util.spec_from_file_location("_admission_cases", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.INVALID_CASES


@pytest.mark.parametrize("path", crd_schema.CRD_PATHS, ids=lambda p: str(p.relative_to(REPO)))
def test_checked_in_crd_matches_the_models(path: Path) -> None:
    assert path.exists(), f"{path.relative_to(REPO)} is missing; run `{crd_schema.REGENERATE_COMMAND}`"
    assert path.read_text() == crd_schema.crd_yaml(), (
        f"{path.relative_to(REPO)} differs from the CRD generated from srl_runtime/config/experiment.py; "
        f"run `{crd_schema.REGENERATE_COMMAND}` and commit the result"
    )


def test_chart_template_matches_the_models() -> None:
    path = crd_schema.CHART_CRD_TEMPLATE
    assert path.read_text() == crd_schema.crd_helm_template(), (
        f"{path.relative_to(REPO)} differs from the CRD generated from srl_runtime/config/experiment.py; "
        f"run `{crd_schema.REGENERATE_COMMAND}` and commit the result"
    )
    # Helm treats a chart's crds/ specially (installed once, never upgraded): the CRD is a template only.
    assert not (REPO / "charts" / "srl-operator" / "crds").exists()


def _walk(node: Any, path: str = ""):
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            if key in ("default", "x-kubernetes-validations", "enum"):
                continue
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")


def _schema() -> dict[str, Any]:
    return crd_schema.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_schema_is_structural() -> None:
    for path, node in _walk(_schema()):
        for banned in ("$ref", "$defs", "anyOf", "oneOf", "allOf", "title", "const"):
            assert banned not in node, f"{path} has {banned}"
        assert node.get("additionalProperties") is not False, f"{path} has additionalProperties: false"
        if "properties" in node and ".properties" not in path[-11:]:
            assert node.get("type") == "object", f"{path} has properties but no type: object"
            assert "additionalProperties" not in node, f"{path} has both properties and additionalProperties"


def test_free_form_only_where_the_model_is_free_form() -> None:
    preserved = [p for p, n in _walk(_schema()) if n.get("x-kubernetes-preserve-unknown-fields")]
    assert sorted(preserved) == [
        ".properties.spec.properties.actors.properties.affinity",
        ".properties.spec.properties.actors.properties.volumes.items.properties.source",
        ".properties.spec.properties.environment.properties.kwargs",
        ".properties.spec.properties.evaluation.properties.affinity",
        ".properties.spec.properties.policyWorkers.properties.affinity",
        ".properties.spec.properties.policyWorkers.properties.volumes.items.properties.source",
        ".properties.spec.properties.trainers.properties.affinity",
        ".properties.spec.properties.trainers.properties.volumes.items.properties.source",
    ]


def test_pod_settings_of_every_role() -> None:
    spec = _schema()["properties"]["spec"]["properties"]
    for role in ("actors", "policyWorkers", "trainers", "evaluation"):
        props = spec[role]["properties"]
        assert props["affinity"]["type"] == "object", role
        assert props["priorityClassName"]["type"] == "string", role
        assert props["imagePullSecrets"]["items"]["pattern"].startswith("^[a-z0-9]"), role
        assert props["podAnnotations"]["additionalProperties"] == {"type": "string", "maxLength": 4096}, role
        assert props["nodeSelector"]["additionalProperties"]["type"] == "string", role


def test_constraints_and_descriptions_carry_over() -> None:
    spec = _schema()["properties"]["spec"]["properties"]
    discount = spec["algorithm"]["properties"]["ppo"]["properties"]["discount"]
    assert discount["minimum"] == 0 and discount["exclusiveMinimum"] is True and discount["maximum"] == 1
    assert discount["description"] == "Reward discount factor gamma."
    effect = spec["actors"]["properties"]["tolerations"]["items"]["properties"]["effect"]
    assert "nullable" not in effect and effect["enum"] == ["NoSchedule", "PreferNoSchedule", "NoExecute"]
    assert spec["environment"]["properties"]["id"]["nullable"] is True
    assert spec["actors"]["properties"]["replicas"] == {
        "description": "How many actor workers.",
        "type": "integer",
        "minimum": 0,
        "default": 1,
    }
    assert spec["actors"]["default"] == {}  # the API server fills nested defaults from here
    assert spec["actors"]["properties"]["nodeSelector"]["additionalProperties"]["type"] == "string"
    assert _schema()["properties"]["spec"]["required"] == ["environment", "stop"]


def test_subresources_and_printer_columns() -> None:
    version = crd_schema.crd()["spec"]["versions"][0]
    scale = version["subresources"]["scale"]
    status = _schema()["properties"]["status"]["properties"]
    assert scale["specReplicasPath"] == ".spec.actors.replicas"
    assert status["actors"]["properties"]["replicas"]["type"] == "integer"
    assert status["actors"]["properties"]["selector"]["type"] == "string"
    assert version["subresources"]["status"] == {}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns == {
        "Phase": ".status.phase",
        "Actors": ".status.actorsReady",
        "Version": ".status.policyVersion",
        "FPS": ".status.framesPerSecond",
        "MeanReturn": ".status.meanReturn",
        "TrainSteps": ".status.trainSteps",
        "Age": ".metadata.creationTimestamp",
    }
    for path in columns.values():  # every column points at a field the status schema has
        assert path.startswith(".metadata") or path.removeprefix(".status.") in status, path
    for column in version["additionalPrinterColumns"]:
        field = column["jsonPath"].split(".")[-1]
        if column["jsonPath"].startswith(".status"):
            assert field in status


def _apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """What the API server's structural defaulting does (enough of it for our schema)."""
    if schema.get("type") == "object" and isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key not in value and "default" in sub:
                value[key] = yaml.safe_load(yaml.safe_dump(sub["default"]))
            if key in value:
                value[key] = _apply_defaults(sub, value[key])
    return value


def test_schema_defaults_equal_model_defaults() -> None:
    spec = {"environment": {"id": "CartPole-v1"}, "stop": {"trainSteps": 5}}
    defaulted = _apply_defaults(_schema()["properties"]["spec"], spec)
    doc = {"apiVersion": "srl.dev/v1alpha1", "kind": "RLExperiment", "metadata": {"name": "d"}}
    from_schema = parse_experiment({**doc, "spec": defaulted})
    from_models = parse_experiment({**doc, "spec": {"environment": {"id": "CartPole-v1"}, "stop": {"trainSteps": 5}}})
    assert from_schema == from_models
    assert defaulted["actors"]["replicas"] == 1 and defaulted["trainers"]["checkpointEvery"] == 50


def test_every_model_validator_has_a_cel_mirror() -> None:
    from srl_runtime.config import experiment

    with_validators = {
        name
        for name, cls in vars(experiment).items()
        if isinstance(cls, type) and issubclass(cls, experiment.Model) and cls.__pydantic_decorators__.model_validators
    }
    assert with_validators <= set(crd_schema.CEL_RULES), (
        f"model validators without a CEL rule in crd_schema.CEL_RULES: {sorted(with_validators - set(crd_schema.CEL_RULES))}"
    )


CASES = _admission_cases()


@pytest.mark.parametrize(("case", "doc", "_api_field", "model_field"), CASES, ids=[c[0] for c in CASES])
def test_models_reject_what_the_api_server_rejects(case: str, doc: dict[str, Any], _api_field: str, model_field: str) -> None:
    with pytest.raises(InvalidExperiment) as err:
        parse_experiment(doc)
    assert any(p.startswith(model_field) for p in err.value.problems), (case, err.value.problems)


def test_at_least_ten_admission_cases() -> None:
    assert len(CASES) >= 10


def test_cli_prints_the_crd(capsys: pytest.CaptureFixture[str]) -> None:
    assert crd_schema.main([]) == 0
    out = capsys.readouterr().out
    assert yaml.safe_load(out)["metadata"]["name"] == "rlexperiments.srl.dev"
