"""redis.replication against a private master and a replica of it, started by the test."""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack

import redis

from checks.model import FixSafety, Severity
from tests.integration.test_redis_server_settings import private_redis, report_for


def wait_linked(replica_url: str) -> None:
    client = redis.Redis.from_url(replica_url)
    deadline = time.monotonic() + 30
    while client.info("replication").get("master_link_status") != "up":
        assert time.monotonic() < deadline, "the private replica never linked to its master"
        time.sleep(0.1)


def test_replica_and_master(tmp_path):
    with ExitStack() as stack:
        master_url = stack.enter_context(private_redis(tmp_path, "--repl-backlog-size", "16kb"))
        port = master_url.rsplit(":", 1)[1].split("/")[0]
        replica_url = stack.enter_context(private_redis(
            tmp_path, "--replicaof", "127.0.0.1", port, "--replica-read-only", "no"))
        wait_linked(replica_url)
        master = redis.Redis.from_url(master_url)
        master.set("user:1", "x")

        # A quiet master with an online replica: nothing to say.
        assert report_for(master_url, "redis.replication") == []

        # Writes of ~1 MB/s against a 16 kB backlog: it covers well under a minute.
        stop = threading.Event()

        def write() -> None:
            writer = redis.Redis.from_url(master_url)
            n = 0
            while not stop.is_set():
                writer.set(f"event:{n % 1000}", "y" * 10_000)
                n += 1
                time.sleep(0.01)

        thread = threading.Thread(target=write)
        thread.start()
        try:
            findings = report_for(master_url, "redis.replication")
        finally:
            stop.set()
            thread.join()
        [backlog] = [f for f in findings if f.object == "repl-backlog-size"]
        assert backlog.evidence["backlog_covers_s"] < 60 and backlog.evidence["write_rate_bytes_per_s"] > 100_000
        assert backlog.fix.steps[0].command[:3] == ["CONFIG", "SET", "repl-backlog-size"]
        assert int(backlog.fix.steps[0].command[3]) >= 60 * backlog.evidence["write_rate_bytes_per_s"]
        assert backlog.fix.inverse[0].command == ["CONFIG", "SET", "repl-backlog-size", "16384"]

        # The replica accepts writes.
        [writable] = report_for(replica_url, "redis.replication")
        assert writable.title == "Writable replica" and writable.severity is Severity.HIGH
        assert writable.fix.safety is FixSafety.UNSAFE
        redis.Redis.from_url(replica_url).config_set("replica-read-only", "yes")
        assert report_for(replica_url, "redis.replication") == []
