"""Aggregation (patterns, reservoirs, collapse, cluster merge) and the pure evaluate() of the
Redis checks, driven with plain facts."""

from __future__ import annotations

import dataclasses
import random

import pytest

from checks.config import config_from_dict
from checks.contract import Scope
from checks.model import FixSafety, Severity, TargetState, TargetStatus
from checks.redis._scan import (
    DatabaseScan, KeyspaceScan, PatternStats, PatternTable, Reservoir, _apportion, merge_databases, url_database,
)
from checks.redis.big_keys import BigKeys
from checks.redis._scan import BigKey
from checks.redis.fragmentation import Fragmentation, FragmentationFacts
from checks.redis.memory_policy import MemoryFacts, MemoryPolicy
from checks.redis.persistence import Persistence, PersistenceFacts
from checks.redis.security import Security, SecurityFacts, UserFacts, is_loopback
from checks.redis.ttl_coverage import TtlCoverage, human_seconds, nice_ceiling, pattern_evidence


def scope_for(check, **target):
    settings = config_from_dict({"targets": {"cache": {"kind": "redis", "url": "redis://10.0.0.5:6379", **target}}})
    config = settings.targets["cache"]
    status = TargetStatus("cache", "redis", TargetState.CONNECTED, url=config.masked_url)
    return Scope("cache", config, check.Options(**config.checks.get(check.id, {})), status)


def stats(pattern, keys, with_ttl, ttl=3600, kind="string"):
    rng = random.Random(0)
    result = PatternStats(pattern)
    for n in range(keys):
        result.add(f"{pattern}:{n}".encode(), kind, ttl if n < with_ttl else -1, 10, rng)
    return result


def keyspace(*patterns, db=0, scanned=None, total=None):
    database = DatabaseScan(db=db, keys_total=total or sum(p.keys for p in patterns))
    database.scanned = scanned or database.keys_total
    database.complete = scanned is None
    database.keys_at_start = database.keys_at_end = database.keys_total
    database.patterns = {p.pattern: p for p in patterns}
    return KeyspaceScan(databases=[database], source="redis://10.0.0.5:6379", db_selection="test")


# --- aggregation ---------------------------------------------------------------------------------

def test_pattern_stats_counts_spread_and_examples():
    s = stats("session:{uuid}", 200, 190, ttl=100)
    assert (s.keys, s.with_ttl, s.without_ttl) == (200, 190, 10)
    assert (s.ttl_min, s.ttl_median, s.ttl_max) == (100, 100, 100)
    assert len(s.ttl_sample) <= 101 and len(s.key_sample) == 16
    assert len(s.missing_ttl_examples) == 5 and s.main_type == "string"


def test_merge_is_the_sum_of_both_sides():
    rng = random.Random(1)
    a, b = stats("p", 100, 50, ttl=10), stats("p", 300, 300, ttl=99)
    a.merge(b, rng)
    assert (a.keys, a.with_ttl, a.ttl_min, a.ttl_max) == (400, 350, 10, 99)
    assert len(a.key_sample) == 16 and len(a.ttl_sample) == 101
    # each side in proportion: 300 of 350 TTLs are 99
    assert sum(1 for t in a.ttl_sample if t == 99) > 70


def test_cluster_masters_merge_per_pattern():
    rng = random.Random(2)
    node_a = DatabaseScan(db=0, keys_total=100, scanned=100, complete=True, patterns={"s:{id}": stats("s:{id}", 100, 90)})
    node_b = DatabaseScan(db=0, keys_total=50, scanned=50, complete=True,
                          patterns={"s:{id}": stats("s:{id}", 40, 40), "x": stats("x", 10, 0)})
    merged = merge_databases([node_a, node_b], rng)
    assert merged.keys_total == 150 and merged.complete
    assert merged.patterns["s:{id}"].keys == 140 and merged.patterns["s:{id}"].with_ttl == 130
    assert merged.patterns["x"].keys == 10


def test_reservoir_offer_many_equals_offering_one_by_one():
    one, many = Reservoir(16), Reservoir(16)
    rng_one, rng_many = random.Random(7), random.Random(7)
    items = list(range(5000))
    for item in items:
        one.offer(item, rng_one)
    for start in range(0, len(items), 333):  # batches that straddle the fill and the skips
        many.offer_many(items[start:start + 333], rng_many)
    assert (many.items, many.seen, many._next) == (one.items, one.seen, one._next)


