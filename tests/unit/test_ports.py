"""Declared ports: what pods, Services and images advertise is what the runtime binds."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from srl_runtime.config import ports
from srl_runtime.config.ports import ListenPorts
from srl_runtime.name_records import keys
from srl_runtime.name_records.memory import MemoryNameRecords
from srl_runtime.streams.inference.zmq_stream import ZmqInferenceServer
from srl_runtime.streams.sample.zmq_stream import ZmqSampleConsumer

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sample_consumer_binds_the_given_port() -> None:
    nr, port = MemoryNameRecords(), _free_port()
    consumer = ZmqSampleConsumer(nr, "srl/_/p", 0, "127.0.0.1", port=port)
    try:
        assert consumer.address == f"tcp://127.0.0.1:{port}"
        assert nr.get(keys.sample_stream("srl/_/p", 0)) == consumer.address
    finally:
        consumer.close()


def test_inference_server_binds_the_given_port() -> None:
    nr, port = MemoryNameRecords(), _free_port()
    server = ZmqInferenceServer(nr, "srl/_/p", 0, "127.0.0.1", port=port)
    try:
        assert server.address == f"tcp://127.0.0.1:{port}"
    finally:
        server.close()


def test_port_zero_picks_a_free_port() -> None:
    consumer = ZmqSampleConsumer(MemoryNameRecords(), "srl/_/p", 0, "127.0.0.1")
    try:
        assert not consumer.address.endswith(":0")
    finally:
        consumer.close()


def test_listen_ports_from_the_pod_environment() -> None:
    env = {"SRL_INFERENCE_PORT": "7100", "SRL_SAMPLE_PORT": "7200", "SRL_PEERS_PORT": ""}
    assert ListenPorts.from_env(env) == ListenPorts(inference=7100, sample=7200, peers=0)
    with pytest.raises(ValueError, match=r"\$SRL_SAMPLE_PORT"):
        ListenPorts.from_env({"SRL_SAMPLE_PORT": "abc"})


def test_images_expose_the_declared_ports() -> None:
    declared = {p for role in ("actor", "policy", "trainer", "eval") for _, p in ports.role_ports(role)}
    for dockerfile in sorted((REPO / "images" / "runtime").glob("Dockerfile*")):
        exposed = {int(p) for line in re.findall(r"^EXPOSE (.+)$", dockerfile.read_text(), re.M) for p in line.split()}
        assert exposed == declared, (dockerfile, exposed, declared)


def test_servers_advertise_the_given_name_with_the_bound_port() -> None:
    nr, port = MemoryNameRecords(), _free_port()
    consumer = ZmqSampleConsumer(nr, "srl/_/p", 0, "127.0.0.1", port=port, advertise="cp-trainer-0.cp-trainer.ml.svc")
    try:
        assert consumer.address == f"tcp://cp-trainer-0.cp-trainer.ml.svc:{port}"
        assert nr.get(keys.sample_stream("srl/_/p", 0)) == consumer.address
    finally:
        consumer.close()


def test_stream_pods_advertise_their_service_dns_name() -> None:
    from srl_operator.builders.pods import worker_pod
    from srl_operator.config import OperatorConfig
    from srl_runtime.config.load import parse_experiment

    exp = parse_experiment({
        "apiVersion": "srl.dev/v1alpha1", "kind": "RLExperiment", "metadata": {"name": "cp", "namespace": "ml"},
        "spec": {"environment": {"id": "CartPole-v1"}, "policyWorkers": {"replicas": 1}, "stop": {"trainSteps": 9}},
    })  # fmt: skip

    def env(role: str) -> dict[str, str]:
        pod = worker_pod(exp, role, 0, OperatorConfig())  # type: ignore[arg-type]
        return {e["name"]: e.get("value", "") for e in pod["spec"]["containers"][0]["env"]}

    assert env("trainer")["SRL_ADVERTISE_HOST"] == "cp-trainer-0.cp-trainer.ml.svc"
    assert env("policy")["SRL_ADVERTISE_HOST"] == "cp-policy-0.cp-policy.ml.svc"
    assert env("policy")["SRL_INFERENCE_PORT"] == str(ports.INFERENCE_PORT)
    assert "SRL_ADVERTISE_HOST" not in env("actor")
