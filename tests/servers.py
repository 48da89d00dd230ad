"""Real servers for tests: redis-server and FerretDB (MongoDB wire, SQLite backend) on loopback.

Each server runs from a temp dir on a free port, bound to 127.0.0.1 (or to `host`, e.g. a bridge
address a test made), is waited for until it answers, and is stopped by its own PID. Binaries come
from scripts/install-test-servers.sh.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parent.parent
INSTALL_HINT = "run scripts/install-test-servers.sh"


def cache_dir() -> Path:
    """Where built test servers live (outside the repo)."""
    return Path(os.environ.get("SRL_CACHE", Path.home() / ".cache" / "srl-test"))


def find_redis_server() -> str | None:
    """Path of redis-server, or None."""
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None
    )


def find_ferretdb() -> str | None:
    """Path of the FerretDB binary built by the installer, or None."""
    built = cache_dir() / "bin" / "ferretdb"
    if os.access(built, os.X_OK):
        return str(built)
    return shutil.which("ferretdb")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, log: Path, timeout: float, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}; log:\n{_tail(log)}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"server did not listen on port {port} within {timeout}s; log:\n{_tail(log)}")


def _tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def _stop(proc: subprocess.Popen | None, timeout: float = 5.0) -> None:
    """Terminate exactly this process (by its PID), then kill it if it lingers."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


class _ServerProcess:
    """A server process on a free port of `host`, logging into `workdir`, stopped by PID."""

    log_name = "server.log"

    def __init__(self, binary: str, workdir: Path, host: str = "127.0.0.1") -> None:
        self.binary = binary
        self.workdir = workdir
        self.host = host
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log = workdir / self.log_name

    @property
    def pid(self) -> int | None:
        """PID of the running server."""
        return None if self.proc is None else self.proc.pid

    def start(self) -> None:
        """Start and wait until the server answers."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop by PID."""
        _stop(self.proc)
        self.proc = None


_S = TypeVar("_S", bound=_ServerProcess)


class RedisServer(_ServerProcess):
    """A redis-server without persistence; restart() keeps the port (and loses the data)."""

    log_name = "redis.log"

    @property
    def address(self) -> str:
        """host:port for RedisNameRecords."""
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        """Start and wait until it answers PING."""
        args = [
            self.binary, "--port", str(self.port), "--bind", self.host, "--save", "",
            "--appendonly", "no", "--dir", str(self.workdir), "--daemonize", "no",
            "--protected-mode", "no", "--logfile", str(self.log),
        ]  # fmt: skip
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        _wait_port(self.port, self.proc, self.log, timeout=10, host=self.host)
        self._wait_ping()

    def _wait_ping(self, timeout: float = 10) -> None:
        import redis

        deadline = time.monotonic() + timeout
        client = redis.Redis(host=self.host, port=self.port, socket_timeout=1)
        try:
            while True:
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.BusyLoadingError):
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        finally:
            client.close()

    def restart(self, downtime: float = 0.0) -> None:
        """Stop, stay down for `downtime` seconds, start again on the same port."""
        self.stop()
        time.sleep(downtime)
        self.start()


class FerretDBServer(_ServerProcess):
    """FerretDB v1 with its SQLite handler: a MongoDB-wire server with no other dependencies."""

    log_name = "ferretdb.log"

    @property
    def uri(self) -> str:
        """mongodb:// URI for pymongo."""
        return f"mongodb://{self.host}:{self.port}/"

    def start(self) -> None:
        """Start and wait until it answers ping."""
        data = self.workdir / "data"
        data.mkdir(exist_ok=True)
        args = [
            self.binary, "--handler=sqlite", f"--sqlite-url=file:{data}/",
            f"--listen-addr={self.host}:{self.port}", "--debug-addr=-",
            f"--state-dir={self.workdir}", "--telemetry=disable", "--log-level=warn",
        ]  # fmt: skip
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        _wait_port(self.port, self.proc, self.log, timeout=20, host=self.host)
        self._wait_ping()

    def _wait_ping(self, timeout: float = 20) -> None:
        import pymongo

        client = pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=int(timeout * 1000))
        try:
            client.admin.command("ping")
        finally:
            client.close()


@contextmanager
def _running(cls: type[_S], binary: str, host: str) -> Iterator[_S]:
    """A started `cls` server in a temp dir, stopped on exit (also when its readiness check fails)."""
    with tempfile.TemporaryDirectory(prefix=f"srl-{cls.log_name.split('.')[0]}-") as tmp:
        server = cls(binary, Path(tmp), host)
        try:
            server.start()
            yield server
        finally:
            server.stop()


@contextmanager
def redis_server(binary: str | None = None, host: str = "127.0.0.1") -> Iterator[RedisServer]:
    """A running RedisServer bound to `host`, stopped on exit."""
    binary = binary or find_redis_server()
    if binary is None:
        raise FileNotFoundError(f"redis-server not found; {INSTALL_HINT}")
    with _running(RedisServer, binary, host) as server:
        yield server


@contextmanager
def ferretdb_server(binary: str | None = None, host: str = "127.0.0.1") -> Iterator[FerretDBServer]:
    """A running FerretDBServer bound to `host`, stopped on exit."""
    binary = binary or find_ferretdb()
    if binary is None:
        raise FileNotFoundError(f"ferretdb not found in {cache_dir() / 'bin'}; {INSTALL_HINT}")
    with _running(FerretDBServer, binary, host) as server:
        yield server


def missing_binary(what: str) -> None:
    """Skip (locally) or fail (under CI) because a server binary is missing."""
    import pytest

    msg = f"{what} is not installed; {INSTALL_HINT}"
    if os.environ.get("CI"):
        pytest.fail(msg + " (CI is set, so a missing server is a failure)", pytrace=False)
    pytest.skip(msg)
