"""redis.memory-policy, redis.persistence and redis.security against private redis-server
processes started with the settings under test (the shared server is never reconfigured)."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis

from checks.config import config_from_dict
from checks.redis.connector import connect
from checks.contract import Scope
from checks.model import FixSafety, Severity
from checks.redis.security import Security
from tests import support


@contextmanager
def private_redis(tmp_path, *options: str) -> Iterator[str]:
    """A redis-server of this test's own on a free loopback port, with `options` on its command line."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed; run scripts/setup.sh", pytrace=False)
    port = support.free_port()
    data = tmp_path / f"redis-{port}"
    data.mkdir()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(data), *options]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        support.wait_for_port(port, process=process)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # a server whose shutdown save fails refuses SIGTERM
            process.kill()
            process.wait()


def report_for(url: str, check: str, **target):
    settings = support.settings_for(r={"kind": "redis", "url": url, **target})
    report = support.run_report(settings, checks=[check])
    assert report.errors == [], report.errors
    return report.findings


# --- memory-policy ----------------------------------------------------------------------------------

def test_cache_without_maxmemory(tmp_path):
    with private_redis(tmp_path) as url:
        [finding] = report_for(url, "redis.memory-policy", role="cache")
        assert finding.title == "Cache without maxmemory"
        assert finding.severity is Severity.HIGH
        assert finding.fix.safety is FixSafety.MANUAL
        assert finding.fix.steps[0].command[:3] == ["CONFIG", "SET", "maxmemory"]
        assert ["CONFIG", "SET", "maxmemory-policy", "noeviction"] in [s.command for s in finding.fix.inverse]
        assert report_for(url, "redis.memory-policy", role="store") == []


def test_noeviction_with_volatile_keys_and_near_maxmemory(tmp_path):
    with private_redis(tmp_path, "--maxmemory", "3mb", "--maxmemory-policy", "noeviction") as url:
        client = redis.Redis.from_url(url)
        pipe = client.pipeline(transaction=False)
        for n in range(300):
            pipe.set(f"cache:{n}", "x" * 64, ex=3600)
        pipe.execute()
        try:
            for n in range(10_000):
                client.set(f"blob:{n}", "y" * 1024, ex=3600)
        except redis.exceptions.OutOfMemoryError:
            pass
        findings = {f.title: f for f in report_for(url, "redis.memory-policy")}
        assert set(findings) == {"noeviction with mostly expiring keys", "Used memory near maxmemory"}
        noeviction = findings["noeviction with mostly expiring keys"]
        assert noeviction.evidence["ttl_share"] == 1.0
        assert noeviction.fix.steps[0].command == ["CONFIG", "SET", "maxmemory-policy", "volatile-lru"]
        assert noeviction.fix.inverse[0].command == ["CONFIG", "SET", "maxmemory-policy", "noeviction"]
        assert findings["Used memory near maxmemory"].severity is Severity.HIGH
        assert "fail with OOM" in findings["Used memory near maxmemory"].message


