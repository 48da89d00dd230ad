"""Golden dicts of every manifest the operator builds (pure functions: spec in, dicts out)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from srl_operator.builders.configmap import experiment_configmap, running_document_hash
from srl_operator.builders.network_policy import isolation_policy
from srl_operator.builders.pods import desired_replicas, resources, worker_pod
from srl_operator.builders.pvc import parameter_db_pvc
from srl_operator.builders.redis import needs_redis, redis_address, redis_deployment, redis_service
from srl_operator.builders.secrets import new_password, password_of, redis_auth_secret
from srl_operator.builders.services import zmq_services
from srl_operator.config import OperatorConfig
from srl_operator.naming import dns_label
from srl_runtime.config.load import parse_experiment

pytestmark = pytest.mark.unit

CFG = OperatorConfig(runtime_image="reg.example/srl-runtime:1.0", redis_image="redis:7.2-alpine")


def experiment(**spec: Any) -> Any:
    base: dict[str, Any] = {"environment": {"id": "CartPole-v1"}, "stop": {"trainSteps": 100}}
    base.update(spec)
    return parse_experiment(
        {"apiVersion": "srl.dev/v1alpha1", "kind": "RLExperiment", "metadata": {"name": "cp", "namespace": "ml"}, "spec": base}
    )


EXP_LABELS = {"srl.dev/experiment": "cp", "app.kubernetes.io/managed-by": "srl-operator", "app.kubernetes.io/part-of": "srl"}


def test_configmap_holds_the_validated_document() -> None:
    cm = experiment_configmap(experiment())
    assert cm["metadata"] == {"name": "cp-experiment", "namespace": "ml", "labels": {**EXP_LABELS, "srl.dev/component": "experiment"}}
    doc = yaml.safe_load(cm["data"]["experiment.yaml"])
    assert doc["metadata"] == {"name": "cp", "namespace": "ml"}
    assert doc["spec"]["actors"]["replicas"] == 1  # defaults filled in
    assert parse_experiment(doc) == experiment()


def test_pvc_golden() -> None:
    assert parameter_db_pvc(experiment(parameterDb={"size": "20Gi", "storageClass": "nfs"}), CFG) == {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "cp-params", "namespace": "ml", "labels": {**EXP_LABELS, "srl.dev/component": "params"}},
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "resources": {"requests": {"storage": "20Gi"}},
            "storageClassName": "nfs",
        },
    }
    assert parameter_db_pvc(experiment(parameterDb={"claimName": "mine"}), CFG) is None


def test_redis_golden() -> None:
    exp = experiment()
    labels = {**EXP_LABELS, "srl.dev/component": "redis"}
    assert redis_service(exp) == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "cp-redis", "namespace": "ml", "labels": labels},
        "spec": {
            "selector": {"srl.dev/experiment": "cp", "srl.dev/component": "redis"},
            "ports": [{"name": "redis", "port": 6379, "targetPort": 6379}],
        },
    }
    dep = redis_deployment(exp, CFG)
    hash_ = dep["metadata"]["annotations"]["srl.dev/template-hash"]
    assert dep == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "cp-redis", "namespace": "ml", "labels": labels, "annotations": {"srl.dev/template-hash": hash_}},
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": {"srl.dev/experiment": "cp", "srl.dev/component": "redis"}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 999,
                        "runAsGroup": 999,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "redis",
                            "image": "redis:7.2-alpine",
                            # The password from the Secret; the kubelet expands $(REDIS_PASSWORD).
                            "args": [
                                "--save", "", "--appendonly", "no", "--maxclients", "10000",
                                "--requirepass", "$(REDIS_PASSWORD)",
                            ],  # fmt: skip
                            "env": [
                                {
                                    "name": "REDIS_PASSWORD",
                                    "valueFrom": {"secretKeyRef": {"name": "cp-redis-auth", "key": "password"}},
                                }
                            ],
                            "ports": [{"name": "redis", "containerPort": 6379}],
                            "readinessProbe": {"tcpSocket": {"port": 6379}, "periodSeconds": 5},
                            "livenessProbe": {"tcpSocket": {"port": 6379}, "periodSeconds": 10},
                            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                        }
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                },
            },
        },
    }
    assert redis_deployment(experiment(), OperatorConfig(redis_image="redis:8"))["metadata"]["annotations"] != {
        "srl.dev/template-hash": hash_
    }  # another image: another hash, so the reconciler updates the Deployment
    assert redis_address(exp, CFG) == "cp-redis.ml.svc:6379"
    assert redis_address(experiment(nameRecords={"redisAddress": "10.0.0.9:6380"}), CFG) == "10.0.0.9:6380"
    shared = OperatorConfig(shared_redis_address="srl-redis.srl-system.svc:6379")
    assert redis_address(exp, shared) == "srl-redis.srl-system.svc:6379"
    assert not needs_redis(exp, shared) and needs_redis(exp, CFG)


def test_redis_maxclients_follows_the_experiment_size() -> None:
    """Two connections per worker plus a margin, in steps of 10,000, never below Redis's 10,000:
    15,000 actors need more than the default."""

    def maxclients(**spec: Any) -> str:
        args = redis_deployment(experiment(**spec), CFG)["spec"]["template"]["spec"]["containers"][0]["args"]
        return args[args.index("--maxclients") + 1]

    assert maxclients() == "10000"
    assert maxclients(actors={"replicas": 4499}) == "10000"  # 2 x (4,499 + 1 trainer) + 1,000
    assert maxclients(actors={"replicas": 4500}) == "20000"
    big = {"actors": {"replicas": 15_000}, "policyWorkers": {"replicas": 32}, "trainers": {"replicas": 8}}
    assert maxclients(**big) == "40000"  # 2 x 15,040 + 1,000 = 31,080
    scaled = {**big, "actors": {"replicas": 15_400}}  # a scale within the step: no Redis restart
    assert redis_deployment(experiment(**big), CFG) == redis_deployment(experiment(**scaled), CFG)


def test_redis_auth_secret_golden() -> None:
    secret = redis_auth_secret(experiment(), "s3cret-pw")
    assert secret == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "cp-redis-auth", "namespace": "ml", "labels": {**EXP_LABELS, "srl.dev/component": "redis-auth"}},
        "type": "Opaque",
        "data": {"password": "czNjcmV0LXB3"},
    }
    assert password_of(secret) == "s3cret-pw"
    assert password_of({"data": {}}) is None and password_of({"data": {"password": "not base64!"}}) is None
    one, two = new_password(), new_password()
    assert one != two and len(one) >= 40 and one.replace("-", "").replace("_", "").isalnum()


def test_isolation_policy_golden() -> None:
    cfg = OperatorConfig(
        operator_namespace="srl-system",
        operator_pod_labels=(("app.kubernetes.io/instance", "srl"), ("app.kubernetes.io/name", "srl-operator")),
    )
    own = {"matchLabels": {"srl.dev/experiment": "cp"}}
    assert isolation_policy(experiment(), cfg) == {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "cp-isolation", "namespace": "ml", "labels": {**EXP_LABELS, "srl.dev/component": "isolation"}},
        "spec": {
            "podSelector": own,
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {"podSelector": own},
                        {
                            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "srl-system"}},
                            "podSelector": {
                                "matchLabels": {"app.kubernetes.io/instance": "srl", "app.kubernetes.io/name": "srl-operator"}
                            },
                        },
                    ]
                },
                {"ports": [{"protocol": "TCP", "port": 9100}]},
            ],
        },
    }
    # An operator that does not know its namespace (run outside the cluster) admits only the experiment.
    assert isolation_policy(experiment(), CFG)["spec"]["ingress"][0] == {"from": [{"podSelector": own}]}


def test_zmq_services_golden() -> None:
    assert zmq_services(experiment()) == [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "cp-trainer", "namespace": "ml", "labels": {**EXP_LABELS, "srl.dev/component": "zmq-trainer"}},
            "spec": {
                "clusterIP": "None",
                "publishNotReadyAddresses": True,
                "selector": {"srl.dev/experiment": "cp", "srl.dev/role": "trainer"},
                "ports": [
                    {"name": "sample", "port": 7200, "targetPort": 7200, "protocol": "TCP"},
                    {"name": "peers", "port": 7300, "targetPort": 7300, "protocol": "TCP"},
                    {"name": "metrics", "port": 9100, "targetPort": 9100, "protocol": "TCP"},
                ],
            },
        }
    ]
    with_policy = zmq_services(experiment(policyWorkers={"replicas": 2}))
    assert [s["metadata"]["name"] for s in with_policy] == ["cp-policy", "cp-trainer"]
    assert with_policy[0]["spec"]["ports"][0] == {"name": "inference", "port": 7100, "targetPort": 7100, "protocol": "TCP"}


def test_spec_edits_roll_workers_but_scaling_and_suspend_do_not() -> None:
    """Pods carry the document they read; only live fields (actors.replicas, suspend) leave it alone."""
    base = experiment(actors={"replicas": 2})
    hash_of = lambda e: worker_pod(e, "trainer", 0, CFG)["metadata"]["annotations"]["srl.dev/template-hash"]  # noqa: E731
    assert hash_of(experiment(actors={"replicas": 9})) == hash_of(base)
    assert hash_of(experiment(actors={"replicas": 2}, suspend=True)) == hash_of(base)
    # Restart settings are the operator's alone: raising a limit must not restart running workers.
    assert hash_of(experiment(actors={"replicas": 2, "restartLimit": 3}, trainers={"restartLimit": 0},
                              failurePolicy={"backoffSeconds": 9})) == hash_of(base)  # fmt: skip
    assert hash_of(experiment(actors={"replicas": 2}, algorithm={"ppo": {"learningRate": 0.01}})) != hash_of(base)
    assert hash_of(experiment(actors={"replicas": 2}, stop={"trainSteps": 7})) != hash_of(base)


def test_actor_pod_golden() -> None:
    exp = experiment(
        actors={
            "replicas": 4,
            "torchThreads": 2,
            "nodeSelector": {"pool": "cpu"},
            "tolerations": [{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}],
            "env": {"GYM_DEBUG": "1", "SRL_ROLE": "ignored"},
            "volumes": [{"name": "roms", "mountPath": "/roms", "readOnly": True, "source": {"persistentVolumeClaim": {"claimName": "roms"}}}],
        },
        cluster={"imagePullPolicy": "Always"},
    )
    pod = worker_pod(exp, "actor", 3, CFG)
    hash_ = pod["metadata"]["annotations"]["srl.dev/template-hash"]
    assert len(hash_) == 16
    assert pod == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "cp-actor-3",
            "namespace": "ml",
            "labels": {
                **EXP_LABELS,
                "srl.dev/role": "actor",
                "srl.dev/index": "3",
                "app.kubernetes.io/name": "srl-worker",
                "app.kubernetes.io/instance": "cp",
                "app.kubernetes.io/component": "actor",
            },
            "annotations": {"srl.dev/document-hash": running_document_hash(exp), "srl.dev/template-hash": hash_},
        },
        "spec": {
            "restartPolicy": "Never",
            "hostname": "cp-actor-3",
            "subdomain": "cp-actor",
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 1000,
                "runAsGroup": 1000,
                "fsGroup": 1000,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "worker",
                    "image": "reg.example/srl-runtime:1.0",
                    "imagePullPolicy": "Always",
                    "command": ["srl"],
                    "args": ["worker", "--role", "actor", "--index", "3", "--experiment", "/etc/srl/experiment.yaml"],
                    "env": [
                        {"name": "GYM_DEBUG", "value": "1"},
                        {"name": "SRL_ROLE", "value": "actor"},
                        {"name": "SRL_INDEX", "value": "3"},
                        {"name": "SRL_EXPERIMENT", "value": "/etc/srl/experiment.yaml"},
                        {"name": "SRL_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                        {"name": "SRL_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "SRL_POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                        {"name": "SRL_NAME_RECORDS_REDIS", "value": "cp-redis.ml.svc:6379"},
                        {"name": "SRL_PARAM_DB_PATH", "value": "/srl/params"},
                        {"name": "SRL_RUN_DIR", "value": "/srl/run"},
                        {"name": "SRL_METRICS_PORT", "value": "9100"},
                        {"name": "HOME", "value": "/tmp"},
                        {"name": "OMP_NUM_THREADS", "value": "2"},
                        {
                            "name": "SRL_NAME_RECORDS_REDIS_PASSWORD",
                            "valueFrom": {"secretKeyRef": {"name": "cp-redis-auth", "key": "password"}},
                        },
                    ],
                    "ports": [{"name": "metrics", "containerPort": 9100, "protocol": "TCP"}],
                    "resources": {"requests": {"cpu": "1"}},
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "terminationMessagePolicy": "FallbackToLogsOnError",
                    "volumeMounts": [
                        {"name": "experiment", "mountPath": "/etc/srl", "readOnly": True},
                        {"name": "params", "mountPath": "/srl", "subPath": "cp"},
                        {"name": "tmp", "mountPath": "/tmp"},
                        {"name": "shm", "mountPath": "/dev/shm"},
                        {"name": "roms", "mountPath": "/roms", "readOnly": True},
                    ],
                }
            ],
            "volumes": [
                {"name": "experiment", "configMap": {"name": "cp-experiment"}},
                {"name": "params", "persistentVolumeClaim": {"claimName": "cp-params"}},
                {"name": "tmp", "emptyDir": {}},
                {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
                {"name": "roms", "persistentVolumeClaim": {"claimName": "roms"}},
            ],
            "automountServiceAccountToken": False,
            "nodeSelector": {"pool": "cpu"},
            "tolerations": [{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}],
        },
    }


def test_trainer_pod_on_cuda_with_mongo_secret_and_existing_claim() -> None:
    exp = experiment(
        trainers={"device": "cuda", "resources": {"cpu": "4", "memory": "16Gi"}},
        parameterDb={"metadata": "mongodb", "mongodb": {"secretName": "mongo", "secretKey": "url"}, "claimName": "shared"},
        nameRecords={"redisAddress": "redis.infra:6379"},
        cluster={"image": "mine:2", "serviceAccountName": "trainer-sa"},
    )
    pod = worker_pod(exp, "trainer", 0, CFG)
    container = pod["spec"]["containers"][0]
    assert container["image"] == "mine:2"
    assert container["resources"] == {"requests": {"cpu": "4", "memory": "16Gi"}, "limits": {"nvidia.com/gpu": "1"}}
    env = {e["name"]: e for e in container["env"]}
    assert env["SRL_MONGO_URI"] == {"name": "SRL_MONGO_URI", "valueFrom": {"secretKeyRef": {"name": "mongo", "key": "url"}}}
    assert env["SRL_NAME_RECORDS_REDIS"]["value"] == "redis.infra:6379"
    assert "SRL_NAME_RECORDS_REDIS_PASSWORD" not in env  # someone else's Redis: no password of ours
    assert env["SRL_SAMPLE_PORT"]["value"] == "7200"
    assert {"name": "params", "persistentVolumeClaim": {"claimName": "shared"}} in pod["spec"]["volumes"]
    assert pod["spec"]["serviceAccountName"] == "trainer-sa"
    assert "automountServiceAccountToken" not in pod["spec"]


@pytest.mark.parametrize(
    ("spec", "role", "expected"),
    [
        ({}, "trainer", {}),
        ({"trainers": {"device": "cuda", "resources": {"gpu": 4}}}, "trainer", {"limits": {"nvidia.com/gpu": "4"}}),
        ({"policyWorkers": {"replicas": 1, "device": "cuda"}}, "policy", {"limits": {"nvidia.com/gpu": "1"}}),
        ({"actors": {"resources": {"cpu": "500m"}}}, "actor", {"requests": {"cpu": "500m"}}),
        ({"evaluation": {"enabled": True, "device": "cuda"}}, "eval", {"limits": {"nvidia.com/gpu": "1"}}),
    ],
)
def test_resources(spec: dict[str, Any], role: str, expected: dict[str, Any]) -> None:
    assert resources(experiment(**spec), role) == expected  # type: ignore[arg-type]


def test_desired_replicas_and_suspend() -> None:
    exp = experiment(actors={"replicas": 5}, policyWorkers={"replicas": 2}, evaluation={"enabled": True})
    assert [desired_replicas(exp, r) for r in ("actor", "policy", "trainer", "eval")] == [5, 2, 1, 1]
    suspended = experiment(actors={"replicas": 5}, suspend=True)
    assert [desired_replicas(suspended, r) for r in ("actor", "policy", "trainer", "eval")] == [0, 0, 0, 0]


def test_template_hash_ignores_nothing_but_is_stable() -> None:
    a = worker_pod(experiment(), "actor", 0, CFG)
    assert a == worker_pod(experiment(), "actor", 0, CFG)
    b = worker_pod(experiment(cluster={"image": "other:1"}), "actor", 0, CFG)
    assert a["metadata"]["annotations"] != b["metadata"]["annotations"]
    # Scaling does not change an existing pod's template (actors are not restarted on scale).
    c = worker_pod(experiment(actors={"replicas": 9}), "actor", 0, CFG)
    assert a["metadata"]["annotations"] == c["metadata"]["annotations"]


def test_dns_label_names() -> None:
    assert dns_label("cp", "actor", "3") == "cp-actor-3"
    assert dns_label("1st", "redis") == "x1st-redis"
    long = dns_label("a" * 63, "trainer")
    assert len(long) == 63 and long != dns_label("a" * 62 + "b", "trainer")


def test_kopf_command_line_from_environment() -> None:
    from srl_operator.__main__ import kopf_argv

    base = ["kopf", "run", "-m", "srl_operator.main", "--standalone"]
    assert kopf_argv({}, []) == [*base, "--all-namespaces", "--liveness=http://0.0.0.0:8080/healthz"]
    assert kopf_argv({"SRL_WATCH_NAMESPACES": "a, b", "SRL_LIVENESS_PORT": ""}, ["--verbose"]) == [
        *base, "--namespace", "a", "--namespace", "b", "--verbose",
    ]  # fmt: skip


def test_pull_policy_comes_from_the_operator_unless_the_spec_sets_one() -> None:
    """The examples name no pull policy: the chart's runtimeImage.pullPolicy decides (kind, air-gapped)."""
    never = OperatorConfig(runtime_image_pull_policy="Never")
    container = worker_pod(experiment(), "actor", 0, never)["spec"]["containers"][0]
    assert container["imagePullPolicy"] == "Never"
    pinned = worker_pod(experiment(cluster={"imagePullPolicy": "Always"}), "actor", 0, never)
    assert pinned["spec"]["containers"][0]["imagePullPolicy"] == "Always"


