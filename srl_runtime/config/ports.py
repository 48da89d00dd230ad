"""The TCP ports a worker listens on: one place for the runtime, the operator's pods and Services,
and the images' EXPOSE lines.

In a pod every worker has its own IP, so fixed, declared ports are what Services, NetworkPolicies
and `kubectl port-forward` refer to. On one host (`srl run`, several `srl worker`s side by side) the
default 0 lets the kernel pick free ports; peers find the actual address in the name records either way.
"""

from __future__ import annotations

from dataclasses import dataclass

from srl_runtime.config import worker_env

INFERENCE_PORT = 7100  # policy workers serve the inference stream (ZMQ ROUTER)
SAMPLE_PORT = 7200  # trainers pull the sample stream (ZMQ PULL)
TRAINER_PEER_PORT = 7300  # trainer 0's torch.distributed rendezvous (TCPStore)
METRICS_PORT = 9100  # Prometheus /metrics of every worker


@dataclass(frozen=True)
class ListenPorts:
    """The ports this worker binds; 0 = any free port."""

    inference: int = 0  # policy worker: the inference stream
    sample: int = 0  # trainer: the sample stream
    peers: int = 0  # trainer 0: the trainer group's rendezvous

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ListenPorts:
        """From $SRL_INFERENCE_PORT / $SRL_SAMPLE_PORT / $SRL_PEERS_PORT (unset or empty: 0);
        a bad value is an EnvironmentProblem (a ValueError) naming the variable."""
        env = worker_env.read_worker_env(environ)
        return cls(inference=env.inference_port, sample=env.sample_port, peers=env.peers_port)


# ListenPorts field -> the environment variable the operator sets in worker pods.
PORT_ENV: dict[str, str] = {
    "inference": worker_env.INFERENCE_PORT,
    "sample": worker_env.SAMPLE_PORT,
    "peers": worker_env.PEERS_PORT,
}

# (port name, number) each role listens on in a pod; actors and evaluation serve metrics only.
ROLE_PORTS: dict[str, list[tuple[str, int]]] = {
    "policy": [("inference", INFERENCE_PORT), ("metrics", METRICS_PORT)],
    "trainer": [("sample", SAMPLE_PORT), ("peers", TRAINER_PEER_PORT), ("metrics", METRICS_PORT)],
}


def role_ports(role: str) -> list[tuple[str, int]]:
    """(name, port) a role listens on in a pod."""
    return ROLE_PORTS.get(role, [("metrics", METRICS_PORT)])
