"""redis.ttl-coverage and redis.big-keys against a real Redis, on a seeded keyspace."""

from __future__ import annotations

import contextlib
import uuid

import pytest

from checks.config import ConfigError
from checks.model import FixSafety, Severity
from checks.redis._patterns import key_in_pattern
from tests import support

SESSION_TTL = 7 * 86400


def seed_problems(client) -> None:
    """Sessions mostly with a TTL but a few written without; rate-limit and cache keys with no
    TTL at all; a declared-persistent leaderboard; a big sorted set and a big hash."""
    pipe = client.pipeline(transaction=False)
    sessions = [str(uuid.uuid4()) for _ in range(200)]
    for index, sid in enumerate(sessions):
        if index % 25 == 0:  # 8 of 200: the write path that forgot EX
            pipe.set(f"session:{sid}", "u")
        else:
            pipe.set(f"session:{sid}", "u", ex=SESSION_TTL - index)
    for user in range(40):
        pipe.set(f"rate:vote:{user}:2026-05-0{user % 9 + 1}", 3)
        pipe.set(f"cache:user:{user}", "{}")
    pipe.zadd("leaderboard:alltime", {f"player{n}": n for n in range(50)})
    for n in range(30):
        pipe.set(f"post:{n}:title", "hello")  # persistent data with no ephemeral name: never flagged
    pipe.execute()
    for chunk in range(0, 12_000, 2000):
        client.zadd("leaderboard:weekly", {f"member{n}": n for n in range(chunk, chunk + 2000)})
        client.hset("user:profiles", mapping={f"u{n}": "x" for n in range(chunk, chunk + 2000)})


def seed_healthy(client) -> None:
    pipe = client.pipeline(transaction=False)
    for _ in range(50):
        pipe.set(f"session:{uuid.uuid4()}", "u", ex=SESSION_TTL)
    for user in range(40):
        pipe.set(f"rate:vote:{user}:2026-05-0{user % 9 + 1}", 3, ex=86400)
        pipe.set(f"cache:user:{user}", "{}", ex=3600)
    pipe.zadd("leaderboard:alltime", {f"player{n}": n for n in range(50)})
    pipe.execute()


def target(redis_db, **extra):
    return support.settings_for(cache={"kind": "redis", "url": redis_db.url, "role": "cache", **extra})


def test_seeded_problems_yield_their_findings_with_evidence(redis_db):
    seed_problems(redis_db.client)
    settings = target(redis_db, expect={"persistent": [{"pattern": "leaderboard:alltime"}]})
    report = support.run_report(settings, checks=["redis.ttl-coverage", "redis.big-keys"])
    assert report.errors == []
    ttl = {f.object: f for f in support.by_check(report.findings, "redis.ttl-coverage")}
    # leaderboard:weekly: one key named after a period, without a TTL (leaderboard:alltime is declared persistent)
    assert set(ttl) == {"session:{uuid}", "rate:vote:{id}:{date}", "cache:user:{id}", "leaderboard:weekly"}

    session = ttl["session:{uuid}"]
    assert session.severity is Severity.HIGH
    assert session.evidence["keys"] == 200 and session.evidence["without_ttl"] == 8
    assert session.evidence["db"] == redis_db.index
    assert session.evidence["ttl_max_s"] <= SESSION_TTL and session.evidence["ttl_min_s"] > SESSION_TTL - 300
    assert len(session.evidence["examples_without_ttl"]) == 5
    assert all(key_in_pattern(k, "session:{uuid}") for k in session.evidence["examples_without_ttl"])
    assert session.evidence["memory_bytes_estimated"] > 0
    assert session.evidence["scan"]["complete"] is True
    assert session.evidence["scan"]["db_selection"] == f"db {redis_db.index}, named in the URL"
    fix = session.fix
    assert fix.safety is FixSafety.UNSAFE
    [step] = fix.steps
    assert step.command["op"] == "expire-missing-ttl"
    assert step.command["ttl_seconds"] == SESSION_TTL  # the siblings' longest TTL, rounded up to 7d
    assert step.command["match"] == "session:*" and step.command["db"] == redis_db.index
    assert "8 keys" in fix.summary and "7d" in fix.summary
    assert fix.inverse[0].command["op"] == "persist-keys"

    for pattern in ("rate:vote:{id}:{date}", "cache:user:{id}"):
        finding = ttl[pattern]
        assert finding.evidence["with_ttl"] == 0 and finding.evidence["keys"] == 40
        assert finding.evidence["ttl_histogram"]["none"] == 40
    # A day bucket: two days, whatever "rate" suggests; the basis (the bucket) is firm, so the fix is not manual.
    vote = ttl["rate:vote:{id}:{date}"]
    assert vote.fix.steps[0].command["ttl_seconds"] == 172800 and vote.fix.safety is FixSafety.UNSAFE
    assert vote.evidence["suggestion_basis"]["bucket"] == "day"
    # No TTL anywhere and idle times not read (this run's big-keys read lengths): a thin basis, a manual fix.
    assert ttl["cache:user:{id}"].fix.safety is FixSafety.MANUAL
    assert ttl["cache:user:{id}"].evidence["suggestion_basis"]["thin"]
    weekly = ttl["leaderboard:weekly"]
    assert weekly.fix.safety is FixSafety.MANUAL and weekly.fix.steps == ()  # never an EXPIRE on a reused key
    assert session.evidence["counts"] == "exact" and session.evidence["ttl_histogram"]["none"] == 8

    big = {f.object: f for f in support.by_check(report.findings, "redis.big-keys")}
    assert set(big) == {"leaderboard:weekly", "user:profiles"}
    assert big["leaderboard:weekly"].evidence["length"] == 12_000
    assert big["leaderboard:weekly"].evidence["type"] == "zset"
    assert big["user:profiles"].evidence["type"] == "hash"
    assert big["user:profiles"].evidence["memory_bytes"] > 12_000


