"""A keyspace shaped like a social app's, and the suggestion a careful engineer would make for
each pattern, with its basis; no key that must stay is ever in reach of a suggested EXPIRE."""

from __future__ import annotations

import re
import uuid

from checks.model import FixSafety, Severity
from tests import support

DAY = 86400


def seed_social_app(client) -> dict[str, set[bytes]]:
    """The keys, grouped by what must happen to them: `may_expire` are disposable keys without a
    TTL, `must_stay` never lose theirs."""
    pipe = client.pipeline(transaction=False)
    may_expire: set[bytes] = set()
    for n in range(300):  # sessions: 7-day TTLs set over the week; one write path forgot EX
        key = f"session:{uuid.uuid4()}"
        if n % 25 == 0:
            pipe.set(key, "u")
            may_expire.add(key.encode())
        else:
            pipe.set(key, "u", ex=(n % 7 + 1) * DAY - n)
    for user in range(40):  # a vote quota per user and day, never expired
        for day in ("2026-05-01", "2026-05-02"):
            pipe.set(f"rate:vote:{user}:{day}", 3)
            may_expire.add(f"rate:vote:{user}:{day}".encode())
    for user in range(100):  # feeds cached for 30-120 s; a few written without EX
        pipe.rpush(f"feed:{user}", "post:1", "post:2")
        if user % 10 == 0:
            may_expire.add(f"feed:{user}".encode())
        else:
            pipe.expire(f"feed:{user}", 30 + user % 91)
    for day in ("2026-05-01", "2026-05-02", "2026-05-03"):  # fraud sets by day
        pipe.sadd(f"fraud:ips:{day}", "10.0.0.1", "10.0.0.2")
        may_expire.add(f"fraud:ips:{day}".encode())
    must_stay: set[bytes] = set()
    for post in range(200):  # vote counters, synced to the database by a job
        pipe.incrby(f"post:votes:{post}", post % 50 + 1)
        must_stay.add(f"post:votes:{post}".encode())
    for user in range(50):
        pipe.hset(f"user:{user}:profile", mapping={"name": f"u{user}"})
        must_stay.add(f"user:{user}:profile".encode())
    pipe.hset("flags:all", mapping={"new_feed": 1, "dark_mode": 0})
    pipe.execute()
    for board in ("leaderboard:daily", "leaderboard:weekly", "leaderboard:alltime"):
        for chunk in range(0, 12_000, 3000):
            client.zadd(board, {f"user:{n}": n for n in range(chunk, chunk + 3000)})
    must_stay |= {b"flags:all", b"leaderboard:daily", b"leaderboard:weekly", b"leaderboard:alltime"}
    return {"may_expire": may_expire, "must_stay": must_stay}


def test_every_suggestion_is_the_careful_one_and_no_key_that_must_stay_is_at_risk(redis_db):
    keys = seed_social_app(redis_db.client)
    settings = support.settings_for(app={
        "kind": "redis", "url": redis_db.url, "role": "cache",
        "expect": {"persistent": [{"pattern": "leaderboard:alltime"}]},
    })
    report = support.run_report(settings, checks=["redis.ttl-coverage", "redis.big-keys", "redis.memory-policy",
                                                  "redis.memory-by-pattern"])
    assert report.errors == []
    ttl = {f.object: f for f in support.by_check(report.findings, "redis.ttl-coverage")}
    assert set(ttl) == {"session:{uuid}", "rate:vote:{id}:{date}", "feed:{id}", "fraud:ips:{date}",
                        "post:votes:{id}", "leaderboard:daily", "leaderboard:weekly"}

    def expire(obj):
        step = ttl[obj].fix.steps[0].command
        assert step["op"] == "expire-missing-ttl"
        return step["ttl_seconds"]

    # Sessions: the p90 of the TTLs the others carry (6-7 days left), rounded up: 7 days.
    assert expire("session:{uuid}") == 7 * DAY and ttl["session:{uuid}"].fix.safety is FixSafety.UNSAFE
    assert ttl["session:{uuid}"].evidence["suggestion_basis"]["kind"] == "ttl distribution"
    # A daily vote quota: 48 h, never the hour "rate" once suggested; fraud sets by day too, though only 3 keys.
    for bucketed in ("rate:vote:{id}:{date}", "fraud:ips:{date}"):
        assert expire(bucketed) == 2 * DAY and ttl[bucketed].evidence["suggestion_basis"]["bucket"] == "day"
    # A quota is disposable by its name; nothing says past fraud sets are: kept for investigations, maybe.
    assert ttl["rate:vote:{id}:{date}"].fix.safety is FixSafety.UNSAFE
    assert ttl["fraud:ips:{date}"].fix.safety is FixSafety.MANUAL
    # Feeds live 30-120 s: their p90 (~110 s) rounded up to 5 minutes, not 7 days.
    assert expire("feed:{id}") == 300
    # Counters synced elsewhere and boards reset per period: evidence and a manual fix, no EXPIRE at all.
    for manual in ("post:votes:{id}", "leaderboard:daily", "leaderboard:weekly"):
        assert ttl[manual].fix.safety is FixSafety.MANUAL and ttl[manual].fix.steps == ()
    assert ttl["post:votes:{id}"].evidence["suggestion_basis"]["integer_values"] > 0

    # No EXPIRE step reaches a key that must stay; together they reach every disposable key without a TTL.
    reached: set[bytes] = set()
    for finding in ttl.values():
        for step in finding.fix.steps if finding.fix else ():
            regex = re.compile(step.command["regex"])
            for key in redis_db.client.scan_iter(match=step.command["match"], count=1000):
                if regex.match(key.decode()) and redis_db.client.ttl(key) == -1:
                    reached.add(key)
    assert reached == keys["may_expire"] and not reached & keys["must_stay"]

    # Eviction: volatile-lru for a cache that holds keys which must stay, with the memory split as evidence.
    [policy] = support.by_check(report.findings, "redis.memory-policy")  # the shared server has no maxmemory
    assert ["CONFIG", "SET", "maxmemory-policy", "volatile-lru"] in [s.command for s in policy.fix.steps]
    stay = {m["pattern"] for m in policy.evidence["must_stay_patterns"]}
    assert {"leaderboard:alltime", "flags:all", "post:votes:{id}", "user:{id}:profile"} <= stay
    assert policy.evidence["memory_without_ttl_bytes"] > policy.evidence["memory_with_ttl_bytes"] > 0

    # Big boards: the all-time one is never trimmed, the weekly one may be.
    big = {f.object: f for f in support.by_check(report.findings, "redis.big-keys")}
    assert big["leaderboard:alltime"].evidence["kind"] == "keep-all"
    assert "ZREMRANGEBYRANK key 0" not in big["leaderboard:alltime"].message
    assert big["leaderboard:weekly"].evidence["kind"] == "bounded"

    # Memory by pattern: the boards lead, each estimate with its error and a TTL histogram.
    [memory] = support.by_check(report.findings, "redis.memory-by-pattern")
    rows = {r["pattern"]: r for r in memory.evidence["patterns"]}
    assert memory.evidence["patterns"][0]["pattern"].startswith("leaderboard:")
    assert rows["session:{uuid}"]["ttl_histogram"]["none"] == 12 and rows["session:{uuid}"]["memory_error_bytes"] >= 0
    assert memory.severity is Severity.INFO and memory.evidence["scan"]["counts"].startswith("exact")


