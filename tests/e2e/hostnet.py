"""The e2e node's own network namespace, joined to the host by one veth pair.

Everything the node does to networking — the pods' bridge and veths, kube-proxy's and the CNI
plugins' iptables chains, ip_forward, bridge-nf-call-iptables, route_localnet — happens inside this
namespace, so none of it touches the host's tables, and all of it disappears with the namespace.
The host side gets exactly three things, all removed by `destroy`: the veth's host end (with its
/30 address, where the apiserver listens), a route to the pod subnet through it, and the bind mount
that keeps the namespace alive (a file in the run's temp dir, not /run/netns).

Addresses, per run (N picked free on this host, so two runs never collide):
  10.199.N.1/30   host end: the apiserver's bind and advertise address
  10.199.N.2/30   node end (`eth0` in the namespace): node IP, kubelet, CoreDNS
  10.244.N.0/24   pod subnet on the node's bridge (gateway 10.244.N.1)
"""

from __future__ import annotations

import random
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

VETH_PREFIX = "srle2e"  # host end: srle2e<N>; interface names are at most 15 characters
BRIDGE = "srl-br0"  # the pods' bridge (inside the namespace)
NODE_IF = "eth0"  # the node end, inside the namespace


class NetworkError(RuntimeError):
    """The namespace or its veth could not be set up; the message names the failing command."""


def run(cmd: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise NetworkError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def _used_indexes() -> set[int]:
    """N values whose 10.199.N.x or 10.244.N.x addresses or srle2eN links exist on the host."""
    used: set[int] = set()
    out = run(["ip", "-o", "addr"]).stdout + run(["ip", "route"]).stdout
    for word in out.split():
        for prefix in ("10.199.", "10.244."):
            if word.startswith(prefix):
                part = word[len(prefix) :].split(".", 1)[0]
                if part.isdigit():
                    used.add(int(part))
    for line in run(["ip", "-o", "link"]).stdout.splitlines():
        name = line.split(":", 2)[1].strip().split("@", 1)[0]
        if name.startswith(VETH_PREFIX) and name[len(VETH_PREFIX) :].isdigit():
            used.add(int(name[len(VETH_PREFIX) :]))
    return used


@dataclass
class NodeNetwork:
    """A network namespace for one node; `create()` before the control plane starts."""

    workdir: Path
    index: int = 0  # N; 0 = pick a free one at create()
    created: bool = field(default=False, init=False)

    @property
    def netns(self) -> Path:
        """The namespace's bind mount: `nsenter --net=<this>` runs a command inside."""
        return Path(self.workdir) / "netns"

    @property
    def host_if(self) -> str:
        return f"{VETH_PREFIX}{self.index}"

    @property
    def host_ip(self) -> str:
        return f"10.199.{self.index}.1"

    @property
    def node_ip(self) -> str:
        return f"10.199.{self.index}.2"

    @property
    def pod_subnet(self) -> str:
        return f"10.244.{self.index}.0/24"

    @property
    def pod_gateway(self) -> str:
        return f"10.244.{self.index}.1"

    def nsenter(self) -> list[str]:
        """Command prefix that runs the rest inside the namespace (network only: the mount
        namespace stays the host's, so kubelet and containerd see each other's mounts)."""
        return ["nsenter", f"--net={self.netns}"]

    def exec(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([*self.nsenter(), *cmd], check=check)

    def create(self) -> None:
        if not self.index:
            free = sorted(set(range(1, 255)) - _used_indexes())
            if not free:
                raise NetworkError("no free 10.199.N.0/30 left on this host")
            self.index = random.choice(free)
        Path(self.workdir).mkdir(parents=True, exist_ok=True)
        self.netns.touch()
        self.created = True  # from here on destroy() has something to undo
        run(["unshare", f"--net={self.netns}", "true"])
        run(["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", NODE_IF,
             "netns", str(self.netns)])  # fmt: skip
        run(["ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_if])
        run(["ip", "link", "set", self.host_if, "up"])
        self.exec("ip", "link", "set", "lo", "up")
        self.exec("ip", "addr", "add", f"{self.node_ip}/30", "dev", NODE_IF)
        self.exec("ip", "link", "set", NODE_IF, "up")
        # Components that look for a default route (node IP detection) find one; nothing is
        # forwarded beyond the host (its ip_forward is left as it is).
        self.exec("ip", "route", "add", "default", "via", self.host_ip)
        # The host (tests, the apiserver) reaches pod IPs directly, e.g. to scrape metrics.
        run(["ip", "route", "add", self.pod_subnet, "via", self.node_ip, "dev", self.host_if])

    def destroy(self) -> None:
        """Delete the veth (both ends, and the host route with it) and release the namespace.

        Call after every process inside has stopped; the kernel frees the namespace, with the
        bridge, pod veths and iptables rules in it, when the last user goes."""
        if not self.created:
            return
        run(["ip", "link", "del", self.host_if], check=False)
        if self.netns.exists():
            run(["umount", str(self.netns)], check=False)
            self.netns.unlink(missing_ok=True)
        self.created = False