def test_add_batch_equals_adding_key_by_key():
    keys = [f"s:{n}".encode() for n in range(300)]
    kinds = [b"string" if n % 7 else b"hash" for n in range(300)]
    ttls = [-1 if n % 11 == 0 else 100 + n for n in range(300)]
    lengths = [n % 5 for n in range(300)]
    one, batched = PatternStats("s:{id}"), PatternStats("s:{id}")
    rng_one, rng_batch = random.Random(3), random.Random(3)
    for key, kind, ttl, length in zip(keys, kinds, ttls, lengths):
        one.add(key, kind.decode(), ttl, length, rng_one)
    for start in range(0, 300, 128):
        end = start + 128
        batched.add_batch(keys[start:end], kinds[start:end], ttls[start:end], lengths[start:end], rng_batch)
    fields = ("keys", "with_ttl", "types", "ttl_min", "ttl_max", "length_total", "length_keys", "examples",
              "missing_ttl_examples")
    assert {f: getattr(batched, f) for f in fields} == {f: getattr(one, f) for f in fields}
    # The samples draw in another order (all TTLs, then all keys): same sizes, same population.
    assert len(batched.ttl_sample) == len(one.ttl_sample) and set(batched.ttl_sample) <= {t for t in ttls if t >= 0}
    assert len(batched.key_sample) == len(one.key_sample) and set(batched.key_sample) <= set(keys)


def test_lengths_not_read_leave_no_average_length():
    s = PatternStats("s:{id}")
    s.add_batch([b"s:1", b"s:2"], [b"string", b"string"], [-1, 5], None, random.Random(0))
    assert (s.keys, s.length_keys) == (2, 0)
    database = DatabaseScan(db=0, keys_total=2, scanned=2, complete=True, patterns={s.pattern: s})
    assert pattern_evidence(s, database)["avg_length"] is None


def test_too_many_patterns_collapse_into_name_placeholders():
    rng = random.Random(3)
    table = PatternTable(rng, max_patterns=50)
    for user in range(500):
        table.stats_for(f"user:u{user}x:profile").add(b"k", "hash", -1, 1, rng)
    assert len(table.patterns) <= 50
    assert table.patterns["user:{name}:profile"].keys >= 450
    assert sum(s.keys for s in table.patterns.values()) == 500


def test_scan_limit_is_apportioned_and_extrapolated():
    assert _apportion(None, [10, 20]) == [None, None]
    assert _apportion(100, [10, 20]) == [None, None]
    assert _apportion(30, [100, 200]) == [10, 20]
    database = DatabaseScan(db=0, keys_total=3000, scanned=1000)
    assert database.extrapolation == 3.0


@pytest.mark.parametrize(
    "url, db",
    [("redis://h:6379/3", 3), ("redis://h:6379", None), ("redis://h:6379/", None), ("redis://h/0?x=1", 0),
     ("unix:///tmp/r.sock?db=5", 5)],
)
def test_url_database(url, db):
    assert url_database(url) == db


@pytest.mark.parametrize("seconds, text", [(59, "59s"), (3600, "1h"), (5400, "1.5h"), (604800, "7d"), (None, None)])
def test_human_seconds(seconds, text):
    assert human_seconds(seconds) == text


def test_nice_ceiling():
    assert nice_ceiling(604790) == 604800 and nice_ceiling(3000) == 3600


# --- ttl-coverage ---------------------------------------------------------------------------------

def ttl_findings(*patterns, **target):
    check = TtlCoverage()
    return check.evaluate(keyspace(*patterns), scope_for(check, **target))


def test_mixed_pattern_is_a_forgotten_ttl_with_an_unsafe_fix():
    [finding] = ttl_findings(stats("session:{uuid}", 100, 96, ttl=604000))
    assert finding.severity is Severity.HIGH and finding.object == "session:{uuid}"
    assert finding.fix.safety is FixSafety.UNSAFE
    command = finding.fix.steps[0].command
    assert command["op"] == "expire-missing-ttl" and command["ttl_seconds"] == 604800 and command["batch"] == 500
    assert finding.fix.inverse[0].command["op"] == "persist-keys"