def test_declared_rule_overrides_heuristics(redis_db):
    seed_problems(redis_db.client)
    settings = target(
        redis_db,
        expect={
            "ttl": [{"pattern": "session:{sessionId}", "max": "1d"}, {"pattern": "rate:*", "max": "24h"}],
            "persistent": [{"pattern": "leaderboard:*"}, {"pattern": "cache:user:{userId}"}],
        },
    )
    report = support.run_report(settings, checks=["redis.ttl-coverage"])
    found = {(f.object, f.evidence.get("rule"), f.title.split(":")[0]) for f in report.findings}
    assert found == {
        ("session:{uuid}", "session:{sessionId}", "Keys without their declared TTL"),
        ("session:{uuid}", "session:{sessionId}", "TTL longer than declared"),
        ("rate:vote:{id}:{date}", "rate:*", "Keys without their declared TTL"),
    }
    missing = next(f for f in report.findings if f.object == "rate:vote:{id}:{date}")
    assert missing.fix.safety is FixSafety.UNSAFE
    assert missing.fix.steps[0].command["ttl_seconds"] == 86400


def test_healthy_keyspace_yields_nothing(redis_db):
    seed_healthy(redis_db.client)
    settings = target(redis_db, expect={"persistent": [{"pattern": "leaderboard:alltime"}]})
    report = support.run_report(settings, checks=["redis.ttl-coverage", "redis.big-keys"])
    assert report.errors == []
    assert report.findings == []


def test_scan_limit_extrapolates_and_says_so(redis_db):
    pipe = redis_db.client.pipeline(transaction=False)
    for n in range(3000):
        pipe.set(f"session:{uuid.uuid4()}", "u", ex=3600) if n % 10 else pipe.set(f"session:{uuid.uuid4()}", "u")
    pipe.execute()
    settings = target(redis_db, facts={"redis.keyspace": {"scan_limit": 1000, "throttle": 5000}})
    report = support.run_report(settings, checks=["redis.ttl-coverage"])
    [finding] = report.findings
    scan = finding.evidence["scan"]
    assert scan["complete"] is False and scan["scanned_keys"] == 1000 and scan["keys_total"] == 3000
    assert "extrapolated from 1,000 of 3,000 keys" in finding.message
    assert 150 <= finding.evidence["without_ttl_estimated"] <= 450
    assert scan["seconds"] >= 0.15  # 1000 keys at 5000 keys/s
    # A pass cut off at scan_limit did not look at every key: the check is partial and says which.
    [row] = report.checks
    assert row["outcome"] == "partial"
    [skipped] = row["skipped"]
    assert skipped["what"].endswith("2,000 of 3,000 keys not read") and "scan_limit = 1,000" in skipped["why"]


def test_one_pass_serves_both_checks(redis_db, monkeypatch):
    from checks.redis import _keyspace

    seed_healthy(redis_db.client)
    passes = []
    original = _keyspace.scan_keyspace

    async def counting(*args, **kwargs):
        passes.append(1)
        return await original(*args, **kwargs)

    monkeypatch.setattr(_keyspace, "scan_keyspace", counting)
    support.run_report(target(redis_db), checks=["redis.ttl-coverage", "redis.big-keys"])
    assert len(passes) == 1


def recording_passes(monkeypatch):
    """The KeyspaceScan of every pass that runs."""
    from checks.redis import _keyspace

    scans = []
    original = _keyspace.scan_keyspace

    async def recording(*args, **kwargs):
        scans.append(await original(*args, **kwargs))
        return scans[-1]

    monkeypatch.setattr(_keyspace, "scan_keyspace", recording)
    return scans


