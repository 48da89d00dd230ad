"""The RLExperiment document: the one definition of an experiment, local and on a cluster.

Every field carries a one-line description; the operator's CRD schema is generated from these
models (`srl_runtime.config.crd_schema`), so the description is also what `kubectl explain` shows.
Cluster-only fields (images, resources, scheduling, storage) are optional and ignored by `srl run`.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

API_VERSION: Final = "srl.dev/v1alpha1"
KIND: Final = "RLExperiment"

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # what the API server (JSON int64) can hold


def number_problem(value: Any, where: str = "") -> str | None:
    """Why `value` (or a number nested in it) cannot travel as JSON to the API server, else None."""
    at = f" (at {where})" if where else ""
    if isinstance(value, bool) or value is None or isinstance(value, (str, BaseModel)):
        return None
    if isinstance(value, int):
        return None if INT64_MIN <= value <= INT64_MAX else f"must fit in a 64-bit integer{at}"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"must be a finite number{at}"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple)) else ()
    for k, v in items:
        problem = number_problem(v, f"{where}[{k}]" if isinstance(k, int) else f"{where}.{k}".lstrip("."))
        if problem:
            return problem
    return None


class Model(BaseModel):
    """Base: camelCase in documents, snake_case in Python, unknown fields rejected.

    Documents are parsed by alias only (`parse_experiment`), so `batch_size` in a file is an unknown
    field there, as it is to the API server; Python code may still use field names.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_assignment=True,
    )

    @field_validator("*", mode="after")
    @classmethod
    def _json_numbers(cls, value: Any) -> Any:
        # .inf/.nan and integers beyond int64 pass pydantic's bounds but not the API server.
        problem = number_problem(value)
        if problem:
            raise ValueError(problem)
        return value


# --------------------------------------------------------------------------- environment


class AtariSpec(Model):
    """Standard Atari preprocessing (the DQN/Nature wrappers)."""

    noop_max: int = Field(30, ge=0, description="Maximum random no-op actions at reset.")
    frame_skip: int = Field(4, ge=1, description="Repeat each action this many frames, max-pool the last two.")
    screen_size: int = Field(84, ge=8, description="Side of the square grayscale observation.")
    frame_stack: int = Field(4, ge=1, description="Number of most recent frames stacked as channels.")
    episodic_life: bool = Field(True, description="Treat loss of a life as the end of an episode for learning.")
    clip_rewards: bool = Field(True, description="Clip rewards to their sign for learning (returns report raw rewards).")


class EnvironmentSpec(Model):
    """Which environment the actors step."""

    id: str | None = Field(None, description="A gymnasium environment id, e.g. CartPole-v1 or ALE/Pong-v5.")
    entry_point: str | None = Field(
        None, description="A user's own environment class as 'module:Class' (instead of id)."
    )
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments for the environment constructor.")
    atari: AtariSpec | None = Field(None, description="Apply the standard Atari wrappers (for ALE ids).")
    max_episode_steps: int | None = Field(None, ge=1, description="Override the episode step limit.")

    @model_validator(mode="after")
    def _one_source(self) -> EnvironmentSpec:
        if (self.id is None) == (self.entry_point is None):
            raise ValueError("exactly one of id or entryPoint must be set")
        if self.entry_point is not None and ":" not in self.entry_point:
            raise ValueError("entryPoint must look like 'module:Class'")
        return self


# --------------------------------------------------------------------------- policy


class RNNSpec(Model):
    """A recurrent core after the encoder."""

    hidden_size: int = Field(128, ge=1, description="GRU hidden state size.")


class PolicySpec(Model):
    """The actor-critic network."""

    encoder: Literal["mlp", "cnn"] = Field("mlp", description="Observation encoder: mlp for vectors, cnn (Nature CNN) for images.")
    hidden_sizes: list[int] = Field(default_factory=lambda: [64, 64], min_length=1, description="MLP layer widths (also the head width after a CNN).")
    activation: Literal["tanh", "relu"] = Field("tanh", description="Activation between MLP layers.")
    shared_encoder: bool = Field(False, description="Actor and critic share the encoder (always true for cnn).")
    rnn: RNNSpec | None = Field(None, description="Add a GRU core; samples then carry the recurrent state.")
    normalize_observations: bool = Field(False, description="Keep running mean/std of observations and normalise them.")
    centralized_value: bool = Field(
        False,
        description="MAPPO's centralised critic: the value sees the environment's global state (Environment.state(); default: all agents' observations).",
    )

    @model_validator(mode="after")
    def _centralized_critic_is_separate(self) -> PolicySpec:
        if self.centralized_value and (self.encoder != "mlp" or self.shared_encoder or self.rnn is not None):
            raise ValueError("centralizedValue: needs a separate MLP critic (encoder mlp, sharedEncoder false, no rnn)")
        return self