def test_no_ttl_at_all_with_an_ephemeral_name_is_medium_and_manual():
    [finding] = ttl_findings(stats("rate:{ip}", 40, 0))
    assert finding.severity is Severity.MEDIUM and finding.fix.safety is FixSafety.MANUAL
    assert "[[targets.cache.expect.ttl]]" in finding.message


@pytest.mark.parametrize(
    "pattern_stats",
    [
        stats("user:{id}:profile", 100, 0),  # persistent-looking data
        stats("session:{uuid}", 100, 100),  # every key has its TTL
        stats("session:{uuid}", 3, 0),  # too few keys for a heuristic
        stats("user:{id}", 100, 10),  # a few with TTL, on a non-ephemeral name: not judged
    ],
)
def test_healthy_or_undecidable_patterns_yield_nothing(pattern_stats):
    assert ttl_findings(pattern_stats) == []


def test_declared_rules_override_heuristics():
    expect = {"ttl": [{"pattern": "user:{id}", "max": "1h"}], "persistent": [{"pattern": "rate:*"}]}
    findings = ttl_findings(stats("user:{id}", 10, 5, ttl=7200), stats("rate:{ip}", 40, 0), expect=expect)
    assert {f.title.split(":")[0] for f in findings} == {"Keys without their declared TTL", "TTL longer than declared"}
    missing = next(f for f in findings if f.title.startswith("Keys without"))
    assert missing.fix.steps[0].command["ttl_seconds"] == 3600 and missing.evidence["rule"] == "user:{id}"


def test_persistent_keys_that_expire_are_flagged():
    [finding] = ttl_findings(stats("leaderboard:alltime", 1, 1), expect={"persistent": [{"pattern": "leaderboard:alltime"}]})
    assert finding.title.startswith("Keys declared persistent carry a TTL")


def test_extrapolated_counts_say_so():
    check = TtlCoverage()
    facts = keyspace(stats("session:{uuid}", 100, 90), scanned=100, total=1000)
    facts.scan_limit = 100
    [finding] = check.evaluate(facts, scope_for(check))
    assert "extrapolated from 100 of 1,000 keys" in finding.message
    assert finding.evidence["without_ttl_estimated"] == 100
    assert finding.fix.summary.startswith("EXPIRE the ~100 keys")


# --- big-keys ------------------------------------------------------------------------------------

def test_big_keys_biggest_first_with_a_remainder():
    check = BigKeys()
    facts = keyspace()
    facts.big_keys = {
        "zset": [BigKey(500_000, 0, "lb:weekly", "zset", 40_000_000), BigKey(20_000, 0, "lb:daily", "zset")],
        "string": [BigKey(5_000_000, 0, "blob", "string")],
    }
    facts.over_threshold = {"zset": 5, "string": 1}
    findings = check.evaluate(facts, scope_for(check, checks={"redis.big-keys": {"report_limit": 2}}))
    assert [f.object for f in findings] == ["lb:weekly", "blob", "redis://10.0.0.5:6379"]
    assert findings[0].severity is Severity.HIGH  # 50x the threshold
    assert findings[1].severity is Severity.MEDIUM
    assert "4 more big keys" == findings[2].title


# --- memory-policy ---------------------------------------------------------------------------------

def memory(**overrides):
    base = dict(maxmemory=1 << 30, policy="allkeys-lru", used_memory=100 << 20, keys=10_000, expires=9_000,
                evicted_keys=0, total_system_memory=8 << 30)
    return MemoryFacts(**{**base, **overrides})


@pytest.mark.parametrize(
    "facts, role, titles",
    [
        (memory(), "cache", set()),
        (memory(maxmemory=0, policy="noeviction"), "cache", {"Cache without maxmemory"}),
        (memory(maxmemory=0, policy="noeviction"), "store", set()),
        (memory(policy="noeviction"), None, {"noeviction with mostly expiring keys"}),
        (memory(policy="noeviction"), "store", set()),
        (memory(policy="volatile-lru", expires=100), "cache", {"volatile-lru with few keys to evict"}),
        (memory(used_memory=1000 << 20), "cache", set()),  # a full cache that evicts is fine
        (memory(used_memory=1000 << 20, policy="noeviction", expires=0), "store", {"Used memory near maxmemory"}),
    ],
)
def test_memory_policy(facts, role, titles):
    check = MemoryPolicy()
    found = check.evaluate(facts, scope_for(check, **({"role": role} if role else {})))
    assert {f.title for f in found} == titles