def test_volatile_policy_with_few_ttl_keys(tmp_path):
    with private_redis(tmp_path, "--maxmemory", "64mb", "--maxmemory-policy", "volatile-lru") as url:
        client = redis.Redis.from_url(url)
        pipe = client.pipeline(transaction=False)
        for n in range(300):
            pipe.set(f"cache:user:{n}", "x")
        pipe.execute()
        [finding] = report_for(url, "redis.memory-policy", role="cache")
        assert finding.title == "volatile-lru with few keys to evict"
        assert finding.fix.safety is FixSafety.UNSAFE  # every key without a TTL is a cache entry
        assert finding.fix.steps[0].command == ["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]
        assert finding.evidence["must_stay_patterns"] == [] and finding.evidence["disposable_keys_without_ttl"] == 300
        [store] = report_for(url, "redis.memory-policy", role="store")
        assert store.fix.safety is FixSafety.MANUAL
        # Keys that are not named as a cache must stay: never advise allkeys-* over them.
        client.set("leaderboard:alltime", "x")
        [kept] = report_for(url, "redis.memory-policy", role="cache")
        assert kept.fix is None and "Do not switch to allkeys-lru" in kept.message
        assert kept.evidence["must_stay_patterns"][0]["pattern"] == "leaderboard:alltime"
        client.delete("leaderboard:alltime")
        client.config_set("maxmemory-policy", "allkeys-lru")
        assert report_for(url, "redis.memory-policy", role="cache") == []


def test_allkeys_policy_over_keys_that_must_stay_advises_volatile(tmp_path):
    """A mixed Redis: cache entries and sessions with TTLs beside an all-time leaderboard, flags and
    sessions written without one. allkeys-lru would evict those; volatile-lru cannot."""
    with private_redis(tmp_path, "--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru") as url:
        client = redis.Redis.from_url(url)
        pipe = client.pipeline(transaction=False)
        for n in range(400):
            pipe.set(f"cache:post:{n}", "x" * 200, ex=3600)
        for _ in range(50):
            pipe.set(f"session:{uuid.uuid4()}", "u")
        pipe.zadd("leaderboard:alltime", {f"user:{n}": n for n in range(500)})
        pipe.hset("flags:all", mapping={"beta": 1})
        pipe.execute()
        findings = report_for(url, "redis.memory-policy", role="cache",
                              expect={"persistent": [{"pattern": "leaderboard:alltime"}]})
        [finding] = [f for f in findings if f.title == "allkeys-lru can evict keys that must stay"]
        assert finding.fix.steps[0].command == ["CONFIG", "SET", "maxmemory-policy", "volatile-lru"]
        assert finding.fix.inverse[0].command == ["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]
        stay = finding.evidence["must_stay_patterns"]
        assert stay[0] == {**stay[0], "pattern": "leaderboard:alltime", "why": 'declared persistent ("leaderboard:alltime")'}
        assert {m["pattern"] for m in stay} == {"leaderboard:alltime", "flags:all", "session:{uuid}"}
        assert finding.evidence["memory_with_ttl_bytes"] > 0 and finding.evidence["memory_without_ttl_bytes"] > 0
        # Everything disposable: allkeys-lru is right, and nothing is reported.
        client.delete("leaderboard:alltime", "flags:all", *client.keys("session:*"))
        assert report_for(url, "redis.memory-policy", role="cache") == []


# --- persistence --------------------------------------------------------------------------------------

def test_store_without_persistence_is_critical_and_cache_is_fine(tmp_path):
    with private_redis(tmp_path) as url:
        [finding] = report_for(url, "redis.persistence", role="store")
        assert finding.title == "Data store without persistence"
        assert finding.severity is Severity.CRITICAL
        assert finding.fix.steps[0].command == ["CONFIG", "SET", "appendonly", "yes"]
        assert finding.fix.inverse[-1].command == ["CONFIG", "SET", "appendonly", "no"]
        assert report_for(url, "redis.persistence", role="cache") == []
        assert report_for(url, "redis.persistence") == []


def test_store_with_rdb_only_and_cache_with_aof(tmp_path):
    with private_redis(tmp_path, "--save", "3600 1") as url:
        [finding] = report_for(url, "redis.persistence", role="store")
        assert finding.title == "Data store with RDB snapshots only"
        assert finding.evidence["save"] == "3600 1"
    with private_redis(tmp_path, "--appendonly", "yes") as url:
        assert report_for(url, "redis.persistence", role="store") == []
        [finding] = report_for(url, "redis.persistence", role="cache")
        assert finding.title == "AOF on a cache" and finding.severity is Severity.LOW


@pytest.mark.parametrize("stop_writes, severity", [("no", Severity.HIGH), ("yes", Severity.CRITICAL)])
def test_failing_background_save(tmp_path, stop_writes, severity):
    """With stop-writes-on-bgsave-error yes the server also refuses CLIENT SETNAME (MISCONF):
    the connector then connects unnamed, so the failing save is still reported."""
    doomed = tmp_path / "doomed"
    doomed.mkdir()
    with private_redis(tmp_path, "--save", "3600 1", "--stop-writes-on-bgsave-error", stop_writes,
                       "--dir", str(doomed)) as url:
        client = redis.Redis.from_url(url)
        doomed.rmdir()  # the server's working directory: the snapshot has nowhere to go
        client.set("k", "v")
        client.bgsave()
        deadline = time.monotonic() + 10
        while client.info("persistence")["rdb_last_bgsave_status"] == "ok" and time.monotonic() < deadline:
            time.sleep(0.05)
        findings = {f.title: f for f in report_for(url, "redis.persistence", role="store")}
        failed = findings["Last background save failed"]
        assert failed.severity is severity  # with writes refused, the application is down
        assert failed.evidence["rdb_last_bgsave_status"] == "err"
        assert failed.evidence["rdb_changes_since_last_save"] >= 1


# --- security -----------------------------------------------------------------------------------------

def test_loopback_without_password_is_not_a_finding(tmp_path):
    with private_redis(tmp_path, "--protected-mode", "no") as url:
        assert report_for(url, "redis.security") == []


def _gather_security(url: str):
    async def go():
        settings = config_from_dict({"targets": {"r": {"kind": "redis", "url": url}}})
        target = settings.targets["r"]
        connection = await connect("r", target)
        try:
            scope = Scope("r", target, Security.Options(), connection.status)
            return await Security().gather(connection.session, scope), scope
        finally:
            await connection.close()

    return asyncio.run(go())


def test_security_reads_users_and_dangerous_commands_from_a_real_server(tmp_path):
    """Gathered from a private server (loopback), judged as if it were bound to every interface:
    exposing a password-less server for real is not something a test does."""
    with private_redis(tmp_path, "--protected-mode", "no") as url:
        admin = redis.Redis.from_url(url)
        admin.acl_setuser("app", enabled=True, passwords=["+app-pw"], commands=["+@all", "-flushall", "-flushdb"], keys=["*"])
        app_url = url.replace("redis://", "redis://app:app-pw@")
        facts, scope = _gather_security(app_url)
        assert facts.bind == "127.0.0.1" and facts.protected_mode == "no" and facts.network_facing is False
        users = {u.name: u for u in facts.users}
        assert users["default"].nopass and users["default"].allowed["FLUSHALL"] is True
        assert users["app"].allowed == {"FLUSHALL": False, "FLUSHDB": False, "CONFIG": True, "KEYS": True, "DEBUG": True}
        assert Security().evaluate(facts, scope) == []

        exposed = dataclasses.replace(facts, bind="0.0.0.0")
        findings = {f.title: f for f in Security().evaluate(exposed, scope)}
        assert findings["No password on a network-facing Redis"].severity is Severity.CRITICAL
        assert findings["Protected mode off with no password"].fix.steps[0].command == ["CONFIG", "SET", "protected-mode", "yes"]
        app = findings["Dangerous commands open to user app"]
        assert app.evidence["open_commands"] == ["CONFIG", "KEYS"]  # DEBUG: enable-debug-command is off
        assert app.fix.steps[0].command == ["ACL", "SETUSER", "app", "-config", "-keys"]
        assert app.fix.inverse[0].command == ["ACL", "SETUSER", "app", "+config", "+keys"]
        assert "app-pw" not in str([f.to_dict() for f in findings.values()])

        # The fix, applied, silences the finding.
        admin.acl_setuser("app", enabled=True, commands=["-config", "-keys"])
        after, _ = _gather_security(app_url)
        titles = {f.title for f in Security().evaluate(dataclasses.replace(after, bind="0.0.0.0"), scope)}
        assert "Dangerous commands open to user app" not in titles, after
