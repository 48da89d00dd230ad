"""kubectl and helm against one cluster: the test control plane, or any cluster a kubeconfig names.

`KubectlMixin` is the client side of ControlPlane (tests/cluster/controlplane.py); `KubeClient` is
the same calls against a cluster we did not start, so the e2e tier drives kind or any $KUBECONFIG
exactly as it drives its own node.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import yaml


class KubectlMixin:
    """kubectl/helm helpers; the class using it provides `bin_dir`, `admin_kubeconfig` and
    `workdir` (helm's cache/config/data live there)."""

    bin_dir: Path
    admin_kubeconfig: Path
    workdir: Path

    def kubectl(
        self,
        *args: str,
        kubeconfig: Path | None = None,
        check: bool = True,
        input: str | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        cmd = [
            str(self.bin_dir / "kubectl"),
            "--kubeconfig",
            str(kubeconfig or self.admin_kubeconfig),
            *args,
        ]
        return self._run(cmd, check=check, input=input, timeout=timeout)

    def helm(
        self, *args: str, kubeconfig: Path | None = None, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        cmd = [
            str(self.bin_dir / "helm"),
            "--kubeconfig",
            str(kubeconfig or self.admin_kubeconfig),
            *args,
        ]
        # Keep helm's cache/config/data out of $HOME so runs don't see each other's repos.
        home = self.workdir / "helm"
        env = {
            **os.environ,
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }
        return self._run(cmd, check=check, timeout=timeout, env=env)

    def kubectl_json(self, *args: str, kubeconfig: Path | None = None) -> dict:
        return json.loads(self.kubectl(*args, "-o", "json", kubeconfig=kubeconfig).stdout)

    def apply(self, manifest: dict | list[dict] | str, *, kubeconfig: Path | None = None) -> None:
        """kubectl apply -f - for a manifest given as YAML text, a dict or a list of dicts."""
        if not isinstance(manifest, str):
            docs = manifest if isinstance(manifest, list) else [manifest]
            manifest = yaml.safe_dump_all(docs)
        self.kubectl("apply", "-f", "-", input=manifest, kubeconfig=kubeconfig)

    def wait_pod_phase(self, namespace: str, name: str, phase: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        pod: dict = {}
        while time.monotonic() < deadline:
            pod = self.kubectl_json("get", "pod", name, "-n", namespace)
            if pod.get("status", {}).get("phase") == phase:
                return pod
            time.sleep(0.5)
        raise TimeoutError(
            f"pod {namespace}/{name} not {phase} after {timeout}s: {pod.get('status')}"
        )

    def _run(
        self,
        cmd: list[str],
        *,
        check: bool,
        timeout: float,
        input: str | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            cmd, input=input, capture_output=True, text=True, timeout=timeout, env=env
        )
        if check and proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, cmd, proc.stdout, proc.stderr)
        return proc


@dataclass
class KubeClient(KubectlMixin):
    """A cluster we did not start, named by a kubeconfig."""

    admin_kubeconfig: Path  # credentials the tests act with (e.g. kind's admin)
    bin_dir: Path  # where kubectl and helm are
    workdir: Path  # scratch: helm's homes, generated kubeconfigs
