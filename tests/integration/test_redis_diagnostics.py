"""redis.slowlog, redis.latency, redis.hot-keys and redis.fragmentation against private
redis-server processes started with the settings under test; slow commands and latency events
are provoked on purpose (DEBUG SLEEP, enabled only on these servers)."""

from __future__ import annotations

import random
import time

import redis

from checks.model import FixSafety, Severity
from tests.integration.test_redis_server_settings import private_redis, report_for

DEBUG = ("--enable-debug-command", "local")


# --- slowlog -------------------------------------------------------------------------------------------

def test_slow_commands_grouped_by_command_and_pattern_and_our_own_left_out(tmp_path):
    with private_redis(tmp_path, *DEBUG, "--slowlog-log-slower-than", "1000") as url:
        app = redis.Redis.from_url(url, client_name="app")
        assert report_for(url, "redis.slowlog", checks={"redis.slowlog": {"slow_ms": 1}}) == []  # nothing slow yet
        for n in range(3):
            app.sadd(f"fraud:ips:{n}", *[f"10.0.{i // 250}.{i % 250}" for i in range(60_000)])
        for n in range(3):
            app.smembers(f"fraud:ips:{n}")  # tens of ms each
        app.execute_command("DEBUG", "SLEEP", "0.15")
        ours = redis.Redis.from_url(url, client_name="dbvitals")
        ours.execute_command("DEBUG", "SLEEP", "0.3")  # dbvitals' own: never reported
        [finding] = report_for(url, "redis.slowlog", checks={"redis.slowlog": {"slow_ms": 1}})
        groups = {(g["command"], g["pattern"]): g for g in finding.evidence["groups"]}
        assert groups[("SMEMBERS", "fraud:ips:{id}")]["count"] == 3
        sleep = groups[("DEBUG SLEEP", None)]
        assert sleep["count"] == 1 and 150_000 <= sleep["max_us"] < 300_000  # only the application's
        assert finding.severity is Severity.MEDIUM  # 150 ms >= high_ms (100)
        assert "ms" in finding.title


def test_slowlog_disabled_is_a_finding_with_a_safe_fix(tmp_path):
    with private_redis(tmp_path, "--slowlog-log-slower-than", "-1") as url:
        [finding] = report_for(url, "redis.slowlog")
        assert finding.title == "Slow log disabled" and finding.fix.safety is FixSafety.SAFE
        assert finding.fix.steps[0].command == ["CONFIG", "SET", "slowlog-log-slower-than", "10000"]
        assert finding.fix.inverse[0].command == ["CONFIG", "SET", "slowlog-log-slower-than", "-1"]
        redis.Redis.from_url(url).config_set("slowlog-log-slower-than", 500_000)
        [high] = report_for(url, "redis.slowlog")
        assert high.title == "Slow log threshold too high" and high.severity is Severity.LOW


# --- latency --------------------------------------------------------------------------------------------

def test_latency_events_are_reported_with_their_cause(tmp_path):
    with private_redis(tmp_path, *DEBUG, "--latency-monitor-threshold", "10") as url:
        assert report_for(url, "redis.latency") == []  # monitor on, nothing recorded
        redis.Redis.from_url(url).execute_command("DEBUG", "SLEEP", "0.2")
        [finding] = report_for(url, "redis.latency")
        assert finding.object == "latency:command" and finding.severity is Severity.MEDIUM
        assert finding.evidence["max_ms"] >= 200 and "redis.slowlog" in finding.message
        assert finding.evidence["doctor"]  # Redis's own diagnosis travels with it


def test_latency_monitor_off(tmp_path):
    with private_redis(tmp_path) as url:
        [finding] = report_for(url, "redis.latency")
        assert finding.title == "Latency monitor off" and finding.fix.safety is FixSafety.SAFE
        assert finding.fix.inverse[0].command == ["CONFIG", "SET", "latency-monitor-threshold", "0"]


# --- hot-keys --------------------------------------------------------------------------------------------

def test_hot_keys_by_object_freq_under_lfu(tmp_path):
    # lfu-log-factor 0: every read counts, so 300 reads make a key as hot as the counter goes.
    with private_redis(tmp_path, "--maxmemory-policy", "allkeys-lfu", "--lfu-log-factor", "0") as url:
        client = redis.Redis.from_url(url)
        for n in range(200):
            client.set(f"post:{n}", "x")
        assert report_for(url, "redis.hot-keys") == []  # written once each: nothing hot
        for _ in range(300):
            client.get("post:42")
        for _ in range(80):
            client.get("post:7")
        [finding] = report_for(url, "redis.hot-keys")
        hot = finding.evidence["hot_keys"]
        assert [h["key"] for h in hot] == ["post:42", "post:7"]
        assert hot[0]["freq"] == 255 and hot[0]["pattern"] == "post:{id}"
        # The pass read OBJECT FREQ without touching the keys: a second run finds the same counters.
        assert report_for(url, "redis.hot-keys")[0].evidence["hot_keys"] == hot
        assert finding.evidence["freq_read"] == "every key"
        # A user denied scripting: the pipelined pass reads OBJECT FREQ on each pattern's sample of 16 keys,
        # here all of them.
        client.acl_setuser("noscript", enabled=True, passwords=["+pw"], commands=["+@all", "-@scripting"], keys=["*"])
        many = {"facts": {"redis.keyspace": {"sample_every": 0}}}
        client.delete(*[f"post:{n}" for n in range(14, 200) if n not in (42, 7)])
        [sampled] = report_for(url.replace("redis://", "redis://noscript:pw@"), "redis.hot-keys", **many)
        assert [h["key"] for h in sampled.evidence["hot_keys"]] == ["post:42", "post:7"]
        assert sampled.evidence["freq_read"] == "sampled keys"


def test_hot_keys_under_an_lru_policy_say_what_to_enable(tmp_path):
    with private_redis(tmp_path) as url:
        redis.Redis.from_url(url).set("post:1", "x")
        [finding] = report_for(url, "redis.hot-keys")
        assert finding.severity is Severity.INFO and "volatile-lfu" in finding.message
        assert report_for(url, "redis.hot-keys", checks={"redis.hot-keys": {"explain_when_off": False}}) == []


# --- fragmentation ---------------------------------------------------------------------------------------

def test_fragmentation_after_deleting_most_of_a_varied_dataset(tmp_path):
    with private_redis(tmp_path) as url:
        client = redis.Redis.from_url(url)
        assert report_for(url, "redis.fragmentation") == []  # default thresholds: a small server is fine
        rng = random.Random(5)
        pipe = client.pipeline(transaction=False)
        for n in range(30_000):
            pipe.set(f"blob:{n}", "x" * rng.randint(300, 3000))
            if n % 2000 == 1999:
                pipe.execute()
        pipe.execute()
        for start in range(0, 30_000, 2000):
            client.delete(*[f"blob:{n}" for n in range(start, start + 2000) if n % 5])  # 4 in 5 gone
        deadline = time.monotonic() + 10  # the server refreshes its RSS figures on its cron, not at once
        while client.info("memory")["mem_fragmentation_ratio"] < 1.5 and time.monotonic() < deadline:
            time.sleep(0.1)
        options = {"redis.fragmentation": {"min_bytes": 4 << 20}}
        [finding] = report_for(url, "redis.fragmentation", checks=options)
        assert finding.title == "High memory fragmentation"
        evidence = finding.evidence
        assert evidence["mem_fragmentation_ratio"] >= 1.5 and evidence["mem_fragmentation_bytes"] >= 4 << 20
        assert evidence["allocator_frag_ratio"] is not None and evidence["activedefrag"] == "no"
