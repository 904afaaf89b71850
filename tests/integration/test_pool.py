"""The pool checks against real servers: sessions and clients this test opens itself, URLs with
and without pool settings, and application pools that do not fit."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from collections.abc import Iterator

import pytest

from checks.model import Severity
from tests import support

PG_GOOD_PARAMS = "connect_timeout=10&keepalives=1&keepalives_idle=60&keepalives_interval=10&keepalives_count=6"
MONGO_GOOD_PARAMS = ("maxPoolSize=20&minPoolSize=0&timeoutMS=5000&serverSelectionTimeoutMS=5000"
                     "&connectTimeoutMS=5000&socketTimeoutMS=20000&waitQueueTimeoutMS=2000")
REDIS_GOOD_PARAMS = "socket_timeout=2&socket_connect_timeout=2"


def _with_params(url: str, params: str) -> str:
    return url + ("&" if "?" in url else "?") + params


def _pool_findings(report, engine: str):
    assert report.errors == [], report.errors
    return support.by_check(report.findings, f"{engine}.pool")


# --- PostgreSQL -----------------------------------------------------------------------------------


def test_postgres_idle_in_transaction_sessions_are_named_with_a_manual_fix(pg_db):
    import asyncpg

    app = support.unique("dbv_stuck")

    async def scenario():
        stuck = [await asyncpg.connect(pg_db.url, server_settings={"application_name": app}) for _ in range(2)]
        try:
            for conn in stuck:
                await conn.execute("BEGIN")
                await conn.execute("SELECT 1")
            await support.pg_until(pg_db.url, "SELECT bool_and(state = 'idle in transaction' AND clock_timestamp() "
                                   "- state_change > interval '1.1 s') FROM pg_stat_activity WHERE pid = ANY($1::int[])",
                                   [conn.get_server_pid() for conn in stuck])
            settings = support.settings_for(pg={
                "kind": "postgres", "url": _with_params(pg_db.url, PG_GOOD_PARAMS),
                "checks": {"postgres.pool": {"idle_in_transaction_warn": "1s"}},
            })
            report = await support.run_report_async(settings, checks=["postgres.pool"])
            pids = {conn.get_server_pid() for conn in stuck}
            # The check reports; it never terminates anything.
            still_open = [await conn.fetchval("SELECT 1") for conn in stuck]
            return report, pids, still_open
        finally:
            for conn in stuck:
                await conn.close()

    report, pids, still_open = asyncio.run(scenario())
    assert still_open == [1, 1]
    [finding] = [f for f in _pool_findings(report, "postgres") if f.object == f"database:{pg_db.name}"]
    assert finding.severity is Severity.MEDIUM
    assert {s["pid"] for s in finding.evidence["sessions"]} == pids
    assert {s["application_name"] for s in finding.evidence["sessions"]} == {app}
    assert all(s["state"] == "idle in transaction" and s["idle_s"] >= 1 for s in finding.evidence["sessions"])
    assert finding.fix.safety.value == "manual"
    assert all(str(pid) in finding.fix.steps[0].command for pid in pids)
    assert finding.fix.inverse[0].command == f'ALTER DATABASE "{pg_db.name}" RESET idle_in_transaction_session_timeout;'


def test_postgres_capacity_counts_sessions_per_application(pg_db):
    import asyncpg

    app = support.unique("dbv_many")
    extra = 12

    async def scenario():
        conns = [await asyncpg.connect(pg_db.url, server_settings={"application_name": app}) for _ in range(extra)]
        try:
            settings = support.settings_for(pg={
                "kind": "postgres", "url": _with_params(pg_db.url, PG_GOOD_PARAMS),
                # Thresholds low enough that this test's sessions alone cross them.
                "checks": {"postgres.pool": {"capacity_warn": 0.01, "capacity_critical": 1.0}},
            })
            return await support.run_report_async(settings, checks=["postgres.pool"])
        finally:
            for conn in conns:
                await conn.close()

    report = asyncio.run(scenario())
    [finding] = [f for f in _pool_findings(report, "postgres") if f.object == "max_connections"]
    assert finding.severity is Severity.MEDIUM
    max_connections, reserved = pg_db.fetch(
        "SELECT current_setting('max_connections')::int, current_setting('superuser_reserved_connections')::int"
    )[0]
    assert finding.evidence["usable"] == max_connections - reserved - finding.evidence["reserved_connections"]
    assert finding.evidence["in_use"] >= extra
    mine = [a for a in finding.evidence["by_application"] if a["application_name"] == app]
    assert mine == [{"application_name": app, "sessions": extra, "idle": extra}]


def test_postgres_url_without_client_settings_is_one_finding_per_setting(pg_db):
    report = support.run_report(support.settings_for(pg={"kind": "postgres", "url": pg_db.url}),
                                checks=["postgres.pool"])
    urls = {f.object: f for f in _pool_findings(report, "postgres") if f.object.startswith("url:")}
    assert set(urls) == {"url:connect_timeout", "url:keepalives_idle"}
    assert urls["url:connect_timeout"].evidence["recommended"] == "10"
    assert urls["url:connect_timeout"].severity is Severity.MEDIUM


def test_postgres_healthy_target_has_no_pool_findings(pg_db):
    settings = support.settings_for(pg={
        "kind": "postgres", "url": _with_params(pg_db.url, PG_GOOD_PARAMS),
        "app_pool": {"instances": 2, "max_size": 5},
    })
    report = support.run_report(settings, checks=["postgres.pool"])
    # Other engineers' sessions on the shared server are theirs to judge; nothing here is ours.
    assert [f for f in _pool_findings(report, "postgres") if not f.object.startswith("database:")
            or f.object == f"database:{pg_db.name}"] == []
    assert report.checks[0]["outcome"] in {"ok", "findings"}


def test_postgres_app_pool_that_exceeds_max_connections_is_high(pg_db):
    settings = support.settings_for(pg={
        "kind": "postgres", "url": _with_params(pg_db.url, PG_GOOD_PARAMS),
        "app_pool": {"instances": 50, "max_size": 20},
    })
    report = support.run_report(settings, checks=["postgres.pool"])
    [finding] = [f for f in _pool_findings(report, "postgres") if f.object == "app_pool"]
    assert finding.severity is Severity.HIGH
    assert finding.evidence["demand"] == 1000
    assert finding.evidence["arithmetic"].startswith("50 instances × 20 = 1000 connections > ")


# --- Redis ----------------------------------------------------------------------------------------


class PrivateRedis:
    """A redis-server of this test's own, for settings the shared server must not be given."""

    def __init__(self, *args: str) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.port = support.free_port()
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        support.wait_for_port(self.port, process=self.process)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis("--tcp-keepalive", "0", "--timeout", "0", "--maxclients", "24")
    try:
        yield server
    finally:
        server.stop()


