"""Test-made "hosts": Linux network namespaces joined by a bridge, on a private /24.

Layout (everything named `srlt-<id>-*` / `srlt<id>h`, created by `NetLab.create`, removed by `destroy`):

    root namespace                 switch netns (srlt-<id>-sw)          host netns (srlt-<id>-<n>)
    srlt<id>h 10.213.X.1/24  ─veth─  svc ─┐                                 lo up
    (Redis, FerretDB bind here)           br0 ── h<n> ──────────veth────── eth0 10.213.X.(10+n)/24

The bridge lives in its own namespace so the root namespace's firewall (br_netfilter, Docker's
FORWARD DROP) never sees host-to-host traffic; servers stay in the root namespace on the one
address we add there, so the test process reaches them without entering a namespace. Only the
namespaces, links and the one address made here are touched.
"""

from __future__ import annotations

import ipaddress
import os
import random
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "srlt"
HOST_OFFSET = 10  # host n gets .10+n; .1 is the services address in the root namespace


class NetnsUnavailable(RuntimeError):
    """This process may not create network namespaces (not root, no CAP_SYS_ADMIN, a sandbox...)."""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `ip ARGS`; raise with its stderr on failure when `check`."""
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip() or proc.returncode}")
    return proc


def netns_unavailable_reason() -> str | None:
    """None when namespaces, veths and bridges can be made here; otherwise why not."""
    probe = f"{PREFIX}-probe-{secrets.token_hex(3)}"
    try:
        made = ip("netns", "add", probe, check=False)
    except (FileNotFoundError, subprocess.TimeoutExpired) as err:
        return f"cannot run `ip netns`: {err}"
    if made.returncode != 0:
        return f"`ip netns add` is not permitted: {made.stderr.strip()}"
    try:
        link = ip("-n", probe, "link", "add", "br0", "type", "bridge", check=False)
        if link.returncode != 0:
            return f"cannot create a bridge in a namespace: {link.stderr.strip()}"
        veth = ip("-n", probe, "link", "add", "a0", "type", "veth", "peer", "name", "b0", check=False)
        if veth.returncode != 0:
            return f"cannot create a veth pair: {veth.stderr.strip()}"
    finally:
        ip("netns", "del", probe, check=False)
    return None


def _networks_in_use() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network on an interface or in a route of the root namespace."""
    text = ip("-o", "-4", "addr", "show").stdout + ip("-4", "route", "show", "table", "all").stdout
    nets = []
    for token in re.findall(r"\b(\d+\.\d+\.\d+\.\d+(?:/\d+)?)\b", text):
        try:
            nets.append(ipaddress.ip_network(token, strict=False))
        except ValueError:
            continue
    return nets


def pick_subnet(attempts: int = 50) -> ipaddress.IPv4Network:
    """A random 10.213.X.0/24 that overlaps nothing configured on this machine."""
    used = _networks_in_use()
    for _ in range(attempts):
        net = ipaddress.ip_network(f"10.213.{random.randrange(1, 255)}.0/24")
        if not any(net.overlaps(u) for u in used):
            return net
    raise RuntimeError("no free 10.213.X.0/24 subnet")


@dataclass
class Host:
    """One namespace = one host, with its address on the lab's /24."""

    netns: str
    address: str

    def command(self, argv: list[str]) -> list[str]:
        """argv run inside this host's namespace."""
        return ["ip", "netns", "exec", self.netns, *argv]


