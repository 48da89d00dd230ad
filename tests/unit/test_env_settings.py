"""Environment configuration (pydantic-settings): the worker's and the operator's; a bad value is one
line naming the variable, exit code 2."""

from __future__ import annotations

import pytest

from srl_operator.config import OperatorConfig, load_config
from srl_runtime.cli import EXIT_INVALID, main
from srl_runtime.config import worker_env
from srl_runtime.config.env_settings import EnvironmentProblem

pytestmark = pytest.mark.unit


def test_worker_env_reads_the_pod_contract() -> None:
    env = worker_env.read_worker_env({"SRL_ROLE": "trainer", "SRL_INDEX": "2", "SRL_SAMPLE_PORT": "7200", "SRL_PEERS_PORT": ""})
    assert (env.role, env.index, env.sample_port, env.peers_port) == ("trainer", 2, 7200, 0)
    assert worker_env.INDEX == "SRL_INDEX" and worker_env.NAME_RECORDS_REDIS_PASSWORD == "SRL_NAME_RECORDS_REDIS_PASSWORD"


@pytest.mark.parametrize(
    "var,value", [("SRL_INDEX", "abc"), ("SRL_INDEX", "-1"), ("SRL_ROLE", "learner"), ("SRL_METRICS_PORT", "http")]
)
def test_srl_worker_names_a_bad_variable_and_exits_2(
    var: str, value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(var, value)
    code = main(["worker", "--role", "actor", "--experiment", "/nonexistent.yaml"])
    err = capsys.readouterr().err
    assert code == EXIT_INVALID, err
    assert len(err.strip().splitlines()) == 1 and err.startswith(f"srl worker: ${var}: ") and repr(value) in err, err


def test_operator_config_from_the_environment() -> None:
    cfg = OperatorConfig.from_env({"SRL_API_CONCURRENCY": "3", "SRL_OPERATOR_POD_LABELS": "a=b, c=d", "SRL_SHARED_REDIS_ADDRESS": ""})
    assert cfg.api_concurrency == 3 and cfg.operator_pod_labels == (("a", "b"), ("c", "d"))
    assert cfg.shared_redis_address is None and cfg == OperatorConfig(api_concurrency=3, operator_pod_labels=(("a", "b"), ("c", "d")))


@pytest.mark.parametrize(
    "var,value",
    [("SRL_API_CONCURRENCY", "x"), ("SRL_API_CONCURRENCY", "0"), ("SRL_RECONCILE_INTERVAL", "soon"), ("SRL_OPERATOR_POD_LABELS", "app")],
)
def test_operator_config_names_a_bad_variable(var: str, value: str) -> None:
    with pytest.raises(EnvironmentProblem, match=rf"^\${var}: .*\(got '{value}'\)$"):
        OperatorConfig.from_env({var: value})


def test_operator_exits_2_on_a_bad_variable(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SRL_API_CONCURRENCY", "x")
    with pytest.raises(SystemExit) as info:
        load_config()
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.startswith("srl-operator: $SRL_API_CONCURRENCY: ") and len(err.strip().splitlines()) == 1