def fragmentation(**overrides):
    base = dict(used_memory=1 << 30, used_memory_rss=int(1.1 * (1 << 30)), ratio=1.1, wasted=100 << 20,
                allocator_ratio=1.05, allocator_wasted=50 << 20, allocator="jemalloc-5.3.0", activedefrag="no",
                defrag_running=0)
    return FragmentationFacts(**{**base, **overrides})


@pytest.mark.parametrize(
    "facts, title, fixed",
    [
        (fragmentation(), None, False),
        (fragmentation(ratio=2.5, wasted=500 << 20, allocator_ratio=1.8, allocator_wasted=400 << 20),
         "High memory fragmentation", True),
        # the gap is RSS overhead, not the allocator's: defragmentation would not help, so no fix
        (fragmentation(ratio=2.5, wasted=500 << 20, allocator_ratio=1.02), "High memory fragmentation", False),
        (fragmentation(ratio=2.5, wasted=500 << 20, allocator_ratio=1.8, activedefrag="yes"), "High memory fragmentation",
         False),
        (fragmentation(ratio=5.0, wasted=5 << 20), None, False),  # a small instance always looks fragmented
        (fragmentation(ratio=0.7, used_memory_rss=700 << 20), "Part of Redis's memory is swapped out", False),
        (fragmentation(ratio=0.7, used_memory=10 << 20, used_memory_rss=7 << 20), None, False),
    ],
)
def test_fragmentation(facts, title, fixed):
    check = Fragmentation()
    found = check.evaluate(facts, scope_for(check))
    assert [f.title for f in found] == ([title] if title else [])
    if fixed:
        assert found[0].fix.steps[0].command == ["CONFIG", "SET", "activedefrag", "yes"]
        assert found[0].fix.inverse[0].command == ["CONFIG", "SET", "activedefrag", "no"]
    elif found:
        assert found[0].fix is None


# --- persistence -----------------------------------------------------------------------------------

def persistence(**overrides):
    base = dict(save="3600 1 300 100", appendonly="yes", appendfsync="everysec", stop_writes_on_bgsave_error="yes",
                rdb_last_bgsave_status="ok", rdb_last_save_time=1000, rdb_changes_since_last_save=0, aof_enabled=True,
                aof_last_bgrewrite_status="ok", aof_last_write_status="ok", now=1060.0)
    return PersistenceFacts(**{**base, **overrides})


@pytest.mark.parametrize(
    "facts, role, expected",
    [
        (persistence(), "store", {}),
        (persistence(save="", appendonly="no", aof_enabled=False), "store", {"Data store without persistence": Severity.CRITICAL}),
        (persistence(appendonly="no", aof_enabled=False), "store", {"Data store with RDB snapshots only": Severity.MEDIUM}),
        (persistence(appendfsync="no"), "store", {"AOF without fsync": Severity.LOW}),
        (persistence(), "cache", {"AOF on a cache": Severity.LOW}),
        (persistence(appendonly="no", aof_enabled=False), "cache", {}),
        (persistence(rdb_last_bgsave_status="err"), None, {"Last background save failed": Severity.CRITICAL}),
        (persistence(rdb_last_bgsave_status="err", stop_writes_on_bgsave_error="no"), None,
         {"Last background save failed": Severity.HIGH}),
        (persistence(aof_last_write_status="err"), None, {"AOF writes are failing": Severity.CRITICAL}),
        (persistence(aof_last_bgrewrite_status="err"), None, {"Last AOF rewrite failed": Severity.HIGH}),
        (persistence(save=None, appendonly=None, aof_enabled=False), "store", {}),  # CONFIG unreadable: no claim
    ],
)
def test_persistence(facts, role, expected):
    check = Persistence()
    found = check.evaluate(facts, scope_for(check, **({"role": role} if role else {})))
    assert {f.title: f.severity for f in found} == expected


# --- security ---------------------------------------------------------------------------------------

ALL = {"FLUSHALL": True, "FLUSHDB": True, "CONFIG": True, "KEYS": True, "DEBUG": True}


def security(**overrides):
    base = dict(bind="0.0.0.0", port=6379, protected_mode="yes", enable_debug_command="no", url_host="10.0.0.5",
                acl=True, users=(UserFacts("default", True, False, "+@all ~* &*", dict(ALL)),), renamed={})
    return SecurityFacts(**{**base, **overrides})


