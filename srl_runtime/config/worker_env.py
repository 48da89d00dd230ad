"""The environment variables a worker process reads — the contract between the operator's pod specs
and `srl worker`. One place: `WorkerEnv` names each setting once (its variable is SRL_ + the field
name in upper case); the operator's pod builder and the runtime import the names below."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from srl_runtime.config.env_settings import EnvSettings, load
from srl_runtime.config.roles import Role


class WorkerEnv(EnvSettings):
    """What `srl worker` reads from its environment (flags take precedence)."""

    model_config = SettingsConfigDict(env_prefix="SRL_")

    role: Role | None = Field(None, description="actor | policy | trainer | eval.")
    index: int = Field(0, ge=0, description="The worker's index within its role.")
    experiment: str | None = Field(None, description="Path of the RLExperiment YAML (a ConfigMap mount in a pod).")
    namespace: str | None = Field(None, description="Kubernetes namespace: name-record keys are namespaced by it.")
    pod_ip: str | None = Field(None, description="The address this worker binds (and advertises, unless advertiseHost is set).")
    advertise_host: str | None = Field(None, description="The name peers connect to (a pod's <pod>.<service>.<ns>.svc).")
    run_dir: str | None = Field(None, description="Scratch/run directory (defaults to the parameter DB's parent).")
    name_records_redis: str | None = Field(None, description="host:port of the name-record Redis.")
    name_records_redis_password: str | None = Field(None, description="Its password (from a Secret); unset: none.")
    param_db_path: str | None = Field(None, description="The shared parameter-DB directory (the PVC mount).")
    mongo_uri: str | None = Field(None, description="MongoDB URI for version metadata (from a Secret).")
    metrics_port: int | None = Field(None, ge=-1, le=65535, description="Prometheus metrics HTTP port (0: any free port; -1 or unset: off).")
    inference_port: int = Field(0, ge=0, le=65535, description="Policy worker: bind the inference stream here (0: any).")
    sample_port: int = Field(0, ge=0, le=65535, description="Trainer: bind the sample stream here (0: any).")
    peers_port: int = Field(0, ge=0, le=65535, description="Trainer 0: the trainer group's rendezvous port (0: any).")


def read_worker_env(environ: dict[str, str] | None = None) -> WorkerEnv:
    """The worker's settings from `environ` (default os.environ); EnvironmentProblem names a bad variable."""
    return load(WorkerEnv, environ)


_var = WorkerEnv.variable
ROLE = _var("role")
INDEX = _var("index")
EXPERIMENT = _var("experiment")
NAMESPACE = _var("namespace")
POD_IP = _var("pod_ip")
ADVERTISE_HOST = _var("advertise_host")
RUN_DIR = _var("run_dir")
NAME_RECORDS_REDIS = _var("name_records_redis")
NAME_RECORDS_REDIS_PASSWORD = _var("name_records_redis_password")
PARAM_DB_PATH = _var("param_db_path")
MONGO_URI = _var("mongo_uri")
METRICS_PORT = _var("metrics_port")
INFERENCE_PORT = _var("inference_port")
SAMPLE_PORT = _var("sample_port")
PEERS_PORT = _var("peers_port")