# --------------------------------------------------------------------------- algorithm


class LearnerSpec(Model):
    """Settings every learner shares: returns, the optimiser, the entropy bonus, value normalisation."""

    discount: float = Field(0.99, gt=0, le=1, description="Reward discount factor gamma.")
    entropy_coef: float = Field(0.0, ge=0, description="Entropy bonus coefficient.")
    value_coef: float = Field(0.5, ge=0, description="Value loss coefficient.")
    max_grad_norm: float | None = Field(0.5, gt=0, description="Clip the global gradient norm (null: off).")
    learning_rate: float = Field(3e-4, gt=0, description="Adam learning rate.")
    lr_schedule: Literal["constant", "linear"] = Field("constant", description="constant, or linear decay to 0 over stop.trainSteps.")
    popart: bool = Field(
        False, description="PopArt: normalise value targets by running statistics, rescaling the value head so its unnormalised outputs are kept."
    )
    popart_beta: float = Field(
        1e-3, gt=0, le=1, description="PopArt statistics step size per train step (a plain average over the first 1/popartBeta steps)."
    )


class VTraceClips(Model):
    """The truncation levels of V-trace's importance weights (Espeholt et al. 2018)."""

    rho_clip: float = Field(1.0, gt=0, description="V-trace rho-bar: clip of the importance weights in the TD errors and the policy-gradient advantage.")
    c_clip: float = Field(1.0, gt=0, description="V-trace c-bar: clip of the trace (how far corrections flow back in time).")


class PPOSpec(LearnerSpec, VTraceClips):
    """Proximal Policy Optimisation hyper-parameters."""

    gae_lambda: float = Field(0.95, ge=0, le=1, description="GAE lambda (also V-trace's trace lambda).")
    clip_ratio: float = Field(0.2, gt=0, description="Policy ratio clipping epsilon.")
    dual_clip: float | None = Field(
        None, gt=1, description="Dual-clip PPO: bound the loss of negative-advantage samples at -c*A, c > 1 (null: off)."
    )
    value_clip: float | None = Field(0.2, gt=0, description="Clip value updates to this distance from the old value (null: off).")
    epochs: int = Field(4, ge=1, description="Passes over each training batch.")
    minibatches: int = Field(4, ge=1, description="Minibatches per epoch.")
    normalize_advantages: bool = Field(True, description="Normalise advantages per minibatch.")
    normalize_returns: bool = Field(False, description="Scale value targets by a running std of returns.")
    off_policy_correction: Literal["none", "vtrace"] = Field(
        "none",
        description="vtrace: value targets and advantages by V-trace from the trainer's current network (as APPO); none: GAE on the actors' values.",
    )

    @model_validator(mode="after")
    def _one_value_normalisation(self) -> PPOSpec:
        if self.popart and self.normalize_returns:
            raise ValueError("normalizeReturns: cannot be combined with popart (PopArt normalises the targets itself)")
        return self


class PPGSpec(Model):
    """Phasic Policy Gradient (Cobbe et al. 2020): PPO policy phases (algorithm.ppo) and auxiliary phases."""

    policy_iterations: int = Field(32, ge=1, description="Policy-phase train steps (PPO with algorithm.ppo) between auxiliary phases (N_pi).")
    aux_epochs: int = Field(6, ge=1, description="Passes over the stored policy-phase samples in each auxiliary phase (E_aux).")
    aux_minibatches: int = Field(16, ge=1, description="Minibatches per auxiliary epoch.")
    clone_coef: float = Field(1.0, ge=0, description="Weight of the behaviour-cloning KL(pi_old || pi) in the auxiliary phase (beta_clone).")
    aux_value_coef: float = Field(1.0, ge=0, description="Weight of the auxiliary value head's loss in the auxiliary phase.")


class ImpalaSpec(LearnerSpec, VTraceClips):
    """IMPALA: one V-trace actor-critic gradient step per batch."""

    trace_lambda: float = Field(1.0, ge=0, le=1, description="V-trace lambda: scales the trace coefficients c (1: the paper's V-trace).")
    entropy_coef: float = Field(0.01, ge=0, description="Entropy bonus coefficient.")
    learning_rate: float = Field(6e-4, gt=0, description="Adam learning rate.")
    max_grad_norm: float | None = Field(40.0, gt=0, description="Clip the global gradient norm (null: off).")