@pytest.mark.parametrize("address, loopback", [("127.0.0.1", True), ("-::1", True), ("::1", True), ("0.0.0.0", False),
                                              ("10.1.2.3", False), ("*", False)])
def test_is_loopback(address, loopback):
    assert is_loopback(address) is loopback


@pytest.mark.parametrize(
    "facts, expected",
    [
        # The shared test server's shape: loopback, no password: not a finding.
        (security(bind="127.0.0.1 -::1", users=(UserFacts("default", True, True, "+@all", dict(ALL)),),
                  protected_mode="no"), {}),
        (security(port=0), {}),  # unix socket only
        (security(users=(UserFacts("default", True, True, "+@all", dict(ALL)),), protected_mode="no"),
         {"No password on a network-facing Redis": Severity.CRITICAL, "Protected mode off with no password": Severity.HIGH,
          "Dangerous commands open to user default": Severity.HIGH}),
        (security(users=(UserFacts("default", True, True, "+@all", dict(ALL)),)),
         {"No password on a network-facing Redis": Severity.MEDIUM, "Dangerous commands open to user default": Severity.HIGH}),
        (security(), {"Dangerous commands open to user default": Severity.MEDIUM}),
        (security(renamed=dict.fromkeys(ALL, True)), {}),
        (security(users=(UserFacts("default", True, False, "+@all -@dangerous", dict.fromkeys(ALL, False)),)), {}),
        (security(users=(UserFacts("default", False, True, "", dict(ALL)),)), {}),  # default user off
        (security(acl=False, users=(), requirepass_set=False, protected_mode="no"),
         {"No password on a network-facing Redis": Severity.CRITICAL, "Protected mode off with no password": Severity.HIGH}),
        (security(bind=None, port=None, url_host="127.0.0.1"), {}),  # CONFIG denied, loopback URL: cannot tell
    ],
)
def test_security(facts, expected):
    check = Security()
    found = check.evaluate(facts, scope_for(check))
    assert {f.title: f.severity for f in found} == expected


def test_dangerous_commands_fix_is_an_acl_change_with_its_inverse():
    check = Security()
    [finding] = check.evaluate(security(enable_debug_command="yes"), scope_for(check))
    assert finding.evidence["open_commands"] == ["FLUSHALL", "FLUSHDB", "CONFIG", "KEYS", "DEBUG"]
    assert finding.fix.safety is FixSafety.UNSAFE
    assert finding.fix.steps[0].command == ["ACL", "SETUSER", "default", "-flushall", "-flushdb", "-config", "-keys", "-debug"]
    assert finding.fix.inverse[0].command[3:] == ["+flushall", "+flushdb", "+config", "+keys", "+debug"]
    [legacy] = check.evaluate(security(acl=False, enable_debug_command=None), scope_for(check))
    assert legacy.fix.safety is FixSafety.MANUAL and legacy.fix.steps[0].command[0] == "rename-command"


# --- ttl-coverage: suggestions from evidence -------------------------------------------------------

def sampled(pattern, keys, with_ttl=0, ttls=None, idle=None, encoding=None, examples=None, kind="string"):
    """Pattern stats with TTLs drawn from `ttls` (cycled), idle times (or freqs) and encodings sampled."""
    rng = random.Random(0)
    result = PatternStats(pattern)
    names = examples or [f"{pattern}:{n}" for n in range(keys)]
    for n in range(keys):
        ttl = ttls[n % len(ttls)] if ttls and n < with_ttl else (3600 if n < with_ttl else -1)
        result.add(names[n % len(names)].encode(), kind, ttl, 1, rng)
    for value in idle or []:
        result.add_samples([64], [value], [encoding or "embstr"], rng)
    if encoding and not idle:
        result.add_samples([64] * 16, [-1] * 16, [encoding] * 16, rng)
    return result


def judged(*patterns, access="idle", uptime=30 * 86400, policy="noeviction", **target):
    check = TtlCoverage()
    facts = keyspace(*patterns)
    facts.access, facts.uptime_s, facts.maxmemory_policy = access, uptime, policy
    return {f.object: f for f in check.evaluate(facts, scope_for(check, **target))}


def expire_ttl(finding):
    return finding.fix.steps[0].command["ttl_seconds"] if finding.fix and finding.fix.steps else None


