"""The environment variables a worker process reads — the contract between the operator's pod specs
and `srl worker`. One place: the operator's pod builder and the runtime both import these names."""

from __future__ import annotations

ROLE = "SRL_ROLE"  # actor | policy | trainer | eval
INDEX = "SRL_INDEX"  # the worker's index within its role
EXPERIMENT = "SRL_EXPERIMENT"  # path of the RLExperiment YAML (a ConfigMap mount in a pod)
NAMESPACE = "SRL_NAMESPACE"  # Kubernetes namespace: name-record keys are namespaced by it
POD_IP = "SRL_POD_IP"  # the address this worker binds (and advertises, unless ADVERTISE_HOST is set)
ADVERTISE_HOST = "SRL_ADVERTISE_HOST"  # the name peers connect to (a pod's <pod>.<service>.<ns>.svc)
RUN_DIR = "SRL_RUN_DIR"  # scratch/run directory (defaults to the parameter DB's parent)
NAME_RECORDS_REDIS = "SRL_NAME_RECORDS_REDIS"  # host:port of the name-record Redis
NAME_RECORDS_REDIS_PASSWORD = "SRL_NAME_RECORDS_REDIS_PASSWORD"  # its password (from a Secret); unset: none
PARAM_DB_PATH = "SRL_PARAM_DB_PATH"  # the shared parameter-DB directory (the PVC mount)
MONGO_URI = "SRL_MONGO_URI"  # MongoDB URI for version metadata (from a Secret)
METRICS_PORT = "SRL_METRICS_PORT"  # Prometheus metrics HTTP port (0: off)
DISTRIBUTED = "SRL_DISTRIBUTED"  # "1": workers are on separate hosts (zmq streams by default)
INFERENCE_PORT = "SRL_INFERENCE_PORT"  # policy worker: bind the inference stream here (0/unset: any)
SAMPLE_PORT = "SRL_SAMPLE_PORT"  # trainer: bind the sample stream here (0/unset: any)
PEERS_PORT = "SRL_PEERS_PORT"  # trainer 0: the trainer group's rendezvous port (0/unset: any)