def test_claim_access_mode_comes_from_the_operator_unless_the_spec_sets_one() -> None:
    """One-node clusters (kind's local-path) offer only ReadWriteOnce: a chart value, not an edit of every example."""
    rwo = OperatorConfig(pvc_access_mode="ReadWriteOnce")
    assert parameter_db_pvc(experiment(), rwo)["spec"]["accessModes"] == ["ReadWriteOnce"]  # type: ignore[index]
    pinned = parameter_db_pvc(experiment(parameterDb={"accessMode": "ReadWriteMany"}), rwo)
    assert pinned["spec"]["accessModes"] == ["ReadWriteMany"]  # type: ignore[index]


def test_actor_cpu_request_comes_from_the_operator_unless_the_spec_sets_one() -> None:
    """Small nodes (a 2-core kind or test node) hold several actors only with a smaller default."""
    small = OperatorConfig(actor_cpu_request="250m")
    assert resources(experiment(), "actor", small) == {"requests": {"cpu": "250m"}}
    assert resources(experiment(actors={"resources": {"cpu": "2"}}), "actor", small) == {"requests": {"cpu": "2"}}
    assert resources(experiment(), "actor") == {"requests": {"cpu": "1"}}


AFFINITY = {
    "podAntiAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                                "labelSelector": {"matchLabels": {"srl.dev/role": "trainer"}}}}
        ]
    }
}  # fmt: skip