@pytest.mark.parametrize(
    "pattern, examples, bucket",
    [
        ("rate:vote:{id}:{date}", ["rate:vote:7:2026-05-01"], 86400),
        ("rate:vote:{id}:{date}", ["rate:vote:7:20260501"], 86400),
        ("stats:{date}", ["stats:2026-05"], 31 * 86400),
        ("rl:login:{date}:{id}", ["rl:login:2026-05-01:13", "rl:login:2026-05-01:07", "rl:login:2026-05-01:22"], 3600),
        ("rl:login:{date}:{id}", ["rl:login:2026-05-01:13", "rl:login:2026-05-01:07"], 86400),  # too few to tell
        ("votes:{date}:{id}", ["votes:2026-05-01:4", "votes:2026-05-01:12", "votes:2026-05-01:9"], 86400),  # ids
        ("hits:{date}", ["hits:2026-05-01T10:00"], 3600),
        ("hits:{date}", ["hits:2026-05-01T10:15"], 60),
        ("window:{ts}", ["window:1700006400"], 86400),
        ("event:{ts}", ["event:1700006417"], None),  # an event time, not a window
        ("hourly:{date}", ["hourly:2026-05-01"], 3600),
        ("session:{uuid}", ["session:x"], None),
    ],
)
def test_time_bucket_from_the_name_and_its_examples(pattern, examples, bucket):
    from checks.redis._patterns import time_bucket

    assert time_bucket(pattern, examples) == bucket


def test_a_day_bucket_gets_two_days_whatever_the_other_words_say():
    found = judged(sampled("rate:vote:{id}:{date}", 60, examples=["rate:vote:1:2026-05-01"]))
    finding = found["rate:vote:{id}:{date}"]
    assert expire_ttl(finding) == 172800  # not the hour "rate" used to suggest
    assert finding.fix.safety is FixSafety.UNSAFE and finding.severity is Severity.MEDIUM
    assert finding.evidence["suggestion_basis"]["bucket"] == "day"


def test_a_bucket_with_a_few_keys_is_judged_and_never_gets_less_than_its_floor():
    # 3 days of a fraud set: fewer keys than min_keys, still buckets; others' TTLs (1h) are below the floor.
    fraud = sampled("fraud:ips:{date}", 3, with_ttl=1, ttls=[3600], kind="set", examples=["fraud:ips:2026-05-01"])
    finding = judged(fraud)["fraud:ips:{date}"]
    assert expire_ttl(finding) == 172800 and finding.severity is Severity.HIGH


def test_a_bucket_whose_keys_carry_longer_ttls_keeps_their_p90():
    longer = sampled("rate:{id}:{date}", 100, with_ttl=90, ttls=[5 * 86400], examples=["rate:1:2026-05-01"])
    assert expire_ttl(judged(longer)["rate:{id}:{date}"]) == 7 * 86400  # 5d, rounded up


def test_mixed_pattern_suggests_the_p90_of_its_ttls_not_the_max():
    feeds = sampled("feed:{id}", 100, with_ttl=90, ttls=[30, 60, 90, 100, 110, 115, 118, 119, 120, 7200])
    finding = judged(feeds)["feed:{id}"]
    assert expire_ttl(finding) == 300  # p90 120 s, rounded up to 5 min; not the 2 h outlier, not 7 days
    basis = finding.evidence["suggestion_basis"]
    assert basis["ttl_p90_s"] == 120 and basis["ttl_max_s"] == 7200 and "p90" in finding.fix.notes


def test_counters_synced_elsewhere_are_evidence_with_a_manual_fix_and_no_expire():
    votes = sampled("post:votes:{id}", 300, encoding="int")
    finding = judged(votes)["post:votes:{id}"]
    assert finding.fix.safety is FixSafety.MANUAL and finding.fix.steps == ()
    assert finding.evidence["suggestion_basis"]["integer_values"] == 16
    # The same name holding text is not a counter: no finding (no short-lived word, no TTL anywhere).
    assert judged(sampled("post:votes:{id}", 300, encoding="embstr")) == {}


def test_single_keys_named_after_a_period_are_findings_without_an_expire():
    found = judged(sampled("leaderboard:daily", 1, kind="zset"), sampled("leaderboard:weekly", 1, kind="zset"),
                   sampled("leaderboard:alltime", 1, kind="zset"), sampled("flags:all", 1, kind="hash"))
    assert set(found) == {"leaderboard:daily", "leaderboard:weekly"}
    for finding in found.values():
        assert finding.fix.safety is FixSafety.MANUAL and finding.fix.steps == ()
    assert judged(sampled("leaderboard:daily", 1, with_ttl=1)) == {}  # with its TTL: fine


