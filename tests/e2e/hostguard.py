"""Host hygiene for the e2e node: record what the node may change on the host, undo it, check it.

The node's networking lives in its own namespace (hostnet.py), so what can reach the host is:
  - kernel sysctls the kubelet sets at start (vm.overcommit_memory, kernel.panic, ...; they are
    not per namespace) — recorded before, restored after;
  - mounts under the kubelet's root dir and containerd's state dir (volume tmpfs, bind mounts,
    overlay rootfs, the pods' netns files), in the host's mount namespace — unmounted;
  - cgroups under the node's own cgroup root (/sys/fs/cgroup/<controller>/<root>) — processes
    killed, directories removed;
  - processes: ours by PID, the containerd shims by their `-address <our socket>` argument, the
    containers by cgroup membership — nothing by name;
  - a few fixed paths the components write regardless of their configuration (/var/log/containers
    symlinks, the CNI result cache in /var/lib/cni, shim sockets in /run/containerd/s) — our
    entries removed, directories we created removed.
A record of each running node sits in the cache (`Record`), so a run killed with SIGKILL is
cleaned up by the next one.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Set by the kubelet at start (pkg/kubelet/cm setupKernelTunables) when protectKernelDefaults is
# false, and global on every kernel.
KUBELET_SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
# Set by CNI plugins and kube-proxy inside the node's namespace; per namespace on current kernels
# (bridge-nf-* since 5.3), so the host's values must not move. Recorded and restored anyway, and
# checked after every run: on an older kernel they would be global.
NETWORK_SYSCTLS = (
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/forwarding",
    "net/ipv6/conf/all/forwarding",
    "net/ipv4/conf/all/route_localnet",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
    "net/bridge/bridge-nf-call-arptables",
    "net/netfilter/nf_conntrack_max",
    "net/netfilter/nf_conntrack_tcp_timeout_established",
    "net/netfilter/nf_conntrack_tcp_timeout_close_wait",
)
SYSCTLS = KUBELET_SYSCTLS + NETWORK_SYSCTLS
# Written by the kubelet / containerd / CNI whatever their config says, children before parents.
# Created ones are removed (if empty after our entries go); existing ones only lose our entries.
FIXED_PATHS = (
    # The device manager's socket dir is a constant in the kubelet, not below its --root-dir.
    "/var/lib/kubelet/device-plugins",
    "/var/lib/kubelet",
    "/var/log/containers",
    "/var/lib/cni/results",
    "/var/lib/cni",
    "/run/containerd/s",
    "/run/containerd",
)
DEVICE_PLUGIN_SOCKET = "/var/lib/kubelet/device-plugins/kubelet.sock"
# Paths a misconfigured component would write to; the post-run check fails if one appears.
WATCHED_PATHS = (
    "/var/lib/containerd",
    "/var/log/pods",
    "/etc/cni/net.d",
    "/opt/cni",
    "/opt/containerd",
    "/etc/kubernetes",
    "/var/run/kubernetes",
    "/usr/libexec/kubernetes",
)
# Where containerd puts pod netns files (`cni-<uuid>`) unless netns_mounts_under_state_dir is set.
# Only those names count: other tools (and other tests on this host) keep their own netns there.
POD_NETNS_DIRS = ("/run/netns", "/var/run/netns")
CGROUP_FS = Path("/sys/fs/cgroup")
PROC_SYS = Path("/proc/sys")


def read_sysctls(names: tuple[str, ...] = SYSCTLS) -> dict[str, str]:
    """Current host values (names missing on this kernel are left out)."""
    values: dict[str, str] = {}
    for name in names:
        with contextlib.suppress(OSError):
            values[name] = (PROC_SYS / name).read_text().strip()
    return values


def restore_sysctls(saved: dict[str, str]) -> list[str]:
    """Write back every recorded value that changed; returns `name: now -> restored` lines."""
    restored = []
    for name, value in saved.items():
        path = PROC_SYS / name
        try:
            now = path.read_text().strip()
            if now != value:
                path.write_text(value + "\n")
                restored.append(f"{name}: {now} -> {value}")
        except OSError as exc:
            restored.append(f"{name}: could not restore {value!r}: {exc}")
    return restored


def mountpoints() -> list[str]:
    """Mount points of this mount namespace (octal escapes in /proc/self/mountinfo decoded)."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        raw = line.split()[4]
        points.append(raw.encode().decode("unicode_escape"))
    return points


