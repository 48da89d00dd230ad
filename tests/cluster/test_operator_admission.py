# ruff: noqa: F811 - pytest fixtures are imported and then named as parameters
"""The API server rejects invalid RLExperiments at admission, naming the field.

The same cases run against the pydantic models in tests/unit/test_crd.py: the CRD schema (and its
CEL rules) and `parse_experiment` must agree on what is invalid and which field is at fault.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from test_operator_cases import BASE, INVALID_CASES, _with
from test_operator_fixtures import crd_installed  # noqa: F401 - a fixture, requested by name


@pytest.mark.parametrize(("case", "doc", "field", "_model_field"), INVALID_CASES, ids=[c[0] for c in INVALID_CASES])
def test_api_server_rejects_with_field_named(
    crd_installed: Any, namespace: str, case: str, doc: dict[str, Any], field: str, _model_field: str
) -> None:
    cp = crd_installed
    proc = cp.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(doc), check=False)
    assert proc.returncode != 0, f"{case}: the API server accepted an invalid experiment"
    err = proc.stderr
    assert field in err, f"{case}: error does not name {field}:\n{err}"


def test_api_server_rejects_unknown_field(crd_installed: Any, namespace: str) -> None:
    """kubectl's strict field validation turns the schema's pruning into a rejection naming the field."""
    doc = _with("actors.replicaz", 3)
    proc = crd_installed.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(doc), check=False)
    assert proc.returncode != 0
    assert "replicaz" in proc.stderr


def test_credentials_in_the_mongodb_uri_are_rejected_without_being_repeated(crd_installed: Any, namespace: str) -> None:
    """The API server's error names the field but not the URI: the password must not reach logs."""
    doc = _with("parameterDb", {"metadata": "mongodb", "mongodb": {"uri": "mongodb://srl:hunter2@mongo:27017/srl"}})
    proc = crd_installed.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(doc), check=False)
    assert proc.returncode != 0 and "spec.parameterDb.mongodb.uri" in proc.stderr, proc.stderr
    assert "hunter2" not in proc.stderr + proc.stdout
    ok = _with("parameterDb", {"metadata": "mongodb", "mongodb": {"uri": "mongodb://mongo:27017/?appName=a@b", "secretName": "m"}})
    crd_installed.kubectl("create", "--dry-run=server", "-n", namespace, "-f", "-", input=json.dumps(ok))


def test_api_server_accepts_and_defaults_the_minimal_document(crd_installed: Any, namespace: str) -> None:
    doc = copy.deepcopy(BASE)
    crd_installed.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(doc))
    out = crd_installed.kubectl("get", "rlx", "bad", "-n", namespace, "-o", "json").stdout
    spec = json.loads(out)["spec"]
    # Schema defaults come from the models: the stored object shows the effective spec.
    assert spec["actors"]["replicas"] == 1
    assert spec["algorithm"]["ppo"]["discount"] == 0.99
    assert spec["policy"]["hiddenSizes"] == [64, 64]
    from srl_runtime.config.load import parse_experiment

    full = {**doc, "spec": spec}
    assert parse_experiment(full).spec.actors.replicas == 1


@pytest.mark.parametrize(
    ("path", "value"),
    [("environment", {"id": None, "entryPoint": "my.envs:Env"}), ("actors.tolerations", [{"key": "k", "operator": "Exists", "effect": None}]),
     ("algorithm.ppo.valueClip", None), ("parameterDb", {"metadata": "mongodb", "mongodb": {"uri": None, "secretName": "m"}})],  # fmt: skip
    ids=["null-id", "null-enum", "null-turns-off", "null-uri"],
)
def test_api_server_accepts_explicit_nulls_like_the_models(crd_installed: Any, namespace: str, path: str, value: Any) -> None:
    from srl_runtime.config.load import parse_experiment

    doc = _with(path, value)
    doc["metadata"]["name"] = "nulls"
    parse_experiment(doc)
    crd_installed.kubectl("create", "--dry-run=server", "-n", namespace, "-f", "-", input=json.dumps(doc))
