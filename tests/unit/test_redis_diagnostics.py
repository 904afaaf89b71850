"""The pure evaluate() of redis.slowlog, redis.latency, redis.hot-keys, redis.replication,
redis.cluster and redis.memory-by-pattern, with reply shapes as Redis documents them."""

from __future__ import annotations

import random

import pytest

from checks.model import FixSafety, Severity
from checks.redis._scan import PatternStats
from checks.redis.cluster import Cluster, ClusterFacts, ClusterNode, parse_nodes
from checks.redis.hot_keys import HotKeys
from checks.redis.latency import Latency, LatencyEvent, LatencyFacts
from checks.redis.memory_by_pattern import MemoryByPattern
from checks.redis.replication import ReplicaLink, Replication, ReplicationFacts
from checks.redis.slowlog import Slowlog, SlowlogFacts, _entry, group_entries
from tests.unit.test_redis_evaluate import keyspace, scope_for


# --- slowlog --------------------------------------------------------------------------------------------

def test_slowlog_entries_parse_raw_and_as_redis_py_gives_them():
    raw = [14, 1700000000, 25000, [b"HGETALL", b"user:42:profile"], b"10.0.0.7:5000", b"web"]
    parsed = {"id": 14, "start_time": 1700000000, "duration": 25000, "command": b"HGETALL user:42:profile",
              "client_address": b"10.0.0.7:5000", "client_name": b"web"}
    assert _entry(raw) == _entry(parsed)
    assert _entry(raw).command == ["HGETALL", "user:42:profile"] and _entry(raw).client_name == "web"


def test_slowlog_groups_by_command_and_pattern_slowest_total_first():
    entries = [_entry([n, 1700000000 + n, us, cmd, b"", name]) for n, (us, cmd, name) in enumerate([
        (20_000, [b"HGETALL", b"user:1:profile"], b"web"),
        (30_000, [b"HGETALL", b"user:2:profile"], b"web"),
        (500_000, [b"KEYS", b"session:*"], b"cron"),
        (900_000, [b"EVAL_RO", b"...", b"0"], b"dbvitals"),  # ours
        (5_000, [b"GET", b"x"], b"web"),  # under slow_ms
    ])]
    groups = group_entries(entries, 10_000)
    assert [(g["command"], g["pattern"], g["count"]) for g in groups] == [
        ("KEYS", None, 1), ("HGETALL", "user:{id}:profile", 2)]
    check = Slowlog()
    [finding] = check.evaluate(SlowlogFacts(10_000, 128, 5, entries), scope_for(check))
    assert finding.severity is Severity.MEDIUM and finding.evidence["groups_total"] == 2


@pytest.mark.parametrize("threshold, title", [(10_000, None), (-1, "Slow log disabled"), (1_000_000, "Slow log threshold too high"),
                                              (None, None)])
def test_slowlog_threshold(threshold, title):
    check = Slowlog()
    found = check.evaluate(SlowlogFacts(threshold, 128, 0, []), scope_for(check))
    assert [f.title for f in found] == ([title] if title else [])


# --- latency ---------------------------------------------------------------------------------------------

def test_latency_events_above_the_threshold_by_family():
    check = Latency()
    facts = LatencyFacts(100, [LatencyEvent("fork", 1, 300, 1500), LatencyEvent("expire-cycle", 1, 40, 120),
                               LatencyEvent("command", 1, 20, 50)], "Dave, I have observed latency spikes...")
    found = {f.object: f for f in check.evaluate(facts, scope_for(check))}
    assert set(found) == {"latency:fork", "latency:expire-cycle"}
    assert found["latency:fork"].severity is Severity.HIGH and "fork()" in found["latency:fork"].message
    assert "jitter" in found["latency:expire-cycle"].message
    assert check.evaluate(LatencyFacts(None, [], None), scope_for(check)) == []  # CONFIG refused: no claim


# --- hot keys --------------------------------------------------------------------------------------------

def test_hot_keys_above_min_freq_hottest_first():
    check = HotKeys()
    facts = keyspace()
    facts.access, facts.maxmemory_policy = "freq", "allkeys-lfu"
    facts.databases[0].hot_keys = [(255, "post:42", "post:{id}"), (60, "feed:7", "feed:{id}"), (10, "x", "x")]
    [finding] = check.evaluate(facts, scope_for(check))
    assert [h["key"] for h in finding.evidence["hot_keys"]] == ["post:42", "feed:7"]
    facts.databases[0].hot_keys = [(10, "x", "x")]
    assert check.evaluate(facts, scope_for(check)) == []


# --- replication -----------------------------------------------------------------------------------------

