"""Worker pods: one per (role, index), running `srl worker --role R --index I`."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from srl_operator import naming
from srl_operator.builders.common import (
    container_security_context,
    metadata,
    pod_security_context,
    template_hash,
    with_experiment_metadata,
    without_reserved,
)
from srl_operator.builders.configmap import EXPERIMENT_PATH, MOUNT_DIR, running_document_hash
from srl_operator.builders.pvc import MOUNT_PATH, PARAMS_PATH, RUN_PATH, claim_name
from srl_operator.builders.redis import needs_redis, password_env, redis_address
from srl_operator.builders.services import METRICS_PORT, role_ports
from srl_operator.config import OperatorConfig
from srl_runtime.config import roles, worker_env
from srl_runtime.config.experiment import PodSettingsSpec, RLExperiment, WorkerRoleSpec
from srl_runtime.config.ports import PORT_ENV

GPU_RESOURCE = "nvidia.com/gpu"
SHM_SIZE = "1Gi"  # /dev/shm for torch and the shared-memory streams


def desired_replicas(exp: RLExperiment, role: naming.Role) -> int:
    """How many pods of `role` the spec asks for (0 for every role while suspended)."""
    return 0 if exp.spec.suspend else roles.replicas(exp.spec, role)


def _role_spec(exp: RLExperiment, role: naming.Role) -> WorkerRoleSpec | None:
    """The shared worker settings of a role (evaluation has none beyond its device)."""
    return roles.worker_settings(exp.spec, role)


def _pod_settings(exp: RLExperiment, role: naming.Role) -> PodSettingsSpec:
    """The role's scheduling and pod metadata settings (evaluation has its own)."""
    return _role_spec(exp, role) or exp.spec.evaluation


