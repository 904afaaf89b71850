"""How a target's URL is pointed at its SSH forward, read back by the engine's own driver: the Unix
socket for a driver that will not speak TLS, the relay's loopback port for one that may (the
tunnels themselves are tested against a real sshd in tests/integration/test_ssh_tunnel.py)."""

from __future__ import annotations

import inspect

from pathlib import Path

import pytest
from asyncpg.connect_utils import _parse_connect_dsn_and_args
from pymongo.uri_parser import parse_uri
from redis.asyncio.connection import UnixDomainSocketConnection, parse_url

from checks.connectors.probe import address
from checks.engines import adapter_for
from checks.tunnels import Tunnel

SOCKETS = Path("/tmp/dbvitals-ssh-abc123")


def socket_url(kind: str, url: str, path: Path) -> str:
    direct = adapter_for(kind).socket_url(url, path)
    assert direct is not None, url
    return direct


def may_use_tls(kind: str, url: str) -> bool:
    """The engine sends the URL to the tunnel's relay (TCP), not straight to the socket."""
    return adapter_for(kind).socket_url(url, SOCKETS / adapter_for(kind).socket_name(1)) is None


def _asyncpg(url: str) -> tuple[list, str, str | None, str]:
    """How asyncpg itself reads the URL. Its parser is private and gains keywords between releases
    (service, servicefile after 0.29): every one it takes but the DSN is given as None."""
    others = [name for name in inspect.signature(_parse_connect_dsn_and_args).parameters if name != "dsn"]
    addrs, params = _parse_connect_dsn_and_args(dsn=url, **dict.fromkeys(others))
    return addrs, params.user, params.password, params.database


def test_postgres_reaches_the_socket_as_a_directory_and_its_port_number():
    url = socket_url("postgres", "postgresql://app:p%40ss@db.internal:6432/orders?sslmode=disable",
                     SOCKETS / ".s.PGSQL.3")
    assert _asyncpg(url) == ([str(SOCKETS / ".s.PGSQL.3")], "app", "p@ss", "orders")


def test_redis_reaches_the_socket_with_its_logical_database():
    kwargs = parse_url(socket_url("redis", "redis://:p%40ss@cache.internal:6380/4?client_name=x", SOCKETS / "2.sock"))
    assert kwargs["connection_class"] is UnixDomainSocketConnection
    assert (kwargs["path"], kwargs["db"], kwargs["password"], kwargs["client_name"]) == (
        str(SOCKETS / "2.sock"), 4, "p@ss", "x")
    bare = parse_url(socket_url("redis", "redis://cache.internal", SOCKETS / "2.sock"))
    assert (bare["path"], "db" in bare, "password" in bare) == (str(SOCKETS / "2.sock"), False, False)


def test_mongodb_reaches_the_socket_as_an_encoded_path():
    parsed = parse_uri(socket_url("mongodb", "mongodb://app:p%40ss@docs.internal:27018/app?directConnection=true",
                                  SOCKETS / "1.sock"))
    assert parsed["nodelist"] == [(str(SOCKETS / "1.sock"), None)]
    assert (parsed["username"], parsed["password"], parsed["database"]) == ("app", "p@ss", "app")


@pytest.mark.parametrize(("kind", "url", "tls"), [
    ("postgres", "postgresql://db/x", True),  # prefer: TLS when the server offers it
    ("postgres", "postgresql://db/x?sslmode=require", True),
    ("postgres", "postgresql://db/x?sslmode=disable", False),
    ("redis", "redis://cache/0", False),
    ("redis", "rediss://cache/0", True),
    ("mongodb", "mongodb://docs/app", False),
    ("mongodb", "mongodb://docs/app?tls=true", True),
    ("mongodb", "mongodb://docs/app?tlsCAFile=/ca.pem", True),
    ("mongodb", "mongodb://docs/app?tls=false", False),
])
def test_only_a_url_that_cannot_use_tls_goes_to_the_socket_directly(kind, url, tls, monkeypatch):
    monkeypatch.delenv("PGSSLMODE", raising=False)
    assert may_use_tls(kind, url) is tls


def test_pgsslmode_counts_when_the_url_has_no_sslmode(monkeypatch):
    monkeypatch.setenv("PGSSLMODE", "disable")
    assert not may_use_tls("postgres", "postgresql://db/x")
    assert may_use_tls("postgres", "postgresql://db/x?sslmode=require")


def test_the_protocol_probe_never_treats_a_socket_path_as_a_host_name():
    assert address(socket_url("postgres", "postgresql://app@db/x?sslmode=disable", SOCKETS / ".s.PGSQL.1"), 5432) is None
    assert address(socket_url("mongodb", "mongodb://docs/app", SOCKETS / "1.sock"), 27017) is None
    assert address(socket_url("redis", "redis://cache/0", SOCKETS / "1.sock"), 6379) is None
    assert address("postgresql://app@db.internal:6432/x", 5432) == ("db.internal", 6432)


def test_a_dropped_tunnel_is_reopened_after_1_2_4_seconds_up_to_a_minute():
    tunnel = Tunnel("me@bastion", None, None, True, 5)
    delays = []
    for failures in range(9):
        tunnel._failures = failures
        delays.append(tunnel._delay())
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60]