class AlgorithmSpec(Model):
    """The learning algorithm: PPO by default; ppg adds auxiliary phases to it; impala replaces it."""

    ppo: PPOSpec = Field(default_factory=PPOSpec, description="PPO settings (also PPG's policy phase); unused with impala.")
    ppg: PPGSpec | None = Field(None, description="Phasic Policy Gradient: PPO plus auxiliary phases (null: plain PPO).")
    impala: ImpalaSpec | None = Field(None, description="IMPALA's V-trace learner instead of PPO (null: PPO).")

    @model_validator(mode="after")
    def _one_learner(self) -> AlgorithmSpec:
        if self.ppg is not None and self.impala is not None:
            raise ValueError("impala: cannot be combined with ppg")
        return self


# --------------------------------------------------------------------------- workers


class ResourcesSpec(Model):
    """Kubernetes resource requests/limits for a worker pod (cluster only)."""

    cpu: str | None = Field(None, description="CPU request, e.g. '1' or '500m'.")
    memory: str | None = Field(None, description="Memory request, e.g. '2Gi'.")
    gpu: int = Field(0, ge=0, description="nvidia.com/gpu count requested (trainer and policy roles).")


class TolerationSpec(Model):
    """A pod toleration (cluster only)."""

    key: str | None = Field(None, description="Taint key.")
    operator: Literal["Equal", "Exists"] = Field("Equal", description="Equal or Exists.")
    value: str | None = Field(None, description="Taint value for Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(None, description="Taint effect to tolerate.")


class VolumeSpec(Model):
    """An extra volume mounted into a worker pod (cluster only)."""

    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", description="Volume name (a DNS label, unique in the pod).")
    mount_path: str = Field(min_length=1, pattern=r"^/", description="Absolute path where the volume is mounted in the worker container.")
    read_only: bool = Field(False, description="Mount read-only.")
    source: dict[str, Any] = Field(description="A Kubernetes volume source, e.g. {persistentVolumeClaim: {claimName: data}} or {emptyDir: {}}.")


# A Secret name (a DNS subdomain), as imagePullSecrets entries name them.
SecretName = Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")]


class PodSettingsSpec(Model):
    """Scheduling and metadata of a role's pods that a platform team sets (cluster only)."""

    node_selector: dict[str, str] = Field(default_factory=dict, description="Pod node selector (cluster only).")
    tolerations: list[TolerationSpec] = Field(default_factory=list, description="Pod tolerations (cluster only).")
    affinity: dict[str, Any] = Field(
        default_factory=dict,
        description="Pod affinity, a Kubernetes Affinity (nodeAffinity, podAffinity, podAntiAffinity) passed through as it is (cluster only).",
    )
    priority_class_name: str | None = Field(None, description="PriorityClass of the pods (cluster only).")
    image_pull_secrets: list[SecretName] = Field(
        default_factory=list, description="Names of Secrets in the experiment's namespace for pulling the runtime image (cluster only)."
    )
    pod_annotations: dict[str, str] = Field(
        default_factory=dict, description="Extra annotations on the pods; keys under srl.dev/ are the operator's and ignored (cluster only)."
    )


class WorkerRoleSpec(PodSettingsSpec):
    """Fields every worker role shares."""

    replicas: int = Field(1, ge=0, description="How many workers of this role.")
    device: Literal["cpu", "cuda"] = Field("cpu", description="Torch device for this role.")
    torch_threads: int = Field(1, ge=1, description="torch intra-op threads per worker (small machines: 1).")
    resources: ResourcesSpec | None = Field(None, description="Pod resources (cluster only).")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables for the worker process.")
    volumes: list[VolumeSpec] = Field(default_factory=list, description="Extra volumes mounted into the worker pods (cluster only).")
    restart_limit: int = Field(10, ge=0, description="Restarts allowed per worker of this role before the run fails (a Job's backoffLimit, counted per worker).")


class ActorSpec(WorkerRoleSpec):
    """Actor workers: step environments, ask for actions, send trajectories."""

    replicas: int = Field(1, ge=0, description="How many actor workers.")
    ring_size: int = Field(1, ge=1, description="Env ring slots per actor: while slot k waits for actions, slot k+1 steps.")
    envs_per_slot: int = Field(8, ge=1, description="Environments stepped together in one ring slot (one inference request).")
    inference_splits: int = Field(1, ge=1, description="Split each slot's request into this many parts sent to different policy workers.")
    sample_steps: int = Field(64, ge=1, description="Time steps T per trajectory sent to trainers.")
    bootstrap_steps: int = Field(1, ge=0, description="Extra steps appended to each trajectory for value bootstrapping (overlap with the next).")
    burn_in: int = Field(0, ge=0, description="Steps of recurrent-state warm-up prepended to each trajectory.")
    full_trajectory: bool = Field(False, description="Send whole episodes instead of fixed-length pieces.")
    max_episode_length: int = Field(1000, ge=1, description="Upper bound on an episode in fullTrajectory mode (buffer size).")
    param_pull_interval: float = Field(0.0, ge=0, description="Seconds between checks of the parameter DB for a new version (inline inference only).")
    version_wait_seconds: float = Field(
        30.0, ge=0,
        description="On-policy (trainers.maxStaleness 0): once its slots produced their share of the next batch, an actor waits at most this long for a newer policy version before stepping on (0: never waits).",
    )  # fmt: skip
    episode_log: bool = Field(True, description="Append each finished episode (end time, raw return, length) to <run dir>/episodes/actor-<index>.csv.")

    @property
    def piece_length(self) -> int:
        """Rows of one trajectory piece on the sample stream: burnIn + sampleSteps + bootstrapSteps."""
        return self.burn_in + self.sample_steps + self.bootstrap_steps

    @property
    def piece_overlap(self) -> int:
        """Rows consecutive pieces share (carried to the front of the next): burnIn + bootstrapSteps."""
        return self.burn_in + self.bootstrap_steps


class PolicyWorkerSpec(WorkerRoleSpec):
    """Policy workers: batch inference requests and run the forward pass."""

    replicas: int = Field(0, ge=0, description="Policy workers; 0 means inference runs inline in each actor.")
    batch_size: int = Field(512, ge=1, description="Rows per forward pass at most, a row being one observation (one env, or one agent of a multi-agent env); adaptive batching up to this.")
    max_wait_ms: float = Field(2.0, ge=0, description="At most this many milliseconds to fill a batch; the wait ends once every active actor's ring is in it.")
    param_pull_interval: float = Field(0.5, ge=0, description="Seconds between checks of the parameter DB for a new version.")


class TrainerSpec(WorkerRoleSpec):
    """Trainer workers: consume trajectories, run the algorithm, push versions."""

    batch_size: int = Field(16, ge=1, description="Trajectories per training step, a trajectory being one column (one env, or one agent of a multi-agent env) of sampleSteps steps.")
    sample_reuse: int = Field(1, ge=1, description="How many training steps may reuse one trajectory.")
    buffer_capacity: int = Field(256, ge=1, description="Trajectories (columns, as batchSize) held at most; the oldest are dropped beyond this.")
    max_staleness: int = Field(4, ge=0, description="Drop trajectories whose policy version is more than this behind.")
    push_every: int = Field(1, ge=1, description="Push a new version to the parameter DB every N train steps.")
    checkpoint_every: int = Field(50, ge=1, description="Keep (tag) a resumable checkpoint every N train steps.")


class EvaluationSpec(PodSettingsSpec):
    """Periodic deterministic evaluation of a tagged version."""

    enabled: bool = Field(False, description="Run an evaluation worker.")
    interval_seconds: float = Field(30.0, gt=0, description="Seconds between evaluations.")
    episodes: int = Field(5, ge=1, description="Episodes per evaluation.")
    tag: str = Field("latest", description="Parameter DB tag to evaluate.")
    device: Literal["cpu", "cuda"] = Field("cpu", description="Torch device for evaluation.")
    restart_limit: int = Field(10, ge=0, description="Restarts allowed for the evaluation worker before the run fails (a Job's backoffLimit).")


class FailurePolicySpec(Model):
    """What crashing workers and non-finite data do to a run."""

    backoff_seconds: float = Field(1.0, ge=0, description="Wait before a crashed worker's first restart; doubles with each further restart of it.")
    max_backoff_seconds: float = Field(60.0, ge=0, description="Upper bound of the wait before a restart.")
    non_finite: Literal["warn", "fail"] = Field(
        "warn", description="NaN/inf in env output, a sample or an update: warn (drop, count, go on) or fail the run."
    )

    def backoff(self, restarts: int) -> float:
        """Seconds to wait before restarting a worker that was restarted `restarts` times already."""
        return min(self.max_backoff_seconds, self.backoff_seconds * 2.0 ** min(restarts, 62))


# --------------------------------------------------------------------------- plumbing


class StreamsSpec(Model):
    """How data moves between workers."""

    inference: Literal["auto", "inline", "shm", "zmq"] = Field(
        "auto", description="auto: inline without policy workers, shm on one host, zmq across hosts."
    )
    sample: Literal["auto", "shm", "zmq"] = Field("auto", description="auto: shm on one host, zmq across hosts.")
    sample_queue: int = Field(
        2, ge=1, description="Sample messages an actor may have in flight before it blocks (bounds policy lag)."
    )


class NameRecordsSpec(Model):
    """Where workers find each other."""

    backend: Literal["auto", "memory", "directory", "redis"] = Field(
        "auto", description="auto: directory locally, redis in a cluster; memory for single-process runs."
    )
    path: str | None = Field(None, description="Directory for the directory backend (default: inside the run directory).")
    redis_address: str | None = Field(None, description="host:port of an existing Redis (cluster: otherwise one is created).")
    keepalive_ttl: float = Field(10.0, gt=0, description="Seconds an entry lives without a keep-alive.")


# A URI whose authority (before the first / ? #) holds an '@' carries userinfo (user:password@).
# The same regex is the CEL rule of the CRD (crd_schema.CEL_RULES["MongoSpec"]).
URI_USERINFO_PATTERN = r"^([a-zA-Z][a-zA-Z0-9+.-]*://)?[^/?#]*@"
URI_CREDENTIALS_PROBLEM = (
    "must not carry credentials (user:password@); put the URI in a Secret and set secretName/secretKey "
    "(locally: $SRL_MONGO_URI)"
)


class MongoSpec(Model):
    """MongoDB connection for version metadata."""

    uri: str | None = Field(
        None,
        description="mongodb:// URI without credentials (the document is stored in a ConfigMap); "
        "a URI with user:password comes from secretName, or $SRL_MONGO_URI locally.",
    )
    secret_name: str | None = Field(None, description="Kubernetes Secret holding the URI (cluster).")
    secret_key: str = Field("uri", description="Key of the URI inside that Secret.")
    database: str = Field("srl", description="Database name.")

    @model_validator(mode="after")
    def _no_credentials_in_uri(self) -> MongoSpec:
        # The message never repeats the URI: it would put the password into status, Events and logs.
        if self.uri is not None and re.match(URI_USERINFO_PATTERN, self.uri):
            raise ValueError(f"uri: {URI_CREDENTIALS_PROBLEM}")
        return self



class ParameterDBSpec(Model):
    """Versioned checkpoints on a filesystem, metadata in a store."""

    path: str | None = Field(None, description="Directory of the store (default: inside the run directory; cluster: the PVC mount).")
    keep_versions: int = Field(8, ge=1, description="Untagged versions kept by garbage collection.")
    metadata: Literal["sqlite", "mongodb"] = Field("sqlite", description="Version metadata store.")
    mongodb: MongoSpec | None = Field(None, description="MongoDB settings when metadata is mongodb.")
    claim_name: str | None = Field(None, description="Use this existing PersistentVolumeClaim (cluster only).")
    storage_class: str | None = Field(None, description="StorageClass of the PVC the operator creates (cluster only).")
    size: str = Field("5Gi", description="Size of the PVC the operator creates (cluster only).")
    access_mode: Literal["ReadWriteMany", "ReadWriteOnce"] | None = Field(
        None, description="PVC access mode (cluster only; default: the operator's, the chart's parameterDbAccessMode)."
    )

    @model_validator(mode="after")
    def _mongo_needs_settings(self) -> ParameterDBSpec:
        if self.metadata == "mongodb" and self.mongodb is None:
            raise ValueError("metadata: mongodb needs a mongodb block")
        return self


class StopSpec(Model):
    """When the run ends; the first condition met wins."""

    env_frames: int | None = Field(None, ge=1, description="Total environment frames across actors.")
    train_steps: int | None = Field(None, ge=1, description="Total trainer steps.")
    wall_seconds: float | None = Field(None, gt=0, description="Wall-clock seconds since start.")
    target_mean_return: float | None = Field(None, description="Mean return over the last returnWindow episodes.")
    return_window: int = Field(100, ge=1, description="Episodes averaged for targetMeanReturn (100: how gymnasium and the benchmarks define solved).")

    @model_validator(mode="after")
    def _some_condition(self) -> StopSpec:
        if all(
            v is None for v in (self.env_frames, self.train_steps, self.wall_seconds, self.target_mean_return)
        ):
            raise ValueError("set at least one of envFrames, trainSteps, wallSeconds, targetMeanReturn")
        return self


class ClusterSpec(Model):
    """Cluster-only settings; `srl run` ignores them."""

    image: str | None = Field(None, description="Runtime image (default: the operator's configured image).")
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = Field(
        None, description="Worker image pull policy (default: the operator's, the chart's runtimeImage.pullPolicy)."
    )
    service_account_name: str | None = Field(None, description="ServiceAccount for worker pods.")


class ExperimentSpec(Model):
    """What to train and how to lay it out."""

    environment: EnvironmentSpec = Field(description="The environment actors step.")
    policy: PolicySpec = Field(default_factory=PolicySpec, description="The actor-critic network.")
    algorithm: AlgorithmSpec = Field(default_factory=AlgorithmSpec, description="The learning algorithm.")
    actors: ActorSpec = Field(default_factory=ActorSpec, description="Actor workers.")
    policy_workers: PolicyWorkerSpec = Field(default_factory=PolicyWorkerSpec, description="Policy workers (0: inline inference).")
    trainers: TrainerSpec = Field(default_factory=TrainerSpec, description="Trainer workers.")
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec, description="Evaluation worker.")
    failure_policy: FailurePolicySpec = Field(default_factory=FailurePolicySpec, description="Restart backoff and what non-finite data does.")
    streams: StreamsSpec = Field(default_factory=StreamsSpec, description="Stream implementations.")
    name_records: NameRecordsSpec = Field(default_factory=NameRecordsSpec, description="Name record backend.")
    parameter_db: ParameterDBSpec = Field(default_factory=ParameterDBSpec, description="Parameter database.")
    stop: StopSpec = Field(description="Stop condition.")
    seed: int = Field(1, ge=0, description="Base random seed; workers derive theirs from it.")
    cluster: ClusterSpec = Field(default_factory=ClusterSpec, description="Cluster-only settings.")
    suspend: bool = Field(False, description="Cluster: delete worker pods but keep the parameter DB.")

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentSpec:
        if self.trainers.replicas < 1:
            raise ValueError("trainers.replicas: must be >= 1")
        if self.policy_workers.replicas == 0 and self.streams.inference in ("shm", "zmq"):
            raise ValueError("streams.inference: shm/zmq need policyWorkers.replicas >= 1")
        if self.policy_workers.replicas > 0 and self.streams.inference == "inline":
            raise ValueError("streams.inference: inline needs policyWorkers.replicas = 0")
        if self.actors.inference_splits > self.actors.envs_per_slot:
            raise ValueError("actors.inferenceSplits: must be <= envsPerSlot")
        if self.algorithm.ppg is not None and self.policy.rnn is not None:
            raise ValueError("algorithm.ppg: needs a feed-forward policy (policy.rnn unset)")
        if self.policy.centralized_value and self.environment.entry_point is None:
            raise ValueError("policy.centralizedValue: needs a multi-agent srl Environment (environment.entryPoint)")
        if self.trainers.buffer_capacity < self.trainers.batch_size:
            raise ValueError("trainers.bufferCapacity: must be >= trainers.batchSize (else no batch ever fits)")
        learner_name = "impala" if self.algorithm.impala is not None else "ppo"
        if getattr(self.algorithm, learner_name).lr_schedule == "linear" and self.stop.train_steps is None:
            raise ValueError(f"algorithm.{learner_name}.lrSchedule: linear decays to 0 over stop.trainSteps, which is not set")
        return self


class ObjectMeta(Model):
    """The parts of Kubernetes metadata an experiment uses."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", description="Experiment name (a DNS label).")
    namespace: str | None = Field(None, description="Kubernetes namespace.")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels; the operator copies them onto every child object.")
    annotations: dict[str, str] = Field(
        default_factory=dict, description="Annotations; the operator copies them onto every child object (bookkeeping ones excepted)."
    )


class RLExperiment(Model):
    """The whole document: apiVersion, kind, metadata, spec."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    api_version: Literal["srl.dev/v1alpha1"] = Field(API_VERSION, description="Always srl.dev/v1alpha1.")
    kind: Literal["RLExperiment"] = Field(KIND, description="Always RLExperiment.")
    metadata: ObjectMeta = Field(description="Name, namespace, labels and annotations of the experiment.")
    spec: ExperimentSpec = Field(description="The experiment.")