def _under(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def unmount_under(roots: list[str], exclude: tuple[str, ...] = ()) -> list[str]:
    """Unmount everything mounted at or below `roots` but `exclude`, deepest first (lazily if
    busy)."""
    roots = [str(Path(r)) for r in roots]
    done = []
    for _ in range(3):  # a mount may hide another below it; a second pass catches that
        targets = sorted(
            {m for m in mountpoints() if _under(m, roots) and m not in exclude},
            key=len,
            reverse=True,
        )
        if not targets:
            break
        for target in targets:
            proc = subprocess.run(["umount", target], capture_output=True, text=True)
            if proc.returncode != 0:
                subprocess.run(["umount", "-l", target], capture_output=True, text=True)
            done.append(target)
    return done


def cgroup_dirs(root: str) -> list[Path]:
    """The node's cgroup root in every mounted hierarchy (v1: one per controller; v2: one)."""
    name = root.strip("/")
    if (CGROUP_FS / "cgroup.controllers").exists():  # cgroup v2 (unified)
        return [CGROUP_FS / name]
    return [d / name for d in sorted(CGROUP_FS.iterdir()) if d.is_dir() and not d.is_symlink()]


def make_cgroup_root(root: str) -> None:
    """Create the kubelet's --cgroup-root in every hierarchy; cpuset needs cpus/mems copied from
    its parent before a task may join it."""
    for d in cgroup_dirs(root):
        d.mkdir(exist_ok=True)
        if d.parent.name == "cpuset":
            for f in ("cpuset.cpus", "cpuset.mems"):
                if (d / f).exists() and not (d / f).read_text().strip():
                    (d / f).write_text((d.parent / f).read_text())


def cgroup_pids(root: str) -> set[int]:
    pids: set[int] = set()
    for d in cgroup_dirs(root):
        if not d.exists():
            continue
        for procs in d.rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                pids.update(int(p) for p in procs.read_text().split())
    return pids


def remove_cgroups(root: str) -> list[str]:
    """rmdir the node's cgroup trees, leaves first; returns those that stayed (still in use)."""
    left = []
    for d in cgroup_dirs(root):
        if not d.exists():
            continue
        for sub in sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                sub.rmdir()
        try:
            d.rmdir()
        except OSError:
            left.append(str(d))
    return left


def pids_with_arg(arg: str) -> list[int]:
    """PIDs whose command line contains `arg` as one argument (our unique socket path)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if arg.encode() in argv:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive for our purposes.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def kill_pids(pids: list[int] | set[int], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL what is left after `timeout`."""
    pids = [p for p in pids if p > 1 and p != os.getpid()]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(alive(p) for p in pids):
            time.sleep(0.1)
        pids = [p for p in pids if alive(p)]
        if not pids:
            return


def container_ids_in_state(state: Path) -> set[str]:
    """Container and sandbox IDs with a directory in containerd's state dir (tasks, CRI)."""
    ids: set[str] = set()
    for sub in ("io.containerd.runtime.v2.task/k8s.io", "io.containerd.grpc.v1.cri/sandboxes"):
        with contextlib.suppress(OSError):
            ids.update(d.name for d in (state / sub).iterdir())
    return ids


def _remove_created_dir(path: Path) -> None:
    """Remove a directory the node created (and the kubelet's device-manager socket, which the
    kubelet leaves behind) if nothing else is in it."""
    if path == Path(DEVICE_PLUGIN_SOCKET).parent:
        Path(DEVICE_PLUGIN_SOCKET).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        path.rmdir()


def _link_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0


def remove_symlinks_into(directory: Path, target_root: Path) -> int:
    """Remove symlinks in `directory` that point below `target_root` (kubelet's
    /var/log/containers entries for our pods)."""
    removed = 0
    if not directory.is_dir():
        return 0
    for link in directory.iterdir():
        if link.is_symlink() and _under(os.readlink(link), [str(target_root)]):
            link.unlink(missing_ok=True)
            removed += 1
    return removed


@dataclass
class Record:
    """What one running node may leave behind; written to the cache at start, removed at the
    end. A record whose owner process is gone is a crashed run: `cleanup` it."""

    owner_pid: int  # the test process that started the node
    workdir: str  # the run's temp dir (netns file, kubelet root, containerd state, logs)
    netns: str  # the namespace's bind mount
    host_if: str  # the veth's host end
    cgroup_root: str  # the kubelet's --cgroup-root
    containerd_socket: str  # shims carry it in `-address`: how we find them by PID
    containerd_state: str  # its state dir: task and sandbox dirs name our container IDs
    cni_network: str  # CNI network name: /var/lib/cni/results/<name>-* are ours
    sysctls: dict[str, str]  # host values before the node started
    missing_paths: list[str] = field(default_factory=list)  # FIXED_PATHS absent before the start
    pids: list[int] = field(default_factory=list)  # processes we started (each its own group)
    container_ids: list[str] = field(default_factory=list)  # containerd's, noted before removal

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Record:
        return cls(**json.loads(path.read_text()))


def cleanup(rec: Record, *, network: bool = True) -> list[str]:
    """Undo everything a node run may have changed on the host; returns what it did.

    `network=False` keeps the node's namespace and veth (the control plane still listens on the
    veth; NodeNetwork.destroy removes them after it). Safe to call more than once and after a
    partial start."""
    did: list[str] = []
    work = Path(rec.workdir)
    # 1. Processes: ours (each leads its own process group), the shims (found by our socket),
    #    then anything left in our cgroups (containers whose shim is gone).
    groups = [p for p in rec.pids if alive(p)]
    for pid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
    kill_pids(groups)
    shims = pids_with_arg(rec.containerd_socket)
    kill_pids(shims)
    stray = cgroup_pids(rec.cgroup_root)
    kill_pids(stray, timeout=5)
    if groups or shims or stray:
        did.append(f"stopped {len(groups)} processes, {len(shims)} shims, {len(stray)} in cgroups")
    # 2. Mounts below the run's dir: volumes, overlay rootfs, pod netns files (and the node's
    #    namespace file unless the network stays).
    unmounted = unmount_under([rec.workdir], exclude=() if network else (rec.netns,))
    if unmounted:
        did.append(f"unmounted {len(unmounted)} mounts under {rec.workdir}")
    # 3. The veth (the namespace may outlive its file while a process holds it) and cgroups.
    if network and _link_exists(rec.host_if):
        subprocess.run(["ip", "link", "del", rec.host_if], capture_output=True)
        did.append(f"deleted link {rec.host_if}")
    left = remove_cgroups(rec.cgroup_root)
    if left:
        did.append(f"cgroups still in use: {', '.join(left)}")
    # 4. Fixed paths: our entries, then directories we created.
    n = remove_symlinks_into(Path("/var/log/containers"), work)
    if n:
        did.append(f"removed {n} /var/log/containers links")
    # libcni caches each ADD (ours and containerd's loopback network) until its DEL.
    results = Path("/var/lib/cni/results")
    if results.is_dir():
        ids = set(rec.container_ids) | container_ids_in_state(Path(rec.containerd_state))
        for f in results.iterdir():
            if f.name.startswith(f"{rec.cni_network}-") or any(f"-{i}-" in f.name for i in ids):
                f.unlink(missing_ok=True)
    for p in rec.missing_paths:  # listed children first (FIXED_PATHS order)
        _remove_created_dir(Path(p))
    # 5. Sysctls.
    did += [f"sysctl {line}" for line in restore_sysctls(rec.sysctls)]
    return did


@dataclass(frozen=True)
class HostSnapshot:
    """The host state the node must leave as it found it."""

    sysctls: dict[str, str]
    iptables: tuple[str, ...]  # host-netns rules mentioning KUBE-/CNI- chains
    paths: tuple[str, ...]  # WATCHED_PATHS + FIXED_PATHS that exist
    links: tuple[str, ...]  # the watched links that exist
    mounts: tuple[str, ...]  # containerd-style pod netns mounts (POD_NETNS_DIRS/cni-*)

    @classmethod
    def take(cls, links: tuple[str, ...] = ()) -> HostSnapshot:
        """`links`: interface names to watch (the run's veth), so other runs' links don't count."""
        rules: list[str] = []
        for tool in ("iptables-save", "ip6tables-save"):
            proc = subprocess.run([tool], capture_output=True, text=True)
            rules += [
                line
                for line in proc.stdout.splitlines()
                if ("KUBE-" in line or "CNI-" in line) and not line.startswith("#")
            ]
        present = [name for name in links if _link_exists(name)]
        return cls(
            sysctls=read_sysctls(),
            iptables=tuple(sorted(rules)),
            paths=tuple(p for p in (*WATCHED_PATHS, *FIXED_PATHS) if os.path.lexists(p)),
            links=tuple(present),
            mounts=tuple(
                sorted(
                    m
                    for m in mountpoints()
                    if _under(m, list(POD_NETNS_DIRS)) and Path(m).name.startswith("cni-")
                )
            ),
        )

    def differences(self, after: HostSnapshot) -> list[str]:
        diffs = [
            f"sysctl {k}: {v} -> {after.sysctls.get(k)}"
            for k, v in self.sysctls.items()
            if after.sysctls.get(k) != v
        ]
        for name in ("iptables", "paths", "links", "mounts"):
            before, now = set(getattr(self, name)), set(getattr(after, name))
            diffs += [f"{name}: new {x}" for x in sorted(now - before)]
            diffs += [f"{name}: gone {x}" for x in sorted(before - now)]
        return diffs