def test_replication_on_a_master():
    check = Replication()
    healthy = ReplicationFacts("master", [ReplicaLink("10.0.0.2:6379", "online", 1000, 0)], master_offset=1000,
                               offset_growth=10_000, interval_s=1.0, backlog_size=1 << 20, backlog_active=True)
    assert check.evaluate(healthy, scope_for(check)) == []  # 1 MB holds 100 s of 10 kB/s
    busy = ReplicationFacts("master", [ReplicaLink("10.0.0.2:6379", "online", 1000, 30),
                                       ReplicaLink("10.0.0.3:6379", "wait_bgsave", 0, None)],
                            master_offset=50_000_000, offset_growth=2_000_000, interval_s=1.0, backlog_size=1 << 20)
    found = {f.title: f for f in check.evaluate(busy, scope_for(check))}
    assert set(found) == {"Replica 10.0.0.2:6379 lags", "Replica 10.0.0.3:6379 is not streaming (wait_bgsave)",
                          "Replication backlog too small for the write rate"}
    backlog = found["Replication backlog too small for the write rate"]
    assert backlog.evidence["backlog_covers_s"] == 0.5
    assert int(backlog.fix.steps[0].command[3]) >= 2 * 60 * 2_000_000 and backlog.fix.safety is FixSafety.SAFE


def test_replication_on_a_replica():
    check = Replication()
    assert check.evaluate(ReplicationFacts("slave", read_only="yes", link_status="up", last_io_s=1), scope_for(check)) == []
    found = check.evaluate(ReplicationFacts("slave", read_only="no", link_status="up", last_io_s=45), scope_for(check))
    assert [f.title for f in found] == ["Writable replica", "This replica has not heard from its master for a while"]


# --- cluster ---------------------------------------------------------------------------------------------

NODES = """\
e7d1eec 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460
67ed2db 127.0.0.1:30002@31002 master,fail - 1700000000 1700000000 2 connected 5461-10922
292f8b3 127.0.0.1:30003@31003 master - 0 1700000000 3 connected 10923-16383 [100->-e7d1eec]
6ec2392 :0@0 handshake - 0 0 0 disconnected
"""


def test_cluster_nodes_parse_and_judge():
    nodes = parse_nodes(NODES.encode())
    assert [(n.address, n.flags, n.slots) for n in nodes] == [
        ("127.0.0.1:30001", ["myself", "master"], 5461), ("127.0.0.1:30002", ["master", "fail"], 5462),
        ("127.0.0.1:30003", ["master"], 5461), ("0", ["handshake"], 0)]
    check = Cluster()
    info = {"cluster_state": "ok", "cluster_slots_assigned": "16384", "cluster_slots_ok": "10922"}
    found = {f.object: f for f in check.evaluate(ClusterFacts(True, info, nodes), scope_for(check))}
    assert set(found) == {"slots", "nodes:fail", "nodes:handshake"}
    assert found["slots"].severity is Severity.CRITICAL and found["nodes:fail"].severity is Severity.HIGH
    healthy = [ClusterNode("a", "h:1", ["master"], 16384)]
    ok = {"cluster_state": "ok", "cluster_slots_assigned": "16384", "cluster_slots_ok": "16384"}
    assert check.evaluate(ClusterFacts(True, ok, healthy), scope_for(check)) == []


def test_logical_databases_outside_a_cluster():
    check = Cluster()
    assert check.evaluate(ClusterFacts(False, databases={0: 10, 1: 0}), scope_for(check)) == []
    [finding] = check.evaluate(ClusterFacts(False, databases={0: 10, 4: 2, 9: 1}), scope_for(check))
    assert finding.title == "Keys in 3 logical databases"


# --- memory by pattern -----------------------------------------------------------------------------------

def test_memory_by_pattern_ranks_patterns_with_errors_and_histograms():
    rng = random.Random(0)
    big, small, unmeasured = PatternStats("feed:{id}"), PatternStats("flags:all"), PatternStats("lock:{id}")
    big.add_batch([f"feed:{n}".encode() for n in range(1000)], [b"list"] * 1000, [60] * 900 + [-1] * 100, None, rng)
    big.add_samples([4000 + n for n in range(50)], [-1] * 50, ["listpack"] * 50, rng)
    small.add_batch([b"flags:all"], [b"hash"], [-1], None, rng)
    small.add_samples([300], [-1], ["listpack"], rng)
    unmeasured.add_batch([b"lock:1"], [b"string"], [30], None, rng)
    check = MemoryByPattern()
    [finding] = check.evaluate(keyspace(big, small, unmeasured), scope_for(check))
    rows = finding.evidence["patterns"]
    assert [r["pattern"] for r in rows] == ["feed:{id}", "flags:all", "lock:{id}"]
    assert rows[0]["memory_bytes"] == round(4024.5 * 1000) and 0 < rows[0]["memory_error_bytes"] < 20_000
    assert rows[0]["ttl_histogram"] == {"<=1h": 900, "<=1d": 0, "<=1w": 0, ">1w": 0, "none": 100}
    assert rows[1]["memory_error_bytes"] == 0  # its one key was measured
    assert rows[2]["memory_bytes"] is None
    assert "feed:{id}" in finding.message and finding.severity is Severity.INFO
    assert check.evaluate(keyspace(), scope_for(check)) == []