def test_declared_persistent_keys_are_never_given_a_ttl():
    persistent = {"persistent": [{"pattern": "leaderboard:*"}, {"pattern": "rate:vote:*"}, {"pattern": "feed:*"}]}
    found = judged(sampled("leaderboard:daily", 1), sampled("rate:vote:{id}:{date}", 60),
                   sampled("feed:{id}", 100), expect=persistent)
    assert found == {}
    # Declared persistent but expiring: the finding says so, and offers no EXPIRE of any kind.
    [expiring] = judged(sampled("feed:{id}", 100, with_ttl=90), expect=persistent).values()
    assert expiring.title.startswith("Keys declared persistent carry a TTL") and expiring.fix is None


def test_no_ttl_at_all_suggests_from_idle_times_unsafe_when_the_basis_is_firm():
    idle = [600 + 60 * n for n in range(50)]  # 10 min to ~59 min unread
    finding = judged(sampled("cache:post:{id}", 500, idle=idle))["cache:post:{id}"]
    p90 = finding.evidence["suggestion_basis"]["access_p90"]
    assert p90 == idle[44] and expire_ttl(finding) == 7200  # twice ~54 min, rounded up
    assert finding.fix.safety is FixSafety.UNSAFE and "OBJECT IDLETIME" in finding.fix.notes


@pytest.mark.parametrize(
    "idle, access, uptime, why",
    [
        ([600] * 10, "idle", 30 * 86400, "only 10 keys sampled"),
        ([3000] * 50, "idle", 3600, "the server has been up"),
        ([1] * 50, "idle", 30 * 86400, "within the last minute"),
        ([0] * 50, "freq", 30 * 86400, "LFU"),
        ([], "idle", 30 * 86400, "no key's idle time"),
    ],
)
def test_a_thin_idle_basis_makes_the_fix_manual(idle, access, uptime, why):
    finding = judged(sampled("cache:post:{id}", 500, idle=idle), access=access, uptime=uptime,
                     policy="allkeys-lfu" if access == "freq" else "noeviction")["cache:post:{id}"]
    assert finding.fix.safety is FixSafety.MANUAL
    assert any(why in reason for reason in finding.evidence["suggestion_basis"]["thin"])


def test_pattern_evidence_has_the_ttl_histogram_and_a_memory_error():
    rng = random.Random(0)
    s = PatternStats("s:{id}")
    ttls = [10, 3600, 3601, 86400, 90000, 604800, 700000, -1, -1]
    s.add_batch([f"s:{n}".encode() for n in range(9)], [b"string"] * 9, ttls, None, rng)
    assert s.ttl_histogram == {"<=1h": 2, "<=1d": 2, "<=1w": 2, ">1w": 1, "none": 2}
    s.add_samples([100, 140, 120], [-1] * 3, ["embstr"] * 3, rng)
    database = DatabaseScan(db=0, keys_total=9, scanned=9, complete=True, patterns={s.pattern: s},
                            keys_at_start=9, keys_at_end=9)
    evidence = pattern_evidence(s, database)
    assert evidence["memory_bytes_estimated"] == 1080 and 0 < evidence["memory_error_bytes"] < 1080
    assert evidence["counts"] == "exact"
    database.keys_at_end = 12
    assert pattern_evidence(s, database)["counts"] == "approximate (±3 keys in the database)"


# --- big-keys and memory-policy: what must stay --------------------------------------------------------

@pytest.mark.parametrize(
    "key, persistent, kind, says",
    [
        ("leaderboard:alltime", [], "keep-all", "cannot be trimmed"),
        ("lb:global", [], "keep-all", "cannot be trimmed"),
        ("leaderboard:season", ["leaderboard:season"], "keep-all", "Declared persistent"),
        ("leaderboard:weekly", [], "bounded", "ZREMRANGEBYRANK"),
        ("leaderboard:2026-05-01", [], "bounded", "ZREMRANGEBYRANK"),
        ("scores", [], "unknown", "if only its top N is read"),
    ],
)
def test_big_zset_advice_knows_an_all_time_board_cannot_be_trimmed(key, persistent, kind, says):
    check = BigKeys()
    facts = keyspace()
    facts.big_keys = {"zset": [BigKey(50_000, 0, key, "zset", 4_000_000)]}
    facts.over_threshold = {"zset": 1}
    scope = scope_for(check, expect={"persistent": [{"pattern": p} for p in persistent]})
    [finding] = check.evaluate(facts, scope)
    assert finding.evidence["kind"] == kind and says in finding.message
    if kind == "keep-all":
        assert "ZREMRANGEBYRANK key 0" not in finding.message and "UNLINK" not in finding.message


