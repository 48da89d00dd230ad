"""The node itself, before any RLExperiment: real containers from the runtime image, their logs,
Service DNS and routing between pods, and pods calling the API server with their ServiceAccount.
Each test looks where a user would: pod phase, `kubectl logs`."""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
import time
import urllib.request

from harness import REPO, E2ECluster, pod
from srl_fixtures import OperatorRelease

RUNTIME_UID = 1000  # USER of images/runtime/Dockerfile


def python_pod(namespace: str, name: str, image: str, script: str, **kw: object) -> dict:
    return pod(namespace, name, image, command=["python", "-c", textwrap.dedent(script)], **kw)


def last_json(logs: str) -> dict:
    return json.loads(logs.strip().splitlines()[-1])


def test_runtime_image_validates_an_experiment_and_kubectl_logs_shows_it(
    e2e_cluster: E2ECluster, namespace: str
) -> None:
    example = REPO / "examples" / "cartpole.yaml"
    e2e_cluster.kubectl(
        "create", "configmap", "experiment", "-n", namespace, f"--from-file=experiment.yaml={example}"
    )
    e2e_cluster.apply(
        pod(
            namespace,
            "validate",
            e2e_cluster.image("runtime"),
            args=["validate", "/etc/srl/experiment.yaml"],  # ENTRYPOINT is `srl`
            container={"volumeMounts": [{"name": "exp", "mountPath": "/etc/srl"}]},
            spec={"volumes": [{"name": "exp", "configMap": {"name": "experiment"}}]},
        )
    )
    done = e2e_cluster.wait_pod_done(namespace, "validate")
    logs = e2e_cluster.logs(namespace, "validate")
    assert done["status"]["phase"] == "Succeeded", logs
    assert logs.strip() == "/etc/srl/experiment.yaml: valid"
    state = done["status"]["containerStatuses"][0]["state"]["terminated"]
    assert state["exitCode"] == 0
    # It really ran from the image, as the image's user.
    e2e_cluster.apply(pod(namespace, "whoami", e2e_cluster.image("runtime"), command=["id", "-u"]))
    e2e_cluster.wait_pod_done(namespace, "whoami")
    assert e2e_cluster.logs(namespace, "whoami").strip() == str(RUNTIME_UID)


def test_two_pods_talk_through_a_service_by_its_dns_names(
    e2e_cluster: E2ECluster, namespace: str
) -> None:
    image = e2e_cluster.image("runtime")
    server = pod(
        namespace,
        "web",
        image,
        command=["sh", "-c", 'echo "from-$HOSTNAME" > /tmp/id.txt && exec python -m http.server 8000 -d /tmp'],
        restart="Always",
        container={
            "ports": [{"containerPort": 8000}],
            "readinessProbe": {"tcpSocket": {"port": 8000}, "periodSeconds": 1},
        },
    )
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8000}]},
    }
    client = python_pod(
        namespace,
        "client",
        image,
        f"""
        import json, socket, time, urllib.request
        names = ["web", "web.{namespace}", "web.{namespace}.svc", "web.{namespace}.svc.cluster.local"]
        out, deadline = {{}}, time.monotonic() + 60
        for name in names:
            while True:
                try:
                    body = urllib.request.urlopen(f"http://{{name}}/id.txt", timeout=5).read().decode().strip()
                    out[name] = [socket.gethostbyname(name), body]
                    break
                except OSError as exc:
                    if time.monotonic() > deadline:
                        out[name] = ["error", repr(exc)]
                        break
                    time.sleep(0.5)
        print(json.dumps(out))
        """,
    )
    e2e_cluster.apply([server, service])
    e2e_cluster.kubectl("wait", "--for=condition=Ready", "pod/web", "-n", namespace, "--timeout=120s")
    e2e_cluster.apply(client)
    done = e2e_cluster.wait_pod_done(namespace, "client")
    logs = e2e_cluster.logs(namespace, "client")
    assert done["status"]["phase"] == "Succeeded", logs
    cluster_ip = e2e_cluster.kubectl_json("get", "service", "web", "-n", namespace)["spec"]["clusterIP"]
    seen = last_json(logs)
    assert seen == {name: [cluster_ip, "from-web"] for name in seen}, seen
    assert len(seen) == 4
    # The server saw the client's own pod IP: pod-to-pod traffic, DNAT only, no masquerade.
    client_ip = e2e_cluster.kubectl_json("get", "pod", "client", "-n", namespace)["status"]["podIP"]
    assert f'{client_ip} - - ' in e2e_cluster.logs(namespace, "web")


