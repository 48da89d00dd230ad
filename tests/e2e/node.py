"""A real Kubernetes node for the e2e tier, joined to the cluster tier's control plane.

    node = RealNode(workdir, bin_dir)
    node.prepare()        # prerequisites, leftovers of a killed run, the node's network namespace
    cp = ControlPlane(..., bind_address=node.api_address, with_kwok=False); cp.start()
    node.start(cp)        # containerd, images, kubelet, kube-proxy, CoreDNS, storage; node Ready
    ...
    node.stop(); cp.stop(); node.release()      # or: with e2e_cluster(tmp) as (cp, node): ...

What runs, all inside the node's network namespace (hostnet.py), each process its own group and
stopped by its PID:
  containerd   Debian's 1.6 + runc; own config, socket and state dir in the run's temp dir, root
               (images, snapshots) in the cache so imported images survive between runs
  kubelet      v1.35.4, cgroupfs driver under its own cgroup root, client cert system:node:<name>
  kube-proxy   v1.35.4, iptables mode
  CoreDNS      v1.14.7 as a host process on the node IP (the pods' clusterDNS)
CNI: Debian's bridge + host-local + portmap plugins (loopback by containerd), bridge `srl-br0`.
Storage: StorageClass `srl-e2e-local` (default, WaitForFirstConsumer) and pre-created local PVs
in the run's temp dir. Host hygiene: hostguard.py.

Facts of the test machine (a microVM: cgroup v1, no CAP_SYS_RESOURCE) that shape the config:
kubelet 1.35 refuses cgroup v1 unless failCgroupV1: false, and needs cgroupDriver: cgroupfs (no
systemd); containerd needs restrict_oom_score_adj = true and the kubelet oomScoreAdj: 0, otherwise
every sandbox fails with runc's "can't get final child's PID from pipe: EOF" (lowering an OOM score
needs CAP_SYS_RESOURCE).
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from controlplane import ControlPlane, tail
from hostguard import (
    FIXED_PATHS,
    Record,
    alive,
    cleanup,
    make_cgroup_root,
    mountpoints,
    read_sysctls,
)
from hostnet import BRIDGE, NodeNetwork
from node_images import ContainerdImages, ImageTarball, pause_image

from images import build_images, built_images

NODE_NAME = "srl-e2e-node"
CLUSTER_DOMAIN = "cluster.local"
CNI_NETWORK = "srl-e2e"  # the CNI network name (also the prefix of its cache entries)
CNI_BIN = Path("/usr/lib/cni")  # Debian's containernetworking-plugins
CNI_PLUGINS = ("bridge", "host-local", "portmap", "loopback")
STORAGE_CLASS = "srl-e2e-local"
NODE_TOOLS = ("kubelet", "kube-proxy", "coredns")
HOST_TOOLS = (  # from Debian packages (scripts/install-e2e-packages.sh) and util-linux/iproute2
    "containerd",
    "containerd-shim-runc-v2",
    "runc",
    "ctr",
    "iptables",
    "iptables-restore",
    "conntrack",
    "nsenter",
    "unshare",
    "ip",
    "mount",
    "umount",
)
MIN_FREE_GB = float(os.environ.get("SRL_E2E_MIN_FREE_GB", "20"))
KUBELET_PORT = 10250
DNS_READY_PORT = 8181  # CoreDNS `ready` plugin, on the node IP
COREDNS_USER = "srl-e2e:coredns"


class NodeError(RuntimeError):
    """The node failed to start or lacks a prerequisite; the message says which and why."""


def missing_prerequisites(bin_dir: Path, cache: Path) -> list[str]:
    """Everything the node needs from this machine that it lacks, one readable line each."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (the node runs containerd, kubelet and kube-proxy)")
    for tool in NODE_TOOLS:
        if not os.access(bin_dir / tool, os.X_OK):
            missing.append(f"{bin_dir / tool} (scripts/install-e2e-tools.sh)")
    for tool in HOST_TOOLS:
        if not shutil.which(tool) and not any(
            os.access(Path(d) / tool, os.X_OK) for d in ("/usr/sbin", "/sbin")
        ):
            missing.append(f"{tool} on PATH (scripts/install-e2e-packages.sh)")
    for plugin in CNI_PLUGINS:
        if not os.access(CNI_BIN / plugin, os.X_OK):
            missing.append(f"{CNI_BIN / plugin} (Debian containernetworking-plugins)")
    if not Path("/sys/fs/cgroup").is_dir():
        missing.append("a cgroup filesystem at /sys/fs/cgroup")
    probe = cache
    while not probe.exists():
        probe = probe.parent
    free_gb = shutil.disk_usage(probe).free / 2**30
    if free_gb < MIN_FREE_GB:
        missing.append(
            f"{MIN_FREE_GB:.0f} GB free disk for images in {cache} (have {free_gb:.1f} GB; "
            "SRL_E2E_MIN_FREE_GB overrides)"
        )
    return missing