@pytest.mark.parametrize("scripting", [True, False], ids=["lua-page", "pipelined"])
def test_ttl_coverage_alone_reads_no_lengths(redis_db, monkeypatch, scripting):
    """Run alone, TTL coverage reads TYPE and TTL per key (no STRLEN/HLEN...), finds the same."""
    seed_problems(redis_db.client)
    scans = recording_passes(monkeypatch)
    with (scripting_denied(redis_db) if not scripting else contextlib.nullcontext(redis_db.url)) as url:
        settings = support.settings_for(cache={"kind": "redis", "url": url, "role": "cache"})
        report = support.run_report(settings, checks=["redis.ttl-coverage"])
    assert report.errors == []
    [scan] = scans
    assert scan.lengths_read is False and scan.big_keys == {}
    session = next(f for f in report.findings if f.object == "session:{uuid}")
    assert session.evidence["without_ttl"] == 8 and session.evidence["avg_length"] is None
    assert {f.object for f in report.findings} == {"session:{uuid}", "rate:vote:{id}:{date}", "cache:user:{id}",
                                                   "leaderboard:weekly"}


def test_default_run_reads_lengths_in_its_one_pass(redis_db, monkeypatch):
    seed_problems(redis_db.client)
    scans = recording_passes(monkeypatch)
    report = support.run_report(target(redis_db))  # every check, as `dbvitals check` runs them
    [scan] = scans
    assert scan.lengths_read is True
    session = next(f for f in report.findings if f.object == "session:{uuid}")
    assert session.evidence["avg_length"] == 1.0  # "u"
    assert {"leaderboard:weekly", "user:profiles"} <= {f.object for f in support.by_check(report.findings, "redis.big-keys")}


def test_big_keys_alone_reads_lengths_with_its_thresholds(redis_db, monkeypatch):
    """The fact reads lengths only for the checks that declared it in this run."""
    seed_problems(redis_db.client)
    scans = recording_passes(monkeypatch)
    settings = target(redis_db, checks={"redis.big-keys": {"zset_members": 10_000}})
    report = support.run_report(settings, checks=["redis.big-keys"])
    [scan] = scans
    assert scan.lengths_read is True
    assert scan.big_keys["zset"][0].key == "leaderboard:weekly"
    assert report.errors == []


def test_scan_options_under_the_check_are_refused(redis_db):
    """The pass's options moved to the fact: left under the check, they are a config error."""
    settings = target(redis_db, checks={"redis.ttl-coverage": {"scan_limit": 1000}})
    with pytest.raises(ConfigError, match='redis.ttl-coverage.*scan_limit: unknown option'):
        support.run_report(settings, checks=["redis.ttl-coverage"])


def test_replica_url_is_scanned_instead(redis_db):
    """The option names another server to read; here the same server on another db path."""
    seed_problems(redis_db.client)
    settings = target(redis_db, facts={"redis.keyspace": {"replica_url": redis_db.url}})
    report = support.run_report(settings, checks=["redis.ttl-coverage"])
    session = next(f for f in report.findings if f.object == "session:{uuid}")
    assert session.evidence["scan"]["replica"] is True


@contextlib.contextmanager
def scripting_denied(redis_db):
    """The URL of a user this test creates, denied EVAL (common for monitoring users)."""
    user = support.unique("dbv_noscript")
    redis_db.client.acl_setuser(user, enabled=True, passwords=["+pw-noscript"], commands=["+@all", "-@scripting"], keys=["*"])
    try:
        yield redis_db.url.replace("redis://", f"redis://{user}:pw-noscript@")
    finally:
        redis_db.client.acl_deluser(user)


def test_without_scripting_the_pipelined_pass_finds_the_same(redis_db):
    """A user denied EVAL (common for monitoring users) reads the keyspace with plain commands."""
    seed_problems(redis_db.client)
    with scripting_denied(redis_db) as url:
        settings = support.settings_for(cache={"kind": "redis", "url": url, "role": "cache"})
        report = support.run_report(settings, checks=["redis.ttl-coverage", "redis.big-keys"])
        assert report.errors == []
        objects = {f.object for f in report.findings}
        assert {"session:{uuid}", "rate:vote:{id}:{date}", "cache:user:{id}", "leaderboard:weekly", "user:profiles"} <= objects
        session = next(f for f in report.findings if f.object == "session:{uuid}")
        assert session.evidence["without_ttl"] == 8
        assert session.evidence["avg_length"] == 1.0


def test_many_pages_count_every_key_once_and_stop_at_the_limit(redis_db):
    """Small pages (SCAN COUNT 100), the next one always asked for before this one is counted: each
    key is counted once, and a scan limit stops mid-way with the page already asked for dropped."""
    pipe = redis_db.client.pipeline(transaction=False)
    for n in range(5000):
        pipe.set(f"session:{uuid.uuid4()}", "u", ex=None if n % 50 == 0 else 3600)
    pipe.execute()
    small_pages = {"facts": {"redis.keyspace": {"scan_count": 100}}}
    [whole] = support.run_report(target(redis_db, **small_pages), checks=["redis.ttl-coverage"]).findings
    assert whole.evidence["keys"] == 5000 and whole.evidence["without_ttl"] == 100
    assert whole.evidence["counts"] == "exact"
    limited = {"facts": {"redis.keyspace": {"scan_count": 100, "scan_limit": 1234}}}
    [part] = support.run_report(target(redis_db, **limited), checks=["redis.ttl-coverage"]).findings
    assert part.evidence["scan"]["scanned_keys"] == 1234 and part.evidence["scan"]["complete"] is False