@dataclass
class NetLab:
    """A bridge, `n_hosts` host namespaces and one services address in the root namespace."""

    n_hosts: int
    lab_id: str = field(default_factory=lambda: secrets.token_hex(3))
    subnet: ipaddress.IPv4Network | None = None
    hosts: list[Host] = field(default_factory=list)
    _made_netns: list[str] = field(default_factory=list)
    _made_links: list[str] = field(default_factory=list)

    @property
    def switch(self) -> str:
        return f"{PREFIX}-{self.lab_id}-sw"

    @property
    def services_link(self) -> str:
        return f"{PREFIX}{self.lab_id}h"  # 11 chars: link names are limited to 15

    @property
    def services_address(self) -> str:
        """Where servers for the hosts listen (in the root namespace)."""
        assert self.subnet is not None
        return str(self.subnet.network_address + 1)

    def create(self) -> None:
        """Make the switch, the services link and every host; on any error, undo what was made."""
        self.subnet = self.subnet or pick_subnet()
        try:
            self._make_switch()
            self._make_services_link()
            for n in range(self.n_hosts):
                self.hosts.append(self._make_host(n))
        except BaseException:
            self.destroy()
            raise

    def _add_netns(self, name: str) -> None:
        ip("netns", "add", name)
        self._made_netns.append(name)
        ip("-n", name, "link", "set", "lo", "up")

    def _make_switch(self) -> None:
        self._add_netns(self.switch)
        ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        ip("-n", self.switch, "link", "set", "br0", "up")

    def _plug(self, port: str) -> None:
        ip("-n", self.switch, "link", "set", port, "master", "br0")
        ip("-n", self.switch, "link", "set", port, "up")

    def _make_services_link(self) -> None:
        assert self.subnet is not None
        ip("link", "add", self.services_link, "type", "veth", "peer", "name", "svc", "netns", self.switch)
        self._made_links.append(self.services_link)
        self._plug("svc")
        ip("addr", "add", f"{self.services_address}/{self.subnet.prefixlen}", "dev", self.services_link)
        ip("link", "set", self.services_link, "up")

    def _make_host(self, n: int) -> Host:
        assert self.subnet is not None
        name = f"{PREFIX}-{self.lab_id}-{n}"
        self._add_netns(name)
        ip("-n", name, "link", "add", "eth0", "type", "veth", "peer", "name", f"h{n}", "netns", self.switch)
        self._plug(f"h{n}")
        address = str(self.subnet.network_address + HOST_OFFSET + n)
        ip("-n", name, "addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", "eth0")
        ip("-n", name, "link", "set", "eth0", "up")
        return Host(name, address)

    def destroy(self) -> list[str]:
        """Delete what create made (hosts, switch, services link); returns the errors, never raises."""
        errors = []
        for name in reversed(self._made_netns):
            res = ip("netns", "del", name, check=False)
            if res.returncode != 0 and "No such file" not in res.stderr:
                errors.append(f"netns {name}: {res.stderr.strip()}")
        for link in self._made_links:
            # Normally gone with its peer's namespace; delete only if it is still there.
            if ip("link", "show", link, check=False).returncode == 0:
                res = ip("link", "del", link, check=False)
                if res.returncode != 0:
                    errors.append(f"link {link}: {res.stderr.strip()}")
        self._made_netns.clear()
        self._made_links.clear()
        self.hosts.clear()
        return errors

    def can_connect(self, host: Host, address: str, port: int) -> bool:
        """Whether a TCP connection from inside `host` to address:port succeeds (no `ping` binary needed)."""
        code = f"import socket; socket.create_connection(({address!r}, {port}), timeout=5).close()"
        res = subprocess.run(host.command([sys.executable, "-c", code]), capture_output=True, timeout=30)
        return res.returncode == 0

    def spawn(self, host: Host, argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
        """Start argv inside `host` with output to `log`. `ip netns exec` execs argv, so the PID is argv's."""
        with open(log, "ab") as out:
            return subprocess.Popen(
                host.command(argv), stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env}
            )


@contextmanager
def net_lab(n_hosts: int) -> Iterator[NetLab]:
    """A created NetLab, destroyed on exit (also when the body fails)."""
    lab = NetLab(n_hosts)
    lab.create()
    try:
        yield lab
    finally:
        errors = lab.destroy()
        if errors:
            raise RuntimeError("network lab teardown: " + "; ".join(errors))