def resources(exp: RLExperiment, role: naming.Role, cfg: OperatorConfig | None = None) -> dict[str, Any]:
    """Requests (and the GPU limit): cuda roles get nvidia.com/gpu (default 1), actors CPU
    (the role's resources.cpu, else the operator's actor_cpu_request)."""
    cfg = cfg or OperatorConfig()
    rs = _role_spec(exp, role)
    res = rs.resources if rs is not None else None
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    cpu = res.cpu if res and res.cpu else (cfg.actor_cpu_request if role == "actor" else None)
    if cpu:
        requests["cpu"] = cpu
    if res and res.memory:
        requests["memory"] = res.memory
    gpus = res.gpu if res and res.gpu else 0
    if roles.device(exp.spec, role) == "cuda" and gpus == 0:
        gpus = 1
    if gpus:
        # Extended resources must be set as limits (requests default to them).
        limits[GPU_RESOURCE] = str(gpus)
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def env(exp: RLExperiment, role: naming.Role, index: int, cfg: OperatorConfig) -> list[dict[str, Any]]:
    """The worker's environment: the SRL_* contract plus the role's own env (which cannot override it)."""
    spec = exp.spec
    redis = redis_address(exp, cfg)
    # Names from srl_runtime.config.worker_env: the contract `srl worker` reads.
    ours: list[dict[str, Any]] = [
        {"name": worker_env.ROLE, "value": role},
        {"name": worker_env.INDEX, "value": str(index)},
        {"name": worker_env.EXPERIMENT, "value": EXPERIMENT_PATH},
        {"name": worker_env.NAMESPACE, "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "SRL_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": worker_env.POD_IP, "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": worker_env.NAME_RECORDS_REDIS, "value": redis},
        {"name": worker_env.PARAM_DB_PATH, "value": PARAMS_PATH},
        # On the volume too: trainer 0's stop monitor keeps its state there across restarts.
        {"name": worker_env.RUN_DIR, "value": RUN_PATH},
        {"name": worker_env.METRICS_PORT, "value": str(METRICS_PORT)},
        {"name": "HOME", "value": "/tmp"},  # the root filesystem is read-only
    ]
    # The runtime binds exactly these (srl_runtime.config.ports), so the Services' ports are real.
    serves = False
    for port_name, port in role_ports(role):
        if port_name in PORT_ENV:
            ours.append({"name": PORT_ENV[port_name], "value": str(port)})
            serves = True
    if serves:
        # Stream servers advertise their stable name through the role's headless Service
        # (<pod>.<service>.<namespace>.svc): peers connect through the Service's DNS, not a pod IP.
        host = f"{naming.pod_name(exp.metadata.name, role, index)}.{naming.service_name(exp.metadata.name, role)}"
        ours.append({"name": worker_env.ADVERTISE_HOST, "value": f"{host}.{exp.metadata.namespace}.{cfg.redis_host_suffix}"})
    rs = _role_spec(exp, role)
    threads = str(rs.torch_threads if rs is not None else 1)
    ours.append({"name": "OMP_NUM_THREADS", "value": threads})
    if needs_redis(exp, cfg):  # the experiment's own Redis requires its password
        ours.append(password_env(exp, worker_env.NAME_RECORDS_REDIS_PASSWORD))
    mongo = spec.parameter_db.mongodb
    if mongo is not None and mongo.secret_name:
        ours.append(
            {
                "name": worker_env.MONGO_URI,
                "valueFrom": {"secretKeyRef": {"name": mongo.secret_name, "key": mongo.secret_key}},
            }
        )
    reserved = {e["name"] for e in ours}
    user = [{"name": k, "value": v} for k, v in sorted((rs.env if rs is not None else {}).items()) if k not in reserved]
    return user + ours


@dataclass(frozen=True)
class RoleTemplate:
    """What every pod of one role shares: the document hash (costly: a deep copy and a JSON dump of
    the spec) and the template hash, computed once; `pod(index)` builds one pod from them. The
    reconciler compares 15,000 pods against one string per role and builds manifests only for the
    pods it creates."""

    exp: RLExperiment
    role: naming.Role
    cfg: OperatorConfig
    document_hash: str
    template_hash: str

    def pod(self, index: int) -> dict[str, Any]:
        pod = _pod_manifest(self.exp, self.role, index, self.cfg, self.document_hash)
        pod["metadata"]["annotations"][naming.ANNOTATION_TEMPLATE_HASH] = self.template_hash
        # After the hash: an edit of the experiment's own labels reaches new pods without rolling these.
        return with_experiment_metadata(pod, self.exp)


def role_template(
    exp: RLExperiment, role: naming.Role, cfg: OperatorConfig, document_hash: str | None = None
) -> RoleTemplate:
    """The role's template; its hash is the hash of the role's index-0 pod (pods of one role differ
    only by their index)."""
    doc = document_hash or running_document_hash(exp)
    return RoleTemplate(exp, role, cfg, doc, template_hash(_pod_manifest(exp, role, 0, cfg, doc)))


def worker_pod(exp: RLExperiment, role: naming.Role, index: int, cfg: OperatorConfig) -> dict[str, Any]:
    """The pod of worker (role, index); its template hash annotation lets the reconciler spot stale pods."""
    return role_template(exp, role, cfg).pod(index)


def _pod_manifest(
    exp: RLExperiment, role: naming.Role, index: int, cfg: OperatorConfig, document_hash: str
) -> dict[str, Any]:
    name = exp.metadata.name
    pod_name = naming.pod_name(name, role, index)
    rs = _role_spec(exp, role)
    extra_volumes = rs.volumes if rs is not None else []
    container: dict[str, Any] = {
        "name": "worker",
        "image": exp.spec.cluster.image or cfg.runtime_image,
        "imagePullPolicy": exp.spec.cluster.image_pull_policy or cfg.runtime_image_pull_policy,
        "command": ["srl"],
        "args": ["worker", "--role", role, "--index", str(index), "--experiment", EXPERIMENT_PATH],
        "env": env(exp, role, index, cfg),
        "ports": [{"name": n, "containerPort": p, "protocol": "TCP"} for n, p in role_ports(role)],
        "resources": resources(exp, role, cfg),
        "securityContext": container_security_context(),
        # A failed worker's last log lines land in its status (state.terminated.message): the
        # operator quotes them when the worker is out of restarts, without reading pods/log.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [
            {"name": "experiment", "mountPath": MOUNT_DIR, "readOnly": True},
            # One directory per experiment: a shared claim (or NFS export) holds many experiments.
            {"name": "params", "mountPath": MOUNT_PATH, "subPath": name},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "shm", "mountPath": "/dev/shm"},
            *({"name": v.name, "mountPath": v.mount_path, "readOnly": v.read_only} for v in extra_volumes),
        ],
    }
    spec: dict[str, Any] = {
        # The operator, not the kubelet, replaces a failed worker: it sees every failure, counts
        # restarts and emits an Event, and a trainer that exits 0 marks the experiment Succeeded.
        "restartPolicy": "Never",
        "hostname": pod_name,
        "subdomain": naming.service_name(name, role),
        "securityContext": pod_security_context(cfg.worker_uid),
        "containers": [container],
        "volumes": [
            {"name": "experiment", "configMap": {"name": naming.configmap_name(name)}},
            {"name": "params", "persistentVolumeClaim": {"claimName": claim_name(exp)}},
            {"name": "tmp", "emptyDir": {}},
            {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": SHM_SIZE}},
            *({"name": v.name, **v.source} for v in extra_volumes),
        ],
    }
    if exp.spec.cluster.service_account_name:
        spec["serviceAccountName"] = exp.spec.cluster.service_account_name
    else:
        spec["automountServiceAccountToken"] = False  # workers never talk to the API server
    ps = _pod_settings(exp, role)
    if ps.node_selector:
        spec["nodeSelector"] = dict(ps.node_selector)
    if ps.tolerations:
        spec["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in ps.tolerations]
    if ps.affinity:
        spec["affinity"] = copy.deepcopy(ps.affinity)
    if ps.priority_class_name:
        spec["priorityClassName"] = ps.priority_class_name
    if ps.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": s} for s in ps.image_pull_secrets]
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata(pod_name, exp.metadata.namespace, naming.pod_labels(name, role, index)),
        "spec": spec,
    }
    # The document hash is part of the template: a spec edit (other than live scaling) rolls the pod.
    pod["metadata"]["annotations"] = {
        **without_reserved(ps.pod_annotations),
        naming.ANNOTATION_DOCUMENT_HASH: document_hash,
    }
    return pod