def test_redis_long_idle_and_never_used_clients_under_timeout_0(private_redis):
    import redis

    used = [redis.Redis.from_url(private_redis.url, client_name="dbv_idle") for _ in range(5)]
    for client in used:
        client.ping()
    silent = [socket.create_connection(("127.0.0.1", private_redis.port)) for _ in range(3)]
    try:
        admin = redis.Redis.from_url(private_redis.url)
        # Idle for 2 s by the server's clock: the 5 used and 3 silent clients, not this one.
        assert support.wait_until(lambda: sum(int(c["idle"]) >= 2 for c in admin.client_list()) >= 8, timeout=30,
                                  step=0.1)
        admin.close()
        settings = support.settings_for(cache={
            "kind": "redis", "url": _with_params(private_redis.url, REDIS_GOOD_PARAMS),
            "checks": {"redis.pool": {"idle_client_age": "2s", "idle_clients_warn": 8}},
        })
        report = support.run_report(settings, checks=["redis.pool"])
    finally:
        for client in used:
            client.close()
        for sock in silent:
            sock.close()
    findings = {f.object: f for f in _pool_findings(report, "redis")}
    idle = findings["timeout"]
    assert idle.evidence["idle_clients"] == 8
    assert idle.evidence["never_used"] == 3
    assert {"name": "dbv_idle", "clients": 5} in idle.evidence["by_name"]
    assert idle.fix.steps[0].command == ["CONFIG", "SET", "timeout", "300"]
    assert idle.fix.inverse[0].command == ["CONFIG", "SET", "timeout", "0"]
    assert idle.fix.safety.value == "unsafe"
    # tcp-keepalive 0 on this server: a finding whose fix and inverse really work (on this private server only).
    keepalive = findings["tcp-keepalive"]
    admin = redis.Redis.from_url(private_redis.url, decode_responses=True)
    admin.execute_command(*keepalive.fix.steps[0].command)
    assert admin.config_get("tcp-keepalive") == {"tcp-keepalive": "300"}
    admin.execute_command(*keepalive.fix.inverse[0].command)
    assert admin.config_get("tcp-keepalive") == {"tcp-keepalive": "0"}
    admin.close()
    assert set(findings) == {"timeout", "tcp-keepalive"}


def test_redis_near_maxclients_and_rejected_connections(private_redis):
    import redis

    clients = []
    try:
        for _ in range(24):
            client = redis.Redis.from_url(private_redis.url)
            client.ping()
            clients.append(client)
        overflow = redis.Redis.from_url(private_redis.url)
        with pytest.raises(redis.ConnectionError):
            for _ in range(3):  # each attempt past maxclients is refused and counted
                overflow.ping()
        clients.pop().close()  # one slot for dbvitals
        assert support.wait_until(lambda: clients[0].info("clients")["connected_clients"] == 23, timeout=30)
        settings = support.settings_for(cache={"kind": "redis", "url": _with_params(private_redis.url, REDIS_GOOD_PARAMS)})
        report = support.run_report(settings, checks=["redis.pool"])
    finally:
        for client in clients:
            client.close()
    findings = {(f.object, f.title): f for f in _pool_findings(report, "redis")}
    capacity = findings[("maxclients", "Server connections nearly exhausted")]
    assert capacity.severity is Severity.HIGH
    assert capacity.evidence["maxclients"] == 24
    assert capacity.evidence["in_use"] >= 22
    rejected = findings[("maxclients", "Server has refused connections")]
    assert rejected.evidence["rejected_connections"] >= 1


