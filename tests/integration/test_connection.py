"""The connection checks against real servers: healthy, refused, silent, wrong credentials."""

from __future__ import annotations

import socket

import pytest

from checks.model import Severity, TargetState
from tests import support


def _only_connection(report, engine: str):
    return support.by_check(report.findings, f"{engine}.connection")


def test_reachable_servers_have_no_connection_findings(pg_db, redis_db, mongo_db):
    settings = support.settings_for(
        pg={"kind": "postgres", "url": pg_db.url},
        cache={"kind": "redis", "url": redis_db.url},
        docs={"kind": "mongodb", "url": mongo_db.url},
    )
    report = support.run_report(settings, checks=["*.connection"])
    assert {t.name: t.state for t in report.targets} == {
        "pg": TargetState.CONNECTED, "cache": TargetState.CONNECTED, "docs": TargetState.CONNECTED,
    }
    assert all(t.server_version and t.latency_ms is not None for t in report.targets)
    assert report.findings == []
    assert report.errors == []
    assert {(c["target"], c["check"], c["outcome"]) for c in report.checks} == {
        ("pg", "postgres.connection", "ok"),
        ("cache", "redis.connection", "ok"),
        ("docs", "mongodb.connection", "ok"),
    }


@pytest.mark.parametrize(
    "kind, url",
    [
        ("postgres", "postgresql://postgres@127.0.0.1:{port}/postgres"),
        ("redis", "redis://127.0.0.1:{port}/0"),
        ("mongodb", "mongodb://127.0.0.1:{port}/app?directConnection=true"),
    ],
)
def test_refused_connection_is_one_critical_finding(kind, url):
    settings = support.settings_for(down={"kind": kind, "url": url.format(port=support.refused_port()), "timeout": 2})
    report = support.run_report(settings)
    assert report.targets[0].state is TargetState.REFUSED
    [finding] = report.findings
    assert finding.check == f"{kind}.connection"
    assert finding.severity is Severity.CRITICAL
    assert finding.title == "Connection refused"
    assert finding.evidence["state"] == "refused"
    # The rest of the target's checks were skipped, not run into errors.
    assert report.errors == []
    assert [c["check"] for c in report.checks] == [f"{kind}.connection"]


@pytest.mark.parametrize(
    "kind, url",
    [
        ("postgres", "postgresql://postgres@127.0.0.1:{port}/postgres"),
        ("redis", "redis://127.0.0.1:{port}/0"),
        ("mongodb", "mongodb://127.0.0.1:{port}/app?directConnection=true"),
    ],
)
def test_server_that_never_answers_is_a_timeout_not_a_hang(kind, url, silent_server):
    settings = support.settings_for(mute={"kind": kind, "url": url.format(port=silent_server.port), "timeout": 1})
    report = support.run_report(settings)
    assert report.duration_ms < 30_000  # not a hang; the bound leaves room for a loaded machine
    assert report.targets[0].state is TargetState.TIMEOUT, report.targets[0].error
    [finding] = report.findings
    assert finding.title == "No answer within the timeout"


def test_postgres_unknown_role_is_auth_failed(pg_server):
    url = support.with_path(pg_server.replace("postgres@", "no_such_role_dbv@"), "postgres")
    report = support.run_report(support.settings_for(pg={"kind": "postgres", "url": url}))
    assert report.targets[0].state is TargetState.AUTH_FAILED, report.targets[0].error
    assert report.findings[0].title == "Authentication failed"


def test_redis_wrong_password_is_auth_failed_and_password_is_never_shown(redis_db):
    user = support.unique("dbv_user")
    redis_db.client.acl_setuser(user, enabled=True, passwords=["+right-password"], commands=["+ping"])
    try:
        url = redis_db.url.replace("redis://", f"redis://{user}:wrong-s3cret-pw@")
        report = support.run_report(support.settings_for(cache={"kind": "redis", "url": url}))
        assert report.targets[0].state is TargetState.AUTH_FAILED, report.targets[0].error
        rendered = str(report.to_dict())
        assert "wrong-s3cret-pw" not in rendered
        assert f"{user}:***@" in report.targets[0].url
    finally:
        redis_db.client.acl_deluser(user)


def test_mongodb_wrong_password_is_auth_failed(tmp_path):
    import pymongo

    storage = str(tmp_path / "auth-data")
    open_server = support.SecantusServer(storage=storage)
    try:
        client = pymongo.MongoClient(open_server.uri, serverSelectionTimeoutMS=10000)
        client.admin.command("createUser", "dbv_admin", pwd="right-password", roles=["root"])
        client.close()
    finally:
        open_server.stop()
    secured = support.SecantusServer(storage=storage, extra=["--auth"])
    try:
        url = f"mongodb://dbv_admin:wrong-s3cret-pw@127.0.0.1:{secured.port}/admin?directConnection=true"
        report = support.run_report(support.settings_for(docs={"kind": "mongodb", "url": url, "timeout": 3}))
        assert report.targets[0].state is TargetState.AUTH_FAILED, report.targets[0].error
        assert "wrong-s3cret-pw" not in str(report.to_dict())

        good = url.replace("wrong-s3cret-pw", "right-password")
        report = support.run_report(support.settings_for(docs={"kind": "mongodb", "url": good, "timeout": 3}))
        assert report.targets[0].state is TargetState.CONNECTED
    finally:
        secured.stop()