def test_pod_calls_the_api_server_with_its_serviceaccount_token(
    e2e_cluster: E2ECluster, namespace: str
) -> None:
    e2e_cluster.apply(
        [
            {"apiVersion": "v1", "kind": "ServiceAccount",
             "metadata": {"name": "reader", "namespace": namespace}},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
             "metadata": {"name": "pod-reader", "namespace": namespace},
             "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
             "metadata": {"name": "reader", "namespace": namespace},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
             "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}]},
        ]
    )  # fmt: skip
    caller = python_pod(
        namespace,
        "caller",
        e2e_cluster.image("runtime"),
        f"""
        import json, os, ssl, urllib.error, urllib.request
        sa = "/var/run/secrets/kubernetes.io/serviceaccount"
        token = open(f"{{sa}}/token").read()
        ctx = ssl.create_default_context(cafile=f"{{sa}}/ca.crt")
        def call(base, path, body=None):
            req = urllib.request.Request(base + path, data=body, headers={{
                "Authorization": "Bearer " + token, "Content-Type": "application/json"}})
            try:
                with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
                    return resp.status, json.loads(resp.read())
            except urllib.error.HTTPError as exc:
                return exc.code, None
        env = "https://{{}}:{{}}".format(os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"])
        dns = "https://kubernetes.default.svc"
        review = json.dumps({{"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}}).encode()
        code, me = call(dns, "/apis/authentication.k8s.io/v1/selfsubjectreviews", review)
        pods_code, pods = call(env, "/api/v1/namespaces/{namespace}/pods")
        print(json.dumps({{
            "service_host": os.environ["KUBERNETES_SERVICE_HOST"],
            "user": me["status"]["userInfo"]["username"] if me else code,
            "pods": pods_code,
            "pod_names": sorted(p["metadata"]["name"] for p in pods["items"]) if pods else None,
            "secrets": call(dns, "/api/v1/namespaces/{namespace}/secrets")[0],
        }}))
        """,
        spec={"serviceAccountName": "reader"},
    )
    e2e_cluster.apply(caller)
    done = e2e_cluster.wait_pod_done(namespace, "caller")
    logs = e2e_cluster.logs(namespace, "caller")
    assert done["status"]["phase"] == "Succeeded", logs
    seen = last_json(logs)
    kubernetes_ip = e2e_cluster.kubectl_json("get", "service", "kubernetes", "-n", "default")["spec"]["clusterIP"]
    assert seen == {
        "service_host": kubernetes_ip,  # through the Service (kube-proxy), not a host address
        "user": f"system:serviceaccount:{namespace}:reader",
        "pods": 200,
        "pod_names": ["caller"],
        "secrets": 403,  # the token carries the ServiceAccount's RBAC, no more
    }


def test_operator_runs_from_its_image_under_the_charts_serviceaccount(
    e2e_cluster: E2ECluster, srl_operator: OperatorRelease
) -> None:
    ns = srl_operator.namespace
    pods = srl_operator.pods()
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    op = pods[0]
    # The chart's own ServiceAccount (made by the release), not `default`.
    account = e2e_cluster.kubectl_json("get", "serviceaccount", op["spec"]["serviceAccountName"], "-n", ns)
    assert account["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert account["metadata"]["name"] != "default"
    status = op["status"]["containerStatuses"][0]
    assert status["image"] == e2e_cluster.image("operator")
    assert status["ready"] and status["restartCount"] == 0
    # Its liveness endpoint answers over the pod network (our node routes the pod subnet to the
    # host; on an external cluster, through the API server's pod proxy).
    port = op["spec"]["containers"][0]["livenessProbe"]["httpGet"]["port"]
    if isinstance(port, str):
        port = next(p["containerPort"] for p in op["spec"]["containers"][0]["ports"] if p["name"] == port)
    # kopf serves it once its start-up (CRD watch established) is done: poll, bounded.
    deadline, answer = time.monotonic() + 90, ""
    while time.monotonic() < deadline:
        try:
            if e2e_cluster.node is not None:
                url = f"http://{op['status']['podIP']}:{port}/healthz"
                with urllib.request.urlopen(url, timeout=5) as resp:
                    answer = str(resp.status)
            else:
                path = f"/api/v1/namespaces/{ns}/pods/{op['metadata']['name']}:{port}/proxy/healthz"
                e2e_cluster.kubectl("get", "--raw", path)
                answer = "200"
            break
        except (OSError, subprocess.CalledProcessError) as exc:
            answer = repr(exc)
            time.sleep(1)
    assert answer == "200", answer
    # It talks to the API server with the chart's RBAC: no request of its was refused.
    logs = e2e_cluster.logs(ns, op["metadata"]["name"])
    assert "Initial authentication has finished" in logs
    assert not re.search(r"\b(Forbidden|Unauthorized)\b", logs), logs[-3000:]
