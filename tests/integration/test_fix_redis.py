"""Applying and undoing Redis fixes: the expire-missing-ttl batch operation and its exact
persist-keys inverse, a CONFIG SET round trip (private server only), and a batch fix whose
server is killed mid-way, then resumed and undone."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import redis

from checks.config import config_from_dict
from checks.fixes import Journal, apply_fix, find_finding, plan_fix, undo_fix
from checks.redis.executor import KeysLog
from checks.model import finding_id
from tests import support
from tests.data import fix_checks

PASSWORD = "r3dis-Secret-9"


def settings_for(url, tmp_path, **target):
    return config_from_dict({
        "targets": {"cache": {"kind": "redis", "url": url, "allow_fixes": True, **target}},
        "journal": str(tmp_path / "journal.jsonl"),
    })


def plan(settings, registry, check, obj, *, allow_unsafe=False):
    async def go():
        found = await find_finding(settings, registry, finding_id(check, "cache", obj))
        assert found is not None, f"{check} did not report {obj}"
        return await plan_fix(settings, registry, found, allow_unsafe=allow_unsafe)

    return asyncio.run(go())


def ttls(client, pattern="*") -> dict[bytes, int]:
    return {key: client.ttl(key) for key in client.scan_iter(match=pattern, count=1000)}


class PrivateRedis:
    """A redis-server of this test's own: CONFIG SET and kill -9 are fine here."""

    def __init__(self, directory: Path, *args: str) -> None:
        self.port = support.free_port()
        self.directory = directory
        self.args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(directory),
                     "--save", "", *args]
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        support.wait_for_port(self.port, process=self.process)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(port=self.port, db=db, password=PASSWORD, socket_timeout=10)


def test_expire_missing_ttl_then_persist_exactly_those_keys(redis_db, tmp_path):
    client = redis_db.client
    for i in range(230):
        client.set(f"session:{i}", "x")
    client.set("session:has-ttl", "x", ex=500)
    client.set("session:user:1", "x")  # matches the glob, not the pattern's regex
    client.set("other:1", "x")
    settings = settings_for(redis_db.url, tmp_path)
    registry = fix_checks.registry()
    the_plan = plan(settings, registry, "test.redis-missing-ttl", "session:<id>")
    progress: list[str] = []
    outcome = asyncio.run(apply_fix(settings, registry, the_plan, on_progress=progress.append))
    assert (outcome.outcome, outcome.verified) == ("fixed", True), outcome.message
    assert "gave a TTL of 86400s to 230 keys" in outcome.message
    after = ttls(client)
    touched = {f"session:{i}".encode() for i in range(230)}
    assert all(86000 < after[k] <= 86400 for k in touched)
    assert after[b"session:user:1"] == -1 and after[b"other:1"] == -1 and 0 < after[b"session:has-ttl"] <= 500
    assert sum("keys scanned" in p for p in progress) >= 2  # bounded batches

    journal = Journal(tmp_path / "journal.jsonl")
    entry = journal.get(outcome.entry_id)
    [inverse] = entry.inverse
    assert inverse["command"]["op"] == "persist-keys" and inverse["command"]["db"] == redis_db.index
    recorded = KeysLog(journal.side_file(inverse["command"]["keys_file"])).touched_keys()
    assert set(recorded) == touched and len(recorded) == 230

    client.delete("session:7")  # expired or deleted in between: cannot come back
    undone = asyncio.run(undo_fix(settings, registry, outcome.entry_id))
    assert (undone.outcome, undone.verified) == ("fixed", True), undone.message
    assert "removed the TTL of 229 of 230 keys" in undone.message and "1 no longer exist" in undone.message
    after = ttls(client)
    assert all(after[k] == -1 for k in touched - {b"session:7"})
    assert 0 < after[b"session:has-ttl"] <= 500  # a TTL this fix did not set stays


