"""A real Kubernetes control plane on loopback for the cluster test tier.

etcd + kube-apiserver (RBAC, client-cert auth, ServiceAccount tokens) + kube-controller-manager
(garbage collector, workload controllers) + kube-scheduler + kwok (plays the kubelet for fake
nodes: marks pods Running/Ready, Succeeded for Jobs, Failed on request). Every process runs from a
temp dir on free 127.0.0.1 ports and is stopped by its own PID. Binaries come from
scripts/install-cluster-tools.sh.
"""

from __future__ import annotations

import atexit
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from kube_pki import CertPair, make_ca, make_cert, make_rsa_keypair
from kubeclient import KubectlMixin

TOOLS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
    "helm",
)
# Fake nodes are the ones carrying this annotation; kwok manages only those, so a real node
# (a later kubelet tier) is never touched by it.
KWOK_NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
# Putting this label on a Running pod makes kwok's chaos stage mark it Failed (see kwok_stages).
KWOK_FAIL_LABEL = "pod-container-running-failed.stage.kwok.x-k8s.io"
FAIL_ANNOTATION_PREFIX = KWOK_FAIL_LABEL
SERVICE_CIDR = "10.96.0.0/16"  # virtual service IPs (routed only on an e2e node, by kube-proxy)
KUBERNETES_SERVICE_IP = "10.96.0.1"  # the `kubernetes` Service: first address of SERVICE_CIDR
POD_CIDR = "10.128.0.1/16"  # kwok's fake pod IPs: status only, nothing listens there
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"