@dataclass
class _Proc:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path


@dataclass
class RealNode:
    """containerd + kubelet + kube-proxy + CoreDNS in a network namespace of their own."""

    workdir: Path  # this run's temp dir (removed by the caller)
    bin_dir: Path  # kubelet, kube-proxy, coredns ($SRL_CACHE/bin)
    images_dir: Path | None = None  # the pause image ($SRL_CACHE/images); default: beside bin_dir
    state_root: Path | None = None  # containerd root + run records; default $SRL_E2E_CACHE/node
    images: list[ImageTarball] | None = None  # default: images.built_images() (the manifest)
    name: str = NODE_NAME
    volumes: int = 16  # local PVs created at start (add_volumes() makes more)
    startup_timeout: float = 180.0
    network: NodeNetwork = field(init=False)
    cp: ControlPlane | None = field(default=None, init=False)
    timings: dict[str, float] = field(default_factory=dict, init=False)  # phase -> seconds
    imported: dict[str, str] = field(default_factory=dict, init=False)  # ref -> cached/imported
    cleanup_report: list[str] = field(default_factory=list, init=False)  # what stop() undid
    _procs: list[_Proc] = field(default_factory=list, init=False)
    _record: Record | None = field(default=None, init=False)
    _record_path: Path | None = field(default=None, init=False)
    _lock: int | None = field(default=None, init=False)
    _volume_count: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        self.bin_dir = Path(self.bin_dir)
        self.images_dir = Path(self.images_dir or self.bin_dir.parent / "images")
        self.state_root = Path(self.state_root or build_images.cache_dir() / "node")
        self.network = NodeNetwork(self.workdir / "net")
        self.dir = self.workdir / "node"
        self.logs = self.dir / "logs"
        self.containerd_root = self.state_root / "containerd"
        self.containerd_state = self.dir / "containerd-state"
        self.socket = self.dir / "containerd.sock"
        self.kubelet_root = self.dir / "kubelet"
        self.pod_logs = self.dir / "pod-logs"
        self.cni_conf_dir = self.dir / "cni"
        self.volumes_dir = self.dir / "volumes"

    # ---- addresses ------------------------------------------------------------------------------

    @property
    def api_address(self) -> str:
        """Where the control plane must listen so the node and its pods reach it."""
        return self.network.host_ip

    @property
    def node_ip(self) -> str:
        return self.network.node_ip

    @property
    def dns_ip(self) -> str:
        """The pods' nameserver (CoreDNS on the node IP)."""
        return self.network.node_ip

    @property
    def cgroup_root(self) -> str:
        return f"/srl-e2e-{self.network.index}"

    # ---- lifecycle ------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Check the machine, clean up after killed runs, lock the containerd root, create the
        node's network (the control plane binds to `api_address` afterwards)."""
        missing = missing_prerequisites(self.bin_dir, self.state_root)
        if missing:
            raise NodeError("the e2e node cannot run on this machine; missing:\n  - " + "\n  - ".join(missing))
        self.logs.mkdir(parents=True, exist_ok=True)
        records = self.state_root / "runs"
        self._clean_dead_runs(records)
        self.state_root.mkdir(parents=True, exist_ok=True)
        self._lock = os.open(self.state_root / "containerd.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock)
            self._lock = None
            raise NodeError(
                f"another e2e node is using {self.containerd_root} (lock "
                f"{self.state_root / 'containerd.lock'}); set SRL_E2E_CACHE to run a second one"
            ) from None
        # The record exists before anything is changed, so a SIGKILL from here on is cleaned up.
        sysctls = read_sysctls()
        self.network.create()
        self._record = Record(
            owner_pid=os.getpid(),
            workdir=str(self.workdir),
            netns=str(self.network.netns),
            host_if=self.network.host_if,
            cgroup_root=self.cgroup_root,
            containerd_socket=str(self.socket),
            containerd_state=str(self.containerd_state),
            cni_network=CNI_NETWORK,
            sysctls=sysctls,
            missing_paths=[p for p in FIXED_PATHS if not os.path.lexists(p)],
        )
        self._record_path = records / f"{os.getpid()}-{self.network.index}.json"
        self._record.save(self._record_path)

    def start(self, cp: ControlPlane) -> None:
        """Start the node against a running control plane bound to `api_address`."""
        if self._record is None:
            raise NodeError("RealNode.start() before prepare()")
        self.cp = cp
        try:
            self._phase("containerd", self._start_containerd)
            self._phase("images", self._import_images)
            self._phase("kubelet", self._start_kubelet)
            self._phase("kube-proxy", self._start_kube_proxy)
            self._phase("coredns", self._start_coredns)
            self._phase("storage", lambda: self.add_volumes(self.volumes))
            self._phase("node-ready", self._wait_ready)
        except Exception as exc:
            report = self.log_tails()
            raise NodeError(f"node {self.name} failed to start: {exc}\n{report}") from exc

    def stop(self) -> list[str]:
        """Stop every process of the node and undo its host changes (all but the network, which
        `release` removes after the control plane has stopped). Returns what cleanup did."""
        if self._record is None:
            return []
        # Nothing may restart containers while we remove them: kubelet and friends go first.
        for p in reversed(self._procs):
            if p.name != "containerd":
                self._terminate(p)
        with contextlib.suppress(Exception):
            self._remove_containers()
        for p in self._procs:
            self._terminate(p)
        self._procs.clear()
        self.cleanup_report = cleanup(self._record, network=False)
        return self.cleanup_report

    def release(self) -> None:
        """Remove the node's network (after the control plane stopped) and its run record."""
        self.network.destroy()
        if self._record_path:
            self._record_path.unlink(missing_ok=True)
        self._record = None
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def log_tails(self, lines: int = 25) -> str:
        return "\n".join(
            f"---- {p.name} (pid {p.proc.pid}, exit {p.proc.poll()}) {p.log} ----\n{tail(p.log, lines)}"
            for p in self._procs
        )

    def check_alive(self) -> None:
        dead = [p.name for p in self._procs if p.proc.poll() is not None]
        if dead:
            raise NodeError(f"exited: {', '.join(dead)}\n{self.log_tails()}")

    # ---- storage -------------------------------------------------------------------------------

    def add_volumes(self, count: int, capacity: str = "50Gi") -> list[str]:
        """Create `count` more local PVs (directories in the run's temp dir) of the node's default
        StorageClass. Each binds one claim once (Retain), as static PVs do."""
        assert self.cp is not None
        docs: list[dict] = []
        if self._volume_count == 0:
            docs.append(
                {
                    "apiVersion": "storage.k8s.io/v1",
                    "kind": "StorageClass",
                    "metadata": {
                        "name": STORAGE_CLASS,
                        "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                    },
                    "provisioner": "kubernetes.io/no-provisioner",
                    "volumeBindingMode": "WaitForFirstConsumer",
                    "reclaimPolicy": "Retain",
                }
            )
        names = []
        for _ in range(count):
            self._volume_count += 1
            name = f"srl-e2e-pv-{self._volume_count}"
            path = self.volumes_dir / name
            path.mkdir(parents=True, exist_ok=True)
            names.append(name)
            docs.append(
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolume",
                    "metadata": {"name": name},
                    "spec": {
                        "capacity": {"storage": capacity},
                        # One node: every pod that mounts the volume is on it, so RWX holds.
                        "accessModes": ["ReadWriteOnce", "ReadWriteMany"],
                        "persistentVolumeReclaimPolicy": "Retain",
                        "storageClassName": STORAGE_CLASS,
                        "volumeMode": "Filesystem",
                        # `local`, not hostPath: the kubelet applies the pod's fsGroup to it.
                        "local": {"path": str(path)},
                        "nodeAffinity": {
                            "required": {
                                "nodeSelectorTerms": [
                                    {
                                        "matchExpressions": [
                                            {
                                                "key": "kubernetes.io/hostname",
                                                "operator": "In",
                                                "values": [self.name],
                                            }
                                        ]
                                    }
                                ]
                            }
                        },
                    },
                }
            )
        self.cp.apply(docs)
        return names

    # ---- components ----------------------------------------------------------------------------

    def _phase(self, name: str, fn) -> None:
        start = time.monotonic()
        fn()
        self.timings[name] = round(time.monotonic() - start, 1)

    def _start_containerd(self) -> None:
        # Containers of earlier runs: their tasks died with the old state dir; the CRI plugin would
        # keep listing them, so remove them before the kubelet looks (their snapshots follow by GC).
        cri_root = self.containerd_root / "io.containerd.grpc.v1.cri"
        for sub in ("sandboxes", "containers"):
            shutil.rmtree(cri_root / sub, ignore_errors=True)
        self.containerd_root.mkdir(parents=True, exist_ok=True)
        self.containerd_state.mkdir(parents=True, exist_ok=True)
        self.cni_conf_dir.mkdir(parents=True, exist_ok=True)
        config = self.dir / "containerd.toml"
        config.write_text(self._containerd_config())
        comp = self._spawn("containerd", ["containerd", "--config", str(config)])
        images = ContainerdImages(self.socket)
        self._wait(comp, "containerd socket", lambda: self.socket.exists() and bool(images.ctr("version")))
        self._remove_containers()

    def _containerd_config(self) -> str:
        root, state = self.containerd_root, self.containerd_state
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        return f"""# Generated by tests/e2e/node.py
version = 2
root = "{root}"
state = "{state}"

[grpc]
  address = "{self.socket}"

[ttrpc]
  address = "{self.socket}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{root}/opt"

[{cri}]
  sandbox_image = "{pause_image(self.images_dir).ref}"
  # The kubelet runs with oomScoreAdj 0 (no CAP_SYS_RESOURCE to lower it); without this every
  # sandbox fails: runc "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  # Pod netns files in our state dir, not /var/run/netns.
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = "{state}/runc"

[{cri}.cni]
  bin_dir = "{CNI_BIN}"
  conf_dir = "{self.cni_conf_dir}"
  max_conf_num = 1
"""

    def _remove_containers(self) -> None:
        """Kill and remove every container in containerd's k8s.io namespace (their IDs go to the
        run record first: cleanup removes their CNI cache entries)."""
        images = ContainerdImages(self.socket)
        if self._record is not None and self._record_path is not None:
            self._record.container_ids += images.ctr("containers", "ls", "-q").stdout.split()
            self._record.save(self._record_path)
        tasks = [line.split()[0] for line in images.ctr("tasks", "ls").stdout.splitlines()[1:] if line.strip()]
        for task in tasks:
            with contextlib.suppress(Exception):
                images.ctr("tasks", "kill", "--all", "--signal", "SIGKILL", task)
        for task in tasks:
            with contextlib.suppress(Exception):
                images.ctr("tasks", "delete", "--force", task)
        ids = images.ctr("containers", "ls", "-q").stdout.split()
        for i in range(0, len(ids), 50):
            with contextlib.suppress(Exception):
                images.ctr("containers", "rm", *ids[i : i + 50])

    def _import_images(self) -> None:
        assert self.images_dir is not None
        wanted = [pause_image(self.images_dir), *(built_images() if self.images is None else self.images)]
        self.imported = ContainerdImages(self.socket).ensure(wanted)

    def _start_kubelet(self) -> None:
        assert self.cp is not None and self._record is not None
        make_cgroup_root(self.cgroup_root)
        # Per-namespace here (hostnet.py): pod -> Service -> pod on the same bridge needs bridged
        # replies to pass iptables (conntrack un-DNAT).
        self.network.exec("sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1")
        (self.cni_conf_dir / "10-srl-e2e.conflist").write_text(json.dumps(self._cni_config(), indent=1))
        self.kubelet_root.mkdir(parents=True, exist_ok=True)
        self.pod_logs.mkdir(parents=True, exist_ok=True)
        kubeconfig = self.cp.client_kubeconfig(
            "kubelet", common_name=f"system:node:{self.name}", organizations=("system:nodes",)
        )
        serving = self.cp.issue_cert(
            "kubelet-serving",
            common_name=f"system:node:{self.name}",
            organizations=("system:nodes",),
            sans=(f"IP:{self.node_ip}", f"DNS:{self.name}"),
            server=True,
        )
        resolv = self.dir / "resolv.conf"  # for dnsPolicy Default pods: the cluster DNS as well
        resolv.write_text(f"nameserver {self.dns_ip}\n")
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            # cgroup v1 host (microVM), no systemd: see the module docstring.
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": self.cgroup_root,
            "oomScoreAdj": 0,
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "address": self.node_ip,
            "port": KUBELET_PORT,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": 10248,
            "tlsCertFile": str(serving.cert),
            "tlsPrivateKeyFile": str(serving.key),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(self.cp.ca.cert)},
            },
            "authorization": {"mode": "Webhook"},
            "clusterDNS": [self.dns_ip],
            "clusterDomain": CLUSTER_DOMAIN,
            "resolvConf": str(resolv),
            "podLogsDir": str(self.pod_logs),
            "volumePluginDir": str(self.dir / "volume-plugins"),
            "failSwapOn": False,
            # Images are imported, never pulled: never garbage-collect them.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            # A shared test machine: don't evict pods because other work fills the disk.
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "serializeImagePulls": False,
            "maxPods": 110,
            "rotateCertificates": False,
            "serverTLSBootstrap": False,
            "protectKernelDefaults": False,  # it then sets vm/kernel sysctls: hostguard restores
            "shutdownGracePeriod": "0s",
            "nodeStatusUpdateFrequency": "5s",
        }
        config_path = self.dir / "kubelet.yaml"
        config_path.write_text(yaml.safe_dump(config))
        comp = self._spawn(
            "kubelet",
            [
                str(self.bin_dir / "kubelet"),
                f"--config={config_path}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={self.kubelet_root}",
                f"--cert-dir={self.dir / 'kubelet-pki'}",
                f"--hostname-override={self.name}",
                f"--node-ip={self.node_ip}",
                "--v=1",
            ],
        )

        def registered() -> bool:
            return self.cp.kubectl("get", "node", self.name, check=False).returncode == 0

        self._wait(comp, f"node {self.name} registered", registered)

    def _cni_config(self) -> dict:
        return {
            "cniVersion": "1.0.0",
            "name": CNI_NETWORK,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    # Pods keep their IPs towards the host (it routes the pod subnet back to us).
                    "ipMasq": False,
                    "hairpinMode": True,  # a pod reaching itself through its own Service
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": self.network.pod_subnet, "gateway": self.network.pod_gateway}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(self.dir / "cni-ipam"),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }

    def _start_kube_proxy(self) -> None:
        assert self.cp is not None
        kubeconfig = self.cp.client_kubeconfig("kube-proxy", common_name="system:kube-proxy")
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "mode": "iptables",
            "clientConnection": {"kubeconfig": str(kubeconfig)},
            "hostnameOverride": self.name,
            "clusterCIDR": self.network.pod_subnet,
            "bindAddress": self.node_ip,
            "healthzBindAddress": "127.0.0.1:10256",
            "metricsBindAddress": "127.0.0.1:10249",
            # Leave the global conntrack table size alone (it is not per namespace).
            "conntrack": {
                "maxPerCore": 0,
                "min": 0,
                "tcpEstablishedTimeout": "0s",
                "tcpCloseWaitTimeout": "0s",
            },
            "iptables": {"syncPeriod": "30s", "minSyncPeriod": "0s"},
        }
        path = self.dir / "kube-proxy.yaml"
        path.write_text(yaml.safe_dump(config))
        comp = self._spawn("kube-proxy", [str(self.bin_dir / "kube-proxy"), f"--config={path}", "--v=1"])

        def programmed() -> bool:
            rules = self.network.exec("iptables-save", "-t", "nat", check=False).stdout
            return "KUBE-SVC-" in rules  # the `kubernetes` Service has its chain

        self._wait(comp, "kube-proxy rules for the kubernetes Service", programmed)

    def _start_coredns(self) -> None:
        """CoreDNS as a host process in the node's namespace, on the node IP.

        Not a pod: it must answer before the first pod starts (the operator's own pod resolves
        Services), it needs no image, and it stops by PID with the rest of the node."""
        assert self.cp is not None
        self.cp.apply(
            [
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRole",
                    "metadata": {"name": "srl-e2e:coredns"},
                    "rules": [
                        {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
                         "verbs": ["list", "watch"]},
                        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                         "verbs": ["list", "watch"]},
                    ],
                },
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRoleBinding",
                    "metadata": {"name": "srl-e2e:coredns"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                "name": "srl-e2e:coredns"},
                    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                                  "name": COREDNS_USER}],
                },
            ]
        )
        kubeconfig = self.cp.client_kubeconfig("coredns", common_name=COREDNS_USER)
        corefile = self.dir / "Corefile"
        corefile.write_text(
            f""".:53 {{
    bind {self.dns_ip}
    errors
    ready {self.dns_ip}:{DNS_READY_PORT}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig} srl-test
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    cache 5
    loadbalance
}}
"""
        )
        comp = self._spawn("coredns", [str(self.bin_dir / "coredns"), "-conf", str(corefile)])

        def ready() -> bool:
            conn = http.client.HTTPConnection(self.dns_ip, DNS_READY_PORT, timeout=2)
            conn.request("GET", "/ready")
            resp = conn.getresponse()
            resp.read()
            return resp.status == 200

        self._wait(comp, "CoreDNS /ready", ready)

    def _wait_ready(self) -> None:
        assert self.cp is not None

        def ready() -> bool:
            node = self.cp.kubectl_json("get", "node", self.name)
            conds = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])}
            return conds.get("Ready") == "True"

        kubelet = next(p for p in self._procs if p.name == "kubelet")
        self._wait(kubelet, f"node {self.name} Ready", ready)

    # ---- processes -----------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> _Proc:
        log = self.logs / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [*self.network.nsenter(), *argv],  # nsenter execs: the PID is the component's
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.dir,
                start_new_session=True,
            )
        p = _Proc(name, proc, log)
        self._procs.append(p)
        assert self._record is not None and self._record_path is not None
        self._record.pids.append(proc.pid)
        self._record.save(self._record_path)
        return p

    def _terminate(self, p: _Proc, timeout: float = 20) -> None:
        if p.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.proc.pid, signal.SIGTERM)
            try:
                p.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.proc.pid, signal.SIGKILL)
                p.proc.wait(timeout=5)

    def _wait(self, p: _Proc, what: str, probe, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.startup_timeout)
        last = ""
        while time.monotonic() < deadline:
            if p.proc.poll() is not None:
                raise NodeError(f"{p.name} exited with {p.proc.returncode} before {what}")
            try:
                if probe():
                    return
            except (OSError, http.client.HTTPException, subprocess.SubprocessError, RuntimeError) as exc:
                last = repr(exc)
            time.sleep(0.3)
        raise NodeError(f"{what}: not reached in {timeout or self.startup_timeout:.0f}s {last}")

    def _clean_dead_runs(self, records: Path) -> None:
        """Undo what runs killed without their teardown left behind (their owner is gone)."""
        for path in sorted(records.glob("*.json")) if records.is_dir() else []:
            try:
                rec = Record.load(path)
            except (OSError, ValueError, TypeError):
                path.unlink(missing_ok=True)
                continue
            if rec.owner_pid != os.getpid() and alive(rec.owner_pid):
                continue  # a run in progress
            cleanup(rec)
            work = Path(rec.workdir)
            if work.exists() and not any(m.startswith(str(work) + "/") for m in mountpoints()):
                shutil.rmtree(work, ignore_errors=True)
            path.unlink(missing_ok=True)


# ---- the whole thing ---------------------------------------------------------------------------


@contextlib.contextmanager
def e2e_cluster(
    workdir: Path, bin_dir: Path, *, images: list[ImageTarball] | None = None
) -> Iterator[tuple[ControlPlane, RealNode]]:
    """A control plane (no kwok) and one real node, Ready; everything undone on exit."""
    node = RealNode(Path(workdir), Path(bin_dir), images=images)
    cp = ControlPlane(Path(workdir) / "cp", Path(bin_dir), with_kwok=False)
    try:
        node.prepare()
        cp.bind_address = node.api_address
        start = time.monotonic()
        cp.start()
        node.timings["control-plane"] = round(time.monotonic() - start, 1)
        node.start(cp)
        yield cp, node
    finally:
        try:
            node.stop()
        finally:
            cp.stop()
            node.release()