def test_config_set_round_trip_on_a_private_server(tmp_path):
    server = PrivateRedis(tmp_path, "--requirepass", PASSWORD)
    try:
        url = f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0"
        settings = settings_for(url, tmp_path)
        registry = fix_checks.registry()
        the_plan = plan(settings, registry, "test.redis-timeout", "config timeout", allow_unsafe=True)
        outcome = asyncio.run(apply_fix(settings, registry, the_plan, allow_unsafe=True))
        assert (outcome.outcome, outcome.verified) == ("fixed", True), outcome.message
        assert server.client().config_get("timeout") == {"timeout": "300"}
        undone = asyncio.run(undo_fix(settings, registry, outcome.entry_id, allow_unsafe=True))
        assert undone.outcome == "fixed", undone.message
        assert server.client().config_get("timeout") == {"timeout": "0"}
    finally:
        server.kill()
    journal_text = (tmp_path / "journal.jsonl").read_text()
    assert PASSWORD not in journal_text and f":***@127.0.0.1:{server.port}" in journal_text


def test_server_killed_mid_batch_leaves_a_failed_entry_recording_exactly_the_keys_it_changed(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    # Every write durable, so what the server acknowledged survives kill -9.
    server = PrivateRedis(data, "--requirepass", PASSWORD, "--appendonly", "yes", "--appendfsync", "always")
    try:
        fill(server.client(3), 2000)
        url = f"redis://:{PASSWORD}@127.0.0.1:{server.port}/3"
        settings = settings_for(url, tmp_path, timeout=2)
        registry = fix_checks.registry()
        the_plan = plan(settings, registry, "test.redis-missing-ttl", "session:<id>")
        first = asyncio.run(apply_fix(settings, registry, the_plan, on_progress=after_batches(5, server.kill)))
        assert first.outcome == "failed" and "step 1 failed" in first.message
        journal = Journal(tmp_path / "journal.jsonl")
        entry = journal.get(first.entry_id)
        assert (entry.state, entry.steps_done) == ("failed", 0)
        log = KeysLog(journal.side_file(entry.inverse[0]["command"]["keys_file"]))
        recorded = set(log.touched_keys())
        assert 0 < len(recorded) < 2000 and log.resume_point()

        server.start()  # same port, same append-only file
        client = server.client(3)
        assert {k for k, t in ttls(client).items() if t >= 0} == recorded

        # A restarted server hashes keys with a new seed: the old cursor is void, so start over.
        the_plan = plan(settings, registry, "test.redis-missing-ttl", "session:<id>")
        progress: list[str] = []
        second = asyncio.run(apply_fix(settings, registry, the_plan, on_progress=progress.append))
        assert (second.outcome, second.verified) == ("fixed", True), second.message
        assert "server restarted since the interrupted run" in progress[0]
        assert f"to {2000 - len(recorded)} keys" in second.message

        for entry_id in (second.entry_id, first.entry_id):  # an unfinished fix can be undone too
            undone = asyncio.run(undo_fix(settings, registry, entry_id))
            assert undone.outcome in {"fixed", "not_fixed"}, undone.message
        assert all(t == -1 for t in ttls(client).values())
    finally:
        server.kill()
    assert PASSWORD not in (tmp_path / "journal.jsonl").read_text()


def test_an_interrupted_batch_fix_resumes_at_its_scan_cursor(redis_db, tmp_path):
    settings, registry, first = fix_dropped_after(redis_db, tmp_path, keys=1500, batches=4)
    assert first.outcome == "failed" and "network dropped" in first.message
    given = sum(1 for t in ttls(redis_db.client).values() if t > 0)
    assert 0 < given < 1500
    the_plan = plan(settings, registry, "test.redis-missing-ttl", "session:<id>")
    progress: list[str] = []
    second = asyncio.run(apply_fix(settings, registry, the_plan, on_progress=progress.append))
    assert (second.outcome, second.verified) == ("fixed", True), second.message
    assert "resuming at SCAN cursor" in progress[0]
    scanned = int(second.message.split("(")[-1].split(" scanned")[0])
    assert scanned < 1500  # it did not start over
    assert all(t > 0 for t in ttls(redis_db.client).values())


def fill(client, count: int) -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        pipe.set(f"session:{i}", "x")
    pipe.execute()


def fix_dropped_after(redis_db, tmp_path, *, keys: int, batches: int):
    """`keys` keys without a TTL, and a run of their fix whose connection drops after `batches`
    SCAN batches: (settings, registry, the run's outcome)."""
    fill(redis_db.client, keys)
    settings = settings_for(redis_db.url, tmp_path)
    registry = fix_checks.registry()
    the_plan = plan(settings, registry, "test.redis-missing-ttl", "session:<id>")

    def drop_the_line() -> None:
        raise ConnectionResetError("network dropped")

    return settings, registry, asyncio.run(apply_fix(settings, registry, the_plan, on_progress=after_batches(batches, drop_the_line)))


def after_batches(count: int, action):
    seen = []

    def on_progress(message: str) -> None:
        if "keys scanned" in message:
            seen.append(message)
            if len(seen) == count:
                action()

    return on_progress


def test_a_rerun_after_undoing_an_interrupted_batch_fix_starts_over(redis_db, tmp_path):
    settings, registry, first = fix_dropped_after(redis_db, tmp_path, keys=5005, batches=40)
    assert first.outcome == "failed"
    assert 0 < sum(1 for t in ttls(redis_db.client).values() if t > 0) < 5005
    undone = asyncio.run(undo_fix(settings, registry, first.entry_id))
    assert undone.outcome == "fixed", undone.message
    assert all(t == -1 for t in ttls(redis_db.client).values())

    the_plan = plan(settings, registry, "test.redis-missing-ttl", "session:<id>")
    progress: list[str] = []
    second = asyncio.run(apply_fix(settings, registry, the_plan, on_progress=progress.append))
    assert (second.outcome, second.verified) == ("fixed", True), second.message
    assert "resuming" not in progress[0]
    assert "to 5005 keys" in second.message
    after = ttls(redis_db.client)
    assert len(after) == 5005 and all(t > 0 for t in after.values())


def cancelled_after(count: int):
    """A progress callback that cancels the fix's task after `count` SCAN batches: what
    console.runtime.run_async does on SIGINT, SIGTERM or SIGHUP."""
    task: list[asyncio.Task] = []
    return task, after_batches(count, lambda: task[0].cancel())


def test_a_stop_signal_mid_batch_takes_back_the_ttls_given_and_a_rerun_starts_over(redis_db, tmp_path):
    fill(redis_db.client, 3000)
    settings = settings_for(redis_db.url, tmp_path)
    registry = fix_checks.registry()
    the_plan = plan(settings, registry, "test.redis-missing-ttl", "session:<id>")
    task, on_progress = cancelled_after(2)

    async def interrupted() -> None:
        task.append(asyncio.current_task())
        await apply_fix(settings, registry, the_plan, on_progress=on_progress)

    try:
        asyncio.run(interrupted())
    except asyncio.CancelledError:
        pass
    else:
        raise AssertionError("the fix was not interrupted")
    after = ttls(redis_db.client)
    assert len(after) == 3000 and all(t == -1 for t in after.values()), "TTLs left behind by the interrupted run"
    last = Journal(tmp_path / "journal.jsonl").entries()[-1]
    assert last.outcome == "failed" and "interrupted after 0 of 1 steps" in last.message, last.message
    assert "the TTLs it had given were taken back" in last.message and not last.leftovers, last.message

    progress: list[str] = []
    again = plan(settings, registry, "test.redis-missing-ttl", "session:<id>")
    second = asyncio.run(apply_fix(settings, registry, again, on_progress=progress.append))
    assert (second.outcome, second.verified) == ("fixed", True), second.message
    assert "resuming" not in progress[0]  # what the first run had done was taken back
    assert all(t > 0 for t in ttls(redis_db.client).values())