class ControlPlaneError(RuntimeError):
    """Start-up failed; the message carries the tail of every component's log."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class _Component:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path


@dataclass
class ControlPlane(KubectlMixin):
    workdir: Path
    bin_dir: Path
    startup_timeout: float = 120.0
    # Address the apiserver listens on and advertises. Loopback for the cluster tier; the e2e tier
    # passes the host end of its node's veth so kubelet, kube-proxy and pods can reach it, and then
    # the `kubernetes` Service gets this address as its endpoint.
    bind_address: str = "127.0.0.1"
    # kwok plays the kubelet for fake nodes; the e2e tier runs a real kubelet and turns it off.
    with_kwok: bool = True
    server: str = ""
    # Extra command-line flags per component (e.g. {"kube-scheduler": ["--kube-api-qps=500"]}): a
    # large-cluster rehearsal raises the client rate limits as large clusters do.
    extra_args: dict[str, list[str]] = field(default_factory=dict)
    # KwokConfiguration options (e.g. {"podPlayStageParallelism": 30}: kwok plays every fake node's
    # kubelet, 4 pod updates at a time by default; real nodes each run their own kubelet).
    kwok_options: dict[str, object] = field(default_factory=dict)
    admin_kubeconfig: Path = field(init=False)
    _components: list[_Component] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        self.bin_dir = Path(self.bin_dir)
        self.pki = self.workdir / "pki"
        self.logs = self.workdir / "logs"
        self.admin_kubeconfig = self.workdir / "admin.kubeconfig"

    # ---- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        tools = [t for t in TOOLS if self.with_kwok or t != "kwok"]
        missing = [t for t in tools if not os.access(self.bin_dir / t, os.X_OK)]
        if missing:
            raise ControlPlaneError(
                f"missing in {self.bin_dir}: {', '.join(missing)}; "
                "run scripts/install-cluster-tools.sh"
            )
        self.logs.mkdir(parents=True, exist_ok=True)
        # Our processes run in their own sessions, so nothing else stops them if the caller
        # exits without stop() (a script, an aborted session): do it at interpreter exit.
        atexit.register(self.stop)
        try:
            self._make_pki()
            self._start_etcd()
            self._start_apiserver()
            self._start_controller_manager()
            self._start_scheduler()
            if self.with_kwok:
                self._start_kwok()
            self._wait_default_serviceaccount()
        except Exception as exc:
            report = self.log_tails()
            self.stop()
            raise ControlPlaneError(f"control plane failed to start: {exc}\n{report}") from exc

    def stop(self) -> None:
        """Stop what we started, newest first and one at a time (etcd last, so the apiserver
        shuts down cleanly): SIGTERM by PID, SIGKILL if it lingers."""
        for comp in reversed(self._components):
            if comp.proc.poll() is None:
                comp.proc.send_signal(signal.SIGTERM)
            try:
                comp.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                comp.proc.kill()
                comp.proc.wait(timeout=5)
        self._components.clear()

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tails(self, lines: int = 30) -> str:
        return "\n".join(
            f"---- {c.name} (pid {c.proc.pid}, exit {c.proc.poll()}) {c.log} ----\n"
            f"{tail(c.log, lines)}"
            for c in self._components
        )

    def check_alive(self) -> None:
        dead = [c.name for c in self._components if c.proc.poll() is not None]
        if dead:
            raise ControlPlaneError(f"exited: {', '.join(dead)}\n{self.log_tails()}")

    # ---- client helpers -----------------------------------------------------------------------

    def serviceaccount_kubeconfig(self, namespace: str, name: str, duration: str = "24h") -> Path:
        """A kubeconfig that authenticates as system:serviceaccount:NS:NAME.

        The token comes from the TokenRequest API (`kubectl create token`), exactly what a pod's
        projected token would carry, so code run with it has the ServiceAccount's RBAC and no more.
        """
        token = self.kubectl(
            "create", "token", name, "-n", namespace, f"--duration={duration}"
        ).stdout.strip()
        path = self.workdir / "kubeconfigs" / f"sa-{namespace}-{name}.kubeconfig"
        self._write_kubeconfig(path, user=f"{namespace}:{name}", token=token)
        return path

    def issue_cert(
        self,
        name: str,
        *,
        common_name: str,
        organizations: tuple[str, ...] = (),
        sans: tuple[str, ...] = (),
        server: bool = False,
    ) -> CertPair:
        """A certificate signed by this cluster's CA (e.g. a kubelet's client and serving certs)."""
        return make_cert(
            self.pki,
            self.ca,
            name,
            common_name=common_name,
            organizations=organizations,
            sans=sans,
            server=server,
        )

    def client_kubeconfig(
        self, name: str, *, common_name: str, organizations: tuple[str, ...] = ()
    ) -> Path:
        """A kubeconfig authenticating with a fresh client cert as user `common_name`.

        Kubernetes takes the user from the CN and groups from O: `system:node:<node>` in
        `system:nodes` is what the Node authorizer grants a kubelet, `system:kube-proxy` is bound
        to `system:node-proxier` by the bootstrap RBAC policy.
        """
        cert = self.issue_cert(name, common_name=common_name, organizations=organizations)
        path = self.workdir / "kubeconfigs" / f"{name}.kubeconfig"
        self._write_kubeconfig(path, user=common_name, cert=cert)
        return path

    def add_fake_nodes(
        self,
        count: int,
        *,
        cpu: str = "32",
        memory: str = "256Gi",
        pods: str = "1000",
        gpus: int = 0,
        prefix: str = "kwok-node",
        labels: dict[str, str] | None = None,
    ) -> list[str]:
        """Create `count` nodes that kwok manages (heartbeats, Ready condition, pod lifecycle).

        Capacity and allocatable are set at creation; kwok's node-initialize stage keeps them.
        Returns the node names. Nodes are untainted: there is no real node to protect here.
        """
        resources = {"cpu": cpu, "memory": memory, "pods": pods}
        if gpus:
            resources["nvidia.com/gpu"] = str(gpus)
        names, docs = [], []
        for i in range(count):
            name = f"{prefix}-{i}"
            names.append(name)
            docs.append(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": name,
                        "annotations": {
                            KWOK_NODE_ANNOTATION[0]: KWOK_NODE_ANNOTATION[1],
                            "node.alpha.kubernetes.io/ttl": "0",
                        },
                        "labels": {
                            "kubernetes.io/hostname": name,
                            "kubernetes.io/os": "linux",
                            "kubernetes.io/arch": "amd64",
                            "type": "kwok",
                            **(labels or {}),
                        },
                    },
                    "status": {"capacity": resources, "allocatable": resources},
                }
            )
        # create, not apply: status in a create request is kept for Nodes, apply would drop it
        # into a last-applied annotation for no use.
        self.kubectl("create", "-f", "-", input=yaml.safe_dump_all(docs))
        for name in names:
            self.kubectl("wait", "--for=condition=Ready", f"node/{name}", "--timeout=60s")
        return names

    def fail_pod(
        self,
        namespace: str,
        name: str,
        *,
        reason: str = "Error",
        message: str = "container failed (kwok)",
        exit_code: int = 1,
    ) -> None:
        """Make kwok mark a Running pod's containers terminated and the pod phase Failed.

        This is kwok's own chaos stage (pod-container-running-failed): a label selects the pod,
        annotations carry the reason/message/exit code, kwok writes the status ~1-2 s later —
        the same status update a kubelet sends when a container dies with restartPolicy Never.
        """
        prefix = FAIL_ANNOTATION_PREFIX
        self.kubectl(
            "annotate",
            "--overwrite",
            "-n",
            namespace,
            f"pod/{name}",
            f"{prefix}/reason={reason}",
            f"{prefix}/message={message}",
            f"{prefix}/exit-code={exit_code}",
        )
        self.kubectl(
            "label", "--overwrite", "-n", namespace, f"pod/{name}", f"{KWOK_FAIL_LABEL}=true"
        )

    # ---- internals ---------------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str]) -> _Component:
        log = self.logs / f"{name}.log"
        with open(log, "ab") as out:
            # Own session: a Ctrl-C in the terminal reaches pytest, which stops us in order.
            proc = subprocess.Popen(
                [str(self.bin_dir / name), *args, *self.extra_args.get(name, [])],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                start_new_session=True,
            )
        comp = _Component(name, proc, log)
        self._components.append(comp)
        return comp

    def _wait(self, comp: _Component, what: str, probe, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.startup_timeout)
        last = ""
        while time.monotonic() < deadline:
            if comp.proc.poll() is not None:
                raise ControlPlaneError(f"{comp.name} exited with {comp.proc.returncode}")
            try:
                if probe():
                    return
            except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
                last = repr(exc)
            time.sleep(0.2)
        raise ControlPlaneError(f"{comp.name}: {what} not reached in time {last}")

    def _make_pki(self) -> None:
        self.ca = make_ca(self.pki, "ca", "srl-test-ca")
        self.apiserver_cert = make_cert(
            self.pki,
            self.ca,
            "apiserver",
            common_name="kube-apiserver",
            server=True,
            sans=(
                "IP:127.0.0.1",
                f"IP:{self.bind_address}",
                f"IP:{KUBERNETES_SERVICE_IP}",
                "DNS:localhost",
                "DNS:kubernetes",
                "DNS:kubernetes.default",
                "DNS:kubernetes.default.svc",
                "DNS:kubernetes.default.svc.cluster.local",
            ),
        )
        self.admin_cert = make_cert(
            self.pki, self.ca, "admin", common_name="srl-admin", organizations=("system:masters",)
        )
        # The built-in RBAC bootstrap policy grants these user names what each component needs.
        self.kcm_cert = make_cert(
            self.pki, self.ca, "controller-manager", common_name="system:kube-controller-manager"
        )
        self.scheduler_cert = make_cert(
            self.pki, self.ca, "scheduler", common_name="system:kube-scheduler"
        )
        # kwok stands in for every kubelet and writes any node's status; it runs as admin.
        self.kwok_cert = make_cert(
            self.pki,
            self.ca,
            "kwok",
            common_name="kwok-controller",
            organizations=("system:masters",),
        )
        # The apiserver's client cert towards kubelets (kubectl logs/exec); system:masters passes
        # the kubelet's webhook authorization.
        self.kubelet_client_cert = make_cert(
            self.pki,
            self.ca,
            "apiserver-kubelet-client",
            common_name="kube-apiserver-kubelet-client",
            organizations=("system:masters",),
        )
        self.sa_key, self.sa_pub = make_rsa_keypair(self.pki, "sa")
        # Front-proxy (request-header) CA: what aggregated API servers trust. Configuring it also
        # keeps the controller-manager and scheduler from logging a missing-CA error every second.
        self.front_proxy_ca = make_ca(self.pki, "front-proxy-ca", "srl-test-front-proxy-ca")
        self.front_proxy_client = make_cert(
            self.pki, self.front_proxy_ca, "front-proxy-client", common_name="front-proxy-client"
        )

    def _start_etcd(self) -> None:
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        peer_url = f"http://127.0.0.1:{peer}"
        comp = self._spawn(
            "etcd",
            [
                "--name=srl-test",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=srl-test={peer_url}",
                # Throw-away data: skipping fsync makes the apiserver several times faster on a
                # shared disk, and a crash loses nothing we need.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )

        def healthy() -> bool:
            conn = http.client.HTTPConnection("127.0.0.1", client, timeout=2)
            conn.request("GET", "/health")
            resp = conn.getresponse()
            return resp.status == 200 and b'"health":"true"' in resp.read()

        self._wait(comp, "etcd /health", healthy)

    def _client_ssl(self, cert: CertPair | None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca.cert))
        if cert:
            ctx.load_cert_chain(str(cert.cert), str(cert.key))
        return ctx

    def _https_ok(
        self, port: int, path: str, ctx: ssl.SSLContext, host: str = "127.0.0.1"
    ) -> bool:
        conn = http.client.HTTPSConnection(host, port, timeout=5, context=ctx)
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status == 200

    def _start_apiserver(self) -> None:
        port = free_port()
        self.server = f"https://{self.bind_address}:{port}"
        loopback = self.bind_address.startswith("127.")
        comp = self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers={self.etcd_url}",
                f"--bind-address={self.bind_address}",
                f"--advertise-address={self.bind_address}",
                f"--secure-port={port}",
                f"--cert-dir={self.pki / 'apiserver-certs'}",
                f"--tls-cert-file={self.apiserver_cert.cert}",
                f"--tls-private-key-file={self.apiserver_cert.key}",
                f"--client-ca-file={self.ca.cert}",
                "--authorization-mode=Node,RBAC",
                f"--requestheader-client-ca-file={self.front_proxy_ca.cert}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={self.front_proxy_client.cert}",
                f"--proxy-client-key-file={self.front_proxy_client.key}",
                f"--service-account-issuer={SA_ISSUER}",
                f"--service-account-key-file={self.sa_pub}",
                f"--service-account-signing-key-file={self.sa_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                # On loopback the endpoint reconciler would publish 127.0.0.1 as the `kubernetes`
                # Service's endpoint, which Endpoints validation rejects — nothing in-cluster dials
                # it there anyway. On a routable address pods reach the apiserver through it.
                f"--endpoint-reconciler-type={'none' if loopback else 'lease'}",
                f"--kubelet-client-certificate={self.kubelet_client_cert.cert}",
                f"--kubelet-client-key={self.kubelet_client_cert.key}",
                # Node names are not resolvable here: dial kubelets at their InternalIP.
                "--kubelet-preferred-address-types=InternalIP,Hostname",
                "--allow-privileged=true",
                "--profiling=false",
                "--v=1",
            ],
        )
        ctx = self._client_ssl(self.admin_cert)
        self._wait(
            comp,
            "kube-apiserver /readyz",
            lambda: self._https_ok(port, "/readyz", ctx, host=self.bind_address),
        )
        self._write_kubeconfig(self.admin_kubeconfig, user="srl-admin", cert=self.admin_cert)

    def _start_controller_manager(self) -> None:
        kubeconfig = self.workdir / "kubeconfigs" / "controller-manager.kubeconfig"
        self._write_kubeconfig(
            kubeconfig, user="system:kube-controller-manager", cert=self.kcm_cert
        )
        port = free_port()
        comp = self._spawn(
            "kube-controller-manager",
            [
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={self.workdir / 'kcm-certs'}",
                # All default-on controllers (garbage collector, replicaset, deployment, statefulset,
                # job, serviceaccount, serviceaccount-token, namespace, node-lifecycle, ...). With no
                # --cloud-provider the cloud controllers (service LB, routes, cloud node lifecycle)
                # do not start, so nothing needs switching off.
                "--controllers=*",
                # Each controller gets its own ServiceAccount, as in kubeadm clusters: the bootstrap
                # RBAC roles system:controller:* are written for exactly that.
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={self.sa_key}",
                f"--root-ca-file={self.ca.cert}",
                f"--cluster-signing-cert-file={self.ca.cert}",
                f"--cluster-signing-key-file={self.ca.key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                # Its default, /usr/libexec/kubernetes/kubelet-plugins/volume/exec, is created at
                # start: keep it in the temp dir.
                f"--flex-volume-plugin-dir={self.workdir / 'flexvolume'}",
                "--leader-elect=false",
                "--profiling=false",
                "--v=1",
            ],
        )
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE  # its serving cert is self-signed, loopback only
        self._wait(
            comp,
            "kube-controller-manager /healthz",
            lambda: self._https_ok(port, "/healthz", insecure),
        )

    def _start_scheduler(self) -> None:
        kubeconfig = self.workdir / "kubeconfigs" / "scheduler.kubeconfig"
        self._write_kubeconfig(kubeconfig, user="system:kube-scheduler", cert=self.scheduler_cert)
        port = free_port()
        comp = self._spawn(
            "kube-scheduler",
            [
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                "--leader-elect=false",
                "--profiling=false",
                "--v=1",
            ],
        )
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        self._wait(
            comp, "kube-scheduler /healthz", lambda: self._https_ok(port, "/healthz", insecure)
        )

    def _start_kwok(self) -> None:
        kubeconfig = self.workdir / "kubeconfigs" / "kwok.kubeconfig"
        self._write_kubeconfig(kubeconfig, user="kwok-controller", cert=self.kwok_cert)
        config = self.workdir / "kwok.yaml"
        config.write_text(kwok_config(self.bin_dir, self.kwok_options))
        port = free_port()
        comp = self._spawn(
            "kwok",
            [
                f"--kubeconfig={kubeconfig}",
                f"--config={config}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=" + "=".join(KWOK_NODE_ANNOTATION),
                f"--cidr={POD_CIDR}",
                "--node-ip=10.127.0.1",
                # Heartbeat through Leases (cheap), as a real kubelet does.
                "--node-lease-duration-seconds=40",
                f"--server-address=127.0.0.1:{port}",
            ],
        )

        def healthy() -> bool:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            resp = conn.getresponse()
            resp.read()
            return resp.status == 200

        self._wait(comp, "kwok /healthz", healthy)

    def _wait_default_serviceaccount(self) -> None:
        """Pods are refused until the `default` ServiceAccount exists: wait for its controller."""
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            self.check_alive()
            got = self.kubectl("get", "serviceaccount", "default", "-n", "default", check=False)
            if got.returncode == 0:
                return
            time.sleep(0.3)
        raise ControlPlaneError("ServiceAccount default/default never appeared")

    def _write_kubeconfig(
        self, path: Path, *, user: str, cert: CertPair | None = None, token: str | None = None
    ) -> None:
        creds: dict[str, str] = {}
        if cert:
            creds = {"client-certificate": str(cert.cert), "client-key": str(cert.key)}
        if token:
            creds = {"token": token}
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "srl-test",
                    "cluster": {"server": self.server, "certificate-authority": str(self.ca.cert)},
                }
            ],
            "users": [{"name": user, "user": creds}],
            "contexts": [{"name": "srl-test", "context": {"cluster": "srl-test", "user": user}}],
            "current-context": "srl-test",
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(doc))
        path.chmod(0o600)


def kwok_config(bin_dir: Path, options: dict[str, object] | None = None) -> str:
    """kwok's --config: the pod Stages it should play.

    Passing any pod Stage replaces kwok's built-in defaults, so we pass the same "fast" set it
    would default to (pod-ready, pod-complete for Job pods, pod-delete to finish graceful
    deletes) plus the chaos stage that fails a pod on request (fail_pod). The YAML is kwok's own,
    copied from the pinned kwok module by scripts/install-cluster-tools.sh. Node stages are left
    to kwok's defaults (node-initialize + lease heartbeat).
    """
    stages_dir = bin_dir / "kwok-stages"
    docs = sorted(stages_dir.glob("*.yaml"))
    if not docs:
        raise ControlPlaneError(
            f"no kwok stages in {stages_dir}; run scripts/install-cluster-tools.sh"
        )
    header = "apiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokConfiguration\noptions: " + json.dumps(options or {}) + "\n"
    return "---\n".join([header, *(d.read_text() for d in docs)])