def test_password_from_config_overrides_url_and_is_masked(redis_db):
    user = support.unique("dbv_user")
    redis_db.client.acl_setuser(user, enabled=True, passwords=["+from-config-pw"], commands=["+@all"], keys=["*"])
    try:
        url = redis_db.url.replace("redis://", f"redis://{user}:stale-pw@")
        settings = support.settings_for(cache={"kind": "redis", "url": url, "password": "from-config-pw"})
        report = support.run_report(settings, checks=["redis.connection"])
        assert report.targets[0].state is TargetState.CONNECTED
        assert "from-config-pw" not in str(report.to_dict()) and "stale-pw" not in str(report.to_dict())
    finally:
        redis_db.client.acl_deluser(user)


class ForeignServer:
    """A TCP server speaking another protocol: an HTTP server's 400, or an SSH banner."""

    REPLIES = {"http": b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
               "ssh": b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"}

    def __init__(self, protocol: str) -> None:
        import threading

        self.reply = self.REPLIES[protocol]
        self.banner_first = protocol == "ssh"
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(0.5)
                try:
                    if not self.banner_first:
                        conn.recv(1024)
                    conn.sendall(self.reply)
                    if self.banner_first:
                        conn.recv(1024)
                except OSError:
                    pass

    def close(self) -> None:
        self.stopping = True
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.mark.parametrize("protocol", ["http", "ssh"])
@pytest.mark.parametrize(
    "kind, url",
    [
        ("postgres", "postgresql://postgres@127.0.0.1:{port}/postgres"),
        ("redis", "redis://127.0.0.1:{port}/0"),
        ("mongodb", "mongodb://127.0.0.1:{port}/app?directConnection=true"),
    ],
)
def test_a_port_speaking_another_protocol_is_a_protocol_error(kind, url, protocol):
    server = ForeignServer(protocol)
    try:
        settings = support.settings_for(other={"kind": kind, "url": url.format(port=server.port), "timeout": 2})
        report = support.run_report(settings)
    finally:
        server.close()
    status = report.targets[0]
    assert status.state is TargetState.PROTOCOL_ERROR, (status.state, status.error)
    [finding] = report.findings
    assert finding.title == "Something else answers on this port" and finding.severity is Severity.CRITICAL


def test_tls_asked_of_a_plain_server_is_a_tls_error(pg_server, redis_db, mongo_db):
    mongo = mongo_db.url + ("&" if "?" in mongo_db.url else "?") + "tls=true"
    settings = support.settings_for(
        pg={"kind": "postgres", "url": support.with_path(pg_server, "postgres", "sslmode=require"), "timeout": 2},
        cache={"kind": "redis", "url": redis_db.url.replace("redis://", "rediss://"), "timeout": 2},
        docs={"kind": "mongodb", "url": mongo, "timeout": 2},
    )
    report = support.run_report(settings, checks=["*.connection"])
    states = {t.name: (t.state, t.error) for t in report.targets}
    assert all(state is TargetState.TLS_ERROR for state, _ in states.values()), states
    assert "the server answers plain" in states["cache"][1]


HOSTILE = {
    "ok": (TargetState.PROTOCOL_ERROR, "Something else answers on this port"),
    "garbage": (TargetState.PROTOCOL_ERROR, "Something else answers on this port"),
    "reset": (TargetState.RESET, "The server reset the connection"),
    "close": (TargetState.CLOSED, "The server closed the connection"),
}


@pytest.mark.parametrize("mode", list(HOSTILE))
@pytest.mark.parametrize(
    "kind, url",
    [
        ("postgres", "postgresql://postgres@127.0.0.1:{port}/postgres"),
        ("redis", "redis://127.0.0.1:{port}/0"),
        ("mongodb", "mongodb://127.0.0.1:{port}/app?directConnection=true"),
    ],
)
def test_a_hostile_server_gets_a_state_that_names_what_it_did(kind, url, mode):
    """+OK to everything, garbage bytes, an accept then RST (SO_LINGER 0), an accept then FIN:
    each a state naming what the server did, never a driver's attribute error or a bare errno."""
    server = support.HostileServer(mode)
    try:
        settings = support.settings_for(hostile={"kind": kind, "url": url.format(port=server.port), "timeout": 2})
        report = support.run_report(settings)
    finally:
        server.close()
    status = report.targets[0]
    state, title = HOSTILE[mode]
    assert status.state is state, (status.state, status.error)
    error = status.error or ""
    assert "attribute" not in error and "errno" not in error.lower() and " 104" not in error, error
    assert len(error) < 300, error
    if mode in {"reset", "close"}:
        assert f"127.0.0.1:{server.port}" in error, error
    [finding] = report.findings
    assert finding.title == title and finding.severity is Severity.CRITICAL
    assert report.errors == []