def test_a_declared_ttl_that_contradicts_the_evidence_is_reported_not_applied(redis_db):
    """Issue #25 item 8: with expect.ttl on counters and on a fixed-name board, the fix set EXPIRE 1d."""
    keys = seed_social_app(redis_db.client)
    settings = support.settings_for(app={
        "kind": "redis", "url": redis_db.url, "role": "cache", "allow_fixes": True,
        "expect": {"ttl": [{"pattern": "post:votes:*", "max": "1d"}, {"pattern": "leaderboard:daily", "max": "1d"},
                           {"pattern": "leaderboard:alltime", "max": "30d"}, {"pattern": "session:*", "max": "7d"}]},
    })
    report = support.run_report(settings, checks=["redis.ttl-coverage"])
    assert report.errors == []
    ttl = {f.object: f for f in report.findings}
    for obj, evidence in (("post:votes:{id}", "counter"), ("leaderboard:daily", "fixed-name board"),
                          ("leaderboard:alltime", "all-time")):
        finding = ttl[obj]
        assert finding.title == f"Declared TTL contradicts the evidence: {obj}"
        assert finding.fix.safety is FixSafety.MANUAL and finding.fix.steps == ()
        basis = finding.evidence["suggestion_basis"]
        assert basis["evidence_kind"] == evidence and basis["declared"].startswith(f"the rule \"{obj.replace('{id}', '*')}\" declares")
        assert "Declared:" in finding.message and "Evidence:" in finding.message  # both sides shown
    # A declaration the evidence does not contradict still gets its EXPIRE.
    session = ttl["session:{uuid}"]
    assert session.fix.steps[0].command["ttl_seconds"] == 7 * DAY and session.severity is Severity.HIGH
    assert all(redis_db.client.ttl(k) == -1 for k in keys["must_stay"] - {b"flags:all"})


def test_streak_keys_without_a_ttl_are_found(redis_db):
    """Issue #25 item 9: user:streak:* keys (a streak lapses after a missed day) had no TTL and no finding."""
    pipe = redis_db.client.pipeline(transaction=False)
    for user in range(60):
        pipe.incrby(f"user:streak:{user}", user % 9 + 1)
    pipe.execute()
    settings = support.settings_for(app={"kind": "redis", "url": redis_db.url})
    report = support.run_report(settings, checks=["redis.ttl-coverage"])
    assert report.errors == []
    [streaks] = [f for f in report.findings if f.object == "user:streak:{id}"]
    assert "streak" in streaks.message and streaks.evidence["keys"] == 60


def test_the_same_keyspace_gives_the_same_findings_twice(redis_db):
    """For snapshots, diff and alerts a flickering finding is noise (issue #25 item 3)."""
    seed_social_app(redis_db.client)
    settings = support.settings_for(app={"kind": "redis", "url": redis_db.url, "role": "cache"})
    checks = ["redis.ttl-coverage", "redis.big-keys", "redis.memory-by-pattern"]
    first, second = (support.run_report(settings, checks=checks) for _ in range(2))
    assert first.errors == [] and first.findings

    def judged(report):  # remaining TTLs tick down between the runs: the judgement must not
        return [(f.id, f.severity, f.title, f.fix.safety if f.fix else None, f.fix.summary if f.fix else None)
                for f in report.findings]

    assert judged(first) == judged(second)