def test_redis_url_without_socket_timeouts_and_with_them(redis_db):
    bare = support.run_report(support.settings_for(cache={"kind": "redis", "url": redis_db.url}),
                              checks=["redis.pool"])
    assert {f.object for f in _pool_findings(bare, "redis") if f.object.startswith("url:")} == {
        "url:socket_timeout", "url:socket_connect_timeout",
    }
    good = support.run_report(
        support.settings_for(cache={"kind": "redis", "url": _with_params(redis_db.url, REDIS_GOOD_PARAMS),
                                    "app_pool": {"instances": 4, "max_size": 10}}),
        checks=["redis.pool"],
    )
    assert _pool_findings(good, "redis") == []


def test_redis_app_pool_that_exceeds_maxclients_is_high(redis_db):
    settings = support.settings_for(cache={
        "kind": "redis", "url": _with_params(redis_db.url, REDIS_GOOD_PARAMS),
        "app_pool": {"instances": 200, "max_size": 100},
    })
    report = support.run_report(settings, checks=["redis.pool"])
    [finding] = _pool_findings(report, "redis")
    assert finding.object == "app_pool" and finding.severity is Severity.HIGH
    maxclients = int(redis_db.client.config_get("maxclients")["maxclients"])
    assert finding.evidence["arithmetic"] == f"200 instances × 100 = 20000 connections > {maxclients} usable"


def test_redis_config_denied_degrades_to_unknown(redis_db):
    user = support.unique("dbv_nocfg")
    redis_db.client.acl_setuser(user, enabled=True, passwords=["+nocfg-pw"], commands=["+@all", "-config"],
                                keys=["*"])
    try:
        url = _with_params(redis_db.url.replace("redis://", f"redis://{user}:nocfg-pw@"), REDIS_GOOD_PARAMS)
        report = support.run_report(support.settings_for(cache={"kind": "redis", "url": url}), checks=["redis.pool"])
    finally:
        redis_db.client.acl_deluser(user)
    [finding] = _pool_findings(report, "redis")
    assert finding.severity is Severity.INFO
    assert finding.object == "config"
    assert finding.evidence["unknown_settings"] == ["timeout", "tcp-keepalive"] or \
        finding.evidence["unknown_settings"] == ["maxclients", "timeout", "tcp-keepalive"]
    assert "nocfg-pw" not in str(report.to_dict())


# --- MongoDB --------------------------------------------------------------------------------------


def test_mongodb_bare_url_is_one_finding_per_default_and_capacity_unknown(mongo_db):
    report = support.run_report(support.settings_for(docs={"kind": "mongodb", "url": mongo_db.url}),
                                checks=["mongodb.pool"])
    findings = {f.object: f for f in _pool_findings(report, "mongodb")}
    assert set(findings) == {
        "connections", "url:maxPoolSize", "url:waitQueueTimeoutMS", "url:socketTimeoutMS",
        "url:serverSelectionTimeoutMS", "url:connectTimeoutMS",
    }
    # SecantusDB reports available = 0: unknown capacity, never "exhausted".
    assert findings["connections"].severity is Severity.INFO
    assert findings["connections"].title == "Connection capacity unknown"
    assert findings["url:waitQueueTimeoutMS"].severity is Severity.MEDIUM


def test_mongodb_url_with_every_setting_has_no_url_findings(mongo_db):
    settings = support.settings_for(docs={
        "kind": "mongodb", "url": _with_params(mongo_db.url, MONGO_GOOD_PARAMS),
        "app_pool": {"instances": 500},
    })
    report = support.run_report(settings, checks=["mongodb.pool"])
    [finding] = _pool_findings(report, "mongodb")
    assert finding.object == "connections" and finding.severity is Severity.INFO
    assert "budget cannot be judged" in finding.message
    assert finding.evidence["connections"]["current"] >= 1


def test_mongodb_url_with_min_pool_size_connects_and_its_pool_is_still_judged(mongo_db):
    """The MOBO reports recommend minPoolSize=10: dbvitals's own pool (maxPoolSize=1) drops it
    and connects, while mongodb.pool judges the application's settings as the URL gives them."""
    url = _with_params(mongo_db.url, MONGO_GOOD_PARAMS.replace("minPoolSize=0", "minPoolSize=10"))
    report = support.run_report(support.settings_for(docs={"kind": "mongodb", "url": url}),
                                checks=["mongodb.connection", "mongodb.pool"])
    assert report.errors == [], report.errors
    assert not support.by_check(report.findings, "mongodb.connection")
    [finding] = _pool_findings(report, "mongodb")
    assert finding.object == "connections"
    assert finding.evidence["client_settings"]["maxPoolSize"] == "20 (from the URL)"