def mixed_keyspace():
    """Sessions and cache entries with TTLs; an all-time board, flags and counters without."""
    patterns = [sampled("session:{uuid}", 1000, with_ttl=1000), sampled("cache:post:{id}", 500, with_ttl=400),
                sampled("leaderboard:alltime", 1, kind="zset"), sampled("flags:all", 1, kind="hash"),
                sampled("post:votes:{id}", 300, encoding="int")]
    for p in patterns:
        p.add_samples([1000] * 4, [-1] * 4, [""] * 4, random.Random(0))
    return keyspace(*patterns)


def test_memory_policy_never_advises_allkeys_over_keys_that_must_stay():
    check = MemoryPolicy()
    facts = dataclasses.replace(memory(policy="allkeys-lru"), keyspace=mixed_keyspace())
    scope = scope_for(check, role="cache", expect={"persistent": [{"pattern": "leaderboard:*"}]})
    [finding] = check.evaluate(facts, scope)
    assert finding.title == "allkeys-lru can evict keys that must stay"
    assert finding.fix.steps[0].command == ["CONFIG", "SET", "maxmemory-policy", "volatile-lru"]
    stay = [m["pattern"] for m in finding.evidence["must_stay_patterns"]]
    assert stay[0] == "leaderboard:alltime" and set(stay) == {"leaderboard:alltime", "flags:all", "post:votes:{id}"}
    assert finding.evidence["disposable_keys_without_ttl"] == 100  # cache:post without TTL may go
    assert finding.evidence["memory_with_ttl_bytes"] > 0 and finding.evidence["memory_without_ttl_bytes"] > 0
    # noeviction with mostly expiring keys on the same keyspace: volatile-lru, not allkeys-lru
    facts = dataclasses.replace(memory(policy="noeviction"), keyspace=mixed_keyspace())
    [noeviction] = check.evaluate(facts, scope)
    assert noeviction.fix.steps[0].command[-1] == "volatile-lru" and "not allkeys-*" in noeviction.message
    # no maxmemory on a cache: the suggested policy is volatile-lru too
    facts = dataclasses.replace(memory(maxmemory=0, policy="noeviction"), keyspace=mixed_keyspace())
    [unbounded] = check.evaluate(facts, scope)
    assert ["CONFIG", "SET", "maxmemory-policy", "volatile-lru"] in [s.command for s in unbounded.fix.steps]


def test_memory_policy_allkeys_when_every_key_is_disposable():
    check = MemoryPolicy()
    only_cache = keyspace(sampled("cache:post:{id}", 500, with_ttl=400), sampled("session:{uuid}", 100, with_ttl=100))
    facts = dataclasses.replace(memory(policy="noeviction"), keyspace=only_cache)
    [finding] = check.evaluate(facts, scope_for(check, role="cache"))
    assert finding.fix.steps[0].command[-1] == "allkeys-lru"
    assert check.evaluate(dataclasses.replace(memory(), keyspace=only_cache), scope_for(check, role="cache")) == []
    # a pattern listed as disposable may be evicted too
    with_users = keyspace(sampled("cache:post:{id}", 500, with_ttl=400), sampled("user:{id}", 100))
    scope = scope_for(check, role="cache", checks={"redis.memory-policy": {"disposable": ["user:*"]}})
    assert check.evaluate(dataclasses.replace(memory(), keyspace=with_users), scope) == []


def test_a_bucket_nothing_says_is_disposable_gets_its_floor_in_a_manual_fix():
    stats_by_day = sampled("stats:signups:{date}", 30, examples=["stats:signups:2026-05-01"], kind="hash")
    finding = judged(stats_by_day)["stats:signups:{date}"]
    assert expire_ttl(finding) == 172800 and finding.fix.safety is FixSafety.MANUAL
    assert "declare them persistent" in finding.message
