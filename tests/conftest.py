"""Shared fixtures. Real-server helpers live in tests/servers.py; keep fixtures here thin."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from servers import (
    FerretDBServer,
    RedisServer,
    ferretdb_server,
    find_ferretdb,
    find_redis_server,
    missing_binary,
)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh redis-server on a free loopback port (function scope: tests may restart it)."""
    binary = find_redis_server()
    if binary is None:
        missing_binary("redis-server")
    from servers import redis_server as start_redis

    with start_redis(binary) as server:
        yield server


@pytest.fixture(scope="session")
def mongo_server() -> Iterator[FerretDBServer]:
    """One FerretDB (MongoDB wire, SQLite backend) for the session; tests use their own databases."""
    binary = find_ferretdb()
    if binary is None:
        missing_binary("ferretdb")
    with ferretdb_server(binary) as server:
        yield server
