"""Host hygiene when a run dies without its teardown (SIGKILL, OOM, power cut of the job): the
next node's prepare() finds the dead run's record and undoes what it left — processes, mounts,
the network namespace and its veth, cgroups, sysctls. Real mounts, namespaces and cgroups; no
cluster needed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from hostguard import Record, alive, cgroup_dirs, make_cgroup_root, mountpoints
from hostnet import NodeNetwork
from node import RealNode

BIN = Path(os.environ.get("SRL_CACHE", Path.home() / ".cache" / "srl-test")) / "bin"
SYSCTL = "kernel/panic"  # one the kubelet sets (to 10)


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _link_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0


def test_prepare_cleans_up_after_a_killed_run(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("the e2e tier needs root (namespaces, mounts, cgroups)", pytrace=False)
    dead = tmp_path / "dead-run"
    # What a killed run leaves: its namespace + veth, a process inside it, a volume mount, a
    # container process in its cgroup root, a kubelet sysctl.
    net = NodeNetwork(dead / "net")
    net.create()
    holder = subprocess.Popen([*net.nsenter(), "sleep", "300"], start_new_session=True)
    volume = dead / "node" / "kubelet" / "pods" / "uid" / "volumes" / "tmpfs"
    volume.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(volume)], check=True)
    cgroup_root = f"/srl-e2e-test-{net.index}"
    make_cgroup_root(cgroup_root)
    container = subprocess.Popen(["sleep", "300"], start_new_session=True)
    for d in cgroup_dirs(cgroup_root):
        (d / "cgroup.procs").write_text(str(container.pid))
    sysctl = Path("/proc/sys") / SYSCTL
    original = sysctl.read_text().strip()
    changed = "10" if original != "10" else "11"
    sysctl.write_text(changed)
    state_root = tmp_path / "state"
    record = Record(
        owner_pid=_dead_pid(),
        workdir=str(dead),
        netns=str(net.netns),
        host_if=net.host_if,
        cgroup_root=cgroup_root,
        containerd_socket=str(dead / "node" / "containerd.sock"),
        containerd_state=str(dead / "node" / "containerd-state"),
        cni_network="srl-e2e-test",
        sysctls={SYSCTL: original},
        pids=[holder.pid],
    )
    record.save(state_root / "runs" / f"{record.owner_pid}-{net.index}.json")

    node = RealNode(tmp_path / "next-run", BIN, state_root=state_root)
    try:
        node.prepare()
        assert sysctl.read_text().strip() == original
        assert not alive(holder.pid) and not alive(container.pid)
        mounts = mountpoints()
        assert str(volume) not in mounts and str(net.netns) not in mounts
        assert not _link_exists(net.host_if)
        assert not any(d.exists() for d in cgroup_dirs(cgroup_root))
        assert not dead.exists()  # the dead run's temp dir, once nothing is mounted there
        assert list((state_root / "runs").glob(f"{record.owner_pid}-*")) == []
        assert _link_exists(node.network.host_if)  # the new run's own network is up
    finally:
        node.release()
        for proc in (holder, container):
            proc.kill()
            proc.wait()
        sysctl.write_text(original)
        subprocess.run(["umount", str(volume)], capture_output=True)
        subprocess.run(["umount", str(net.netns)], capture_output=True)
        for d in cgroup_dirs(cgroup_root):
            if d.exists():
                d.rmdir()
    assert not _link_exists(node.network.host_if)