@pytest.mark.parametrize(("block", "role"), [("actors", "actor"), ("policyWorkers", "policy"), ("trainers", "trainer"), ("evaluation", "eval")])
def test_pod_settings_per_role(block: str, role: str) -> None:
    settings = {
        "affinity": AFFINITY,
        "priorityClassName": "batch-high",
        "imagePullSecrets": ["regcred", "mirror.pull"],
        "podAnnotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false", "srl.dev/template-hash": "forged"},
        "nodeSelector": {"pool": role},
        "tolerations": [{"key": "gpu", "operator": "Exists"}],
    }
    extra = {"policyWorkers": {"replicas": 1}} if block != "policyWorkers" else {}
    block_spec = {**settings, **({"replicas": 1} if block == "policyWorkers" else {}), **({"enabled": True} if block == "evaluation" else {})}
    exp = experiment(**{**extra, block: block_spec})
    pod = worker_pod(exp, role, 0, CFG)  # type: ignore[arg-type]
    spec = pod["spec"]
    assert spec["affinity"] == AFFINITY
    assert spec["priorityClassName"] == "batch-high"
    assert spec["imagePullSecrets"] == [{"name": "regcred"}, {"name": "mirror.pull"}]
    assert spec["nodeSelector"] == {"pool": role}
    assert spec["tolerations"] == [{"key": "gpu", "operator": "Exists"}]
    annotations = pod["metadata"]["annotations"]
    assert annotations["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"
    assert annotations["srl.dev/template-hash"] != "forged" and len(annotations["srl.dev/template-hash"]) == 16
    # Other roles keep their defaults: the settings are per role.
    other = next(r for r in ("actor", "trainer") if r != role)
    other_spec = worker_pod(exp, other, 0, CFG)["spec"]  # type: ignore[arg-type]
    assert not {"affinity", "priorityClassName", "imagePullSecrets", "nodeSelector", "tolerations"} & set(other_spec)
    # A pod-settings edit is a spec edit: the pods roll.
    plain = experiment(**{**extra, **({block: {"replicas": 1}} if block == "policyWorkers" else {}),
                          **({block: {"enabled": True}} if block == "evaluation" else {})})  # fmt: skip
    assert worker_pod(plain, role, 0, CFG)["metadata"]["annotations"]["srl.dev/template-hash"] != annotations["srl.dev/template-hash"]  # type: ignore[arg-type]


def test_invalid_pod_settings_name_the_field() -> None:
    from srl_runtime.config.load import InvalidExperiment

    for spec, field in (
        ({"actors": {"imagePullSecrets": ["Not_A_Name"]}}, "spec.actors.imagePullSecrets"),
        ({"trainers": {"affinity": "anywhere"}}, "spec.trainers.affinity"),
        ({"evaluation": {"podAnnotations": {"a": 1}}}, "spec.evaluation.podAnnotations"),
    ):
        with pytest.raises(InvalidExperiment) as err:
            experiment(**spec)
        assert any(p.startswith(field) for p in err.value.problems), err.value.problems


def labelled_experiment(**spec: Any) -> Any:
    base: dict[str, Any] = {"environment": {"id": "CartPole-v1"}, "stop": {"trainSteps": 100}}
    base.update(spec)
    meta = {
        "name": "cp",
        "namespace": "ml",
        "labels": {"team": "rl", "cost-center": "42", "srl.dev/role": "forged", "app.kubernetes.io/managed-by": "Helm"},
        "annotations": {
            "owner": "ada@example.com",
            "kubectl.kubernetes.io/last-applied-configuration": "{...}",
            "srl.dev/last-handled-configuration": "{...}",
            "kopf.zalando.org/touch": "x",
            "meta.helm.sh/release-name": "mine",
        },
    }
    return parse_experiment({"apiVersion": "srl.dev/v1alpha1", "kind": "RLExperiment", "metadata": meta, "spec": base})


def test_experiment_labels_and_annotations_reach_every_child() -> None:
    exp = labelled_experiment(policyWorkers={"replicas": 1}, evaluation={"enabled": True})
    children = [
        experiment_configmap(exp), isolation_policy(exp, CFG), parameter_db_pvc(exp, CFG), redis_service(exp),
        redis_deployment(exp, CFG), redis_auth_secret(exp, "pw"), *zmq_services(exp),
        *(worker_pod(exp, role, 0, CFG) for role in ("actor", "policy", "trainer", "eval")),
    ]  # fmt: skip
    for child in children:
        assert child is not None
        metas = [child["metadata"]]
        if child["kind"] == "Deployment":
            metas.append(child["spec"]["template"]["metadata"])
        for meta in metas:
            where = f"{child['kind']}/{child['metadata']['name']}"
            labels, annotations = meta["labels"], meta.get("annotations") or {}
            assert labels["team"] == "rl" and labels["cost-center"] == "42", where
            # The operator's labels win; bookkeeping annotations stay on the experiment.
            assert labels["app.kubernetes.io/managed-by"] == "srl-operator", where
            assert labels.get("srl.dev/role") in (None, "actor", "policy", "trainer", "eval"), where
            assert labels["srl.dev/experiment"] == "cp", where
            assert annotations["owner"] == "ada@example.com", where
            assert not [k for k in annotations if k.startswith(("kubectl.kubernetes.io/", "kopf.", "meta.helm.sh/"))], where
            assert set(k for k in annotations if k.startswith("srl.dev/")) <= {"srl.dev/template-hash", "srl.dev/document-hash"}, where
    # The worker document does not carry them: a label edit is no spec edit.
    assert yaml.safe_load(children[0]["data"]["experiment.yaml"])["metadata"] == {"name": "cp", "namespace": "ml"}


def test_experiment_label_edits_do_not_replace_running_children() -> None:
    """Hashes are taken before the experiment's own metadata is added: new children get the new labels,
    running workers and Redis are not restarted for a label."""
    plain, labelled = experiment(), labelled_experiment()
    key = "srl.dev/template-hash"
    assert worker_pod(plain, "trainer", 0, CFG)["metadata"]["annotations"][key] == worker_pod(labelled, "trainer", 0, CFG)["metadata"]["annotations"][key]
    assert redis_deployment(plain, CFG)["metadata"]["annotations"][key] == redis_deployment(labelled, CFG)["metadata"]["annotations"][key]
    assert worker_pod(plain, "actor", 0, CFG) == worker_pod(experiment(), "actor", 0, CFG)  # no metadata: goldens unchanged
