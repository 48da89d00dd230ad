"""What e2e tests drive: the cluster (kubectl, helm, its images) and small pod helpers.

The fixtures that make these live in conftest.py; tests import the types from here.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from kubeclient import KubectlMixin
from node import RealNode

from images import REFS

REPO = Path(__file__).resolve().parent.parent.parent


@dataclass
class E2ECluster(KubectlMixin):
    """The cluster e2e tests drive: kubectl/helm/apply (KubectlMixin) plus what they need to know."""

    admin_kubeconfig: Path  # cluster-admin credentials
    bin_dir: Path  # kubectl and helm
    workdir: Path  # scratch (helm homes, generated kubeconfigs)
    images: dict[str, str]  # image name (runtime, operator, redis, ferretdb) -> ref pods use
    node: RealNode | None = None  # our node; None on an external cluster
    namespaces: list[str] = field(default_factory=list)  # created by `new_namespace`

    def image(self, name: str) -> str:
        if name not in self.images:
            raise KeyError(f"no image {name!r} in images/e2e-images.json (have: {', '.join(REFS)})")
        return self.images[name]

    def new_namespace(self, hint: str) -> str:
        slug = re.sub(r"[^a-z0-9-]+", "-", hint.lower())[:40].strip("-")
        name = f"e2e-{slug}-{secrets.token_hex(3)}"
        self.kubectl("create", "namespace", name)
        self.kubectl("wait", "--for=create", "serviceaccount/default", "-n", name, "--timeout=60s")
        self.namespaces.append(name)
        return name

    def wait_pod_done(self, namespace: str, name: str, timeout: float = 180) -> dict:
        """Wait until a pod is Succeeded or Failed; the error carries `kubectl describe`."""
        deadline = time.monotonic() + timeout
        pod: dict = {}
        while time.monotonic() < deadline:
            pod = self.kubectl_json("get", "pod", name, "-n", namespace)
            if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                return pod
            time.sleep(1)
        described = self.kubectl("describe", "pod", name, "-n", namespace, check=False).stdout
        raise TimeoutError(f"pod {namespace}/{name} not done after {timeout}s:\n{described}")

    def logs(self, namespace: str, name: str, *args: str) -> str:
        return self.kubectl("logs", "-n", namespace, name, *args).stdout


def pod(
    namespace: str,
    name: str,
    image: str,
    *,
    command: list[str] | None = None,
    args: list[str] | None = None,
    restart: str = "Never",
    labels: dict[str, str] | None = None,
    container: dict | None = None,
    spec: dict | None = None,
) -> dict:
    """A one-container Pod manifest; `container`/`spec` add fields to the container/pod spec."""
    c: dict = {"name": name, "image": image, "imagePullPolicy": "IfNotPresent", **(container or {})}
    if command:
        c["command"] = command
    if args:
        c["args"] = args
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {"app": name}},
        "spec": {"restartPolicy": restart, "containers": [c], **(spec or {})},
    }
