"""postgres.replication on a private cluster (an inactive physical slot retaining WAL, reported
with its bytes and a drop fix; quiet once dropped) and postgres.locks on the shared server (an
idle transaction holding ACCESS EXCLUSIVE with two sessions queued behind it, as a tree)."""

from __future__ import annotations

import asyncio

import asyncpg

from checks.config import config_from_dict
from checks.model import FixSafety, Severity
from checks.postgres import figures
from checks.snapshots.store import SnapshotStore
from tests import support


def run(url: str, check: str, **options):
    settings = support.settings_for(pg={"kind": "postgres", "url": url, "checks": {check: options}})
    report = support.run_report(settings, checks=[check])
    assert report.errors == []
    return report.findings


async def _sql(url: str, *commands: str) -> None:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        for command in commands:
            await conn.execute(command)
    finally:
        await conn.close()


def test_an_inactive_slot_retaining_wal_then_dropped(tmp_path):
    with support.private_postgres("max_replication_slots=4", "max_wal_senders=4") as url:
        assert run(url, "postgres.replication") == []
        asyncio.run(_sql(url, "SELECT pg_create_physical_replication_slot('old_replica', true)",
                         "CREATE TABLE filler AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 20000) g"))
        # Issue #25 item 12: under the 1 GiB default it used to be silent; any inactive slot is a finding.
        [small] = run(url, "postgres.replication")
        assert small.object == "slot old_replica" and small.severity is Severity.LOW
        assert "inactive replication slot old_replica" in small.title
        [slot] = run(url, "postgres.replication", min_retained_bytes=1024 * 1024)
        assert slot.object == "slot old_replica" and slot.severity is Severity.HIGH
        assert slot.evidence["active"] is False and slot.evidence["retained_bytes"] > 1024 * 1024
        assert slot.evidence["wal_status"] == "reserved"
        assert slot.fix.safety is FixSafety.UNSAFE
        # Growth between two readings: a snapshot, then more WAL. At the rate since the snapshot
        # it reaches 64 MiB within days (its runway), so a small slot is high severity.
        settings = config_from_dict({"journal": str(tmp_path / "journal.jsonl"), "targets": {"pg": {
            "kind": "postgres", "url": url,
            "checks": {"postgres.replication": {"growth_window": "0s", "min_retained_bytes": 64 * 1024**2}}}}})
        SnapshotStore(tmp_path / "snapshots.db").save(
            support.run_report(settings, checks=["postgres.replication"]), {"pg": asyncio.run(_figures(url))})
        asyncio.run(_sql(url, "CREATE TABLE filler2 AS SELECT g, repeat('y', 200) AS pad FROM generate_series(1, 20000) g"))
        [growing] = support.run_report(settings, checks=["postgres.replication"]).findings
        assert growing.evidence["growth"]["bytes"] > 1024 * 1024 and growing.severity is Severity.HIGH
        assert growing.evidence["retained_bytes"] < 64 * 1024**2  # high by its growth, not its size
        assert growing.evidence["days_to_min_retained"] < 7 and growing.evidence["runway"].startswith("reaches ")
        asyncio.run(_sql(url, *(step.command for step in slot.fix.steps)))
        assert run(url, "postgres.replication", min_retained_bytes=0) == []


async def _figures(url: str):
    conn = await asyncpg.connect(url, timeout=10)
    try:
        return await figures.gather(conn)
    finally:
        await conn.close()


async def _blocked_tree(url: str):
    holder = await asyncpg.connect(url, timeout=10)
    waiters = [await asyncpg.connect(url, timeout=10) for _ in range(2)]
    try:
        await holder.execute("CREATE TABLE ledger (id int)")
        await holder.execute("BEGIN; LOCK TABLE ledger IN ACCESS EXCLUSIVE MODE")
        tasks = [asyncio.create_task(w.fetch("SELECT count(*) FROM ledger")) for w in waiters]
        await support.pg_until(url, "SELECT count(*) = 2 FROM pg_stat_activity WHERE pid = ANY($1::int[]) "
                               "AND wait_event_type = 'Lock' AND clock_timestamp() - state_change > interval '1.1 s'",
                               [w.get_server_pid() for w in waiters])
        settings = support.settings_for(pg={"kind": "postgres", "url": url,
                                            "checks": {"postgres.locks": {"min_wait": "1s"}}})
        report = await support.run_report_async(settings, checks=["postgres.locks"])
        quiet = await support.run_report_async(support.settings_for(pg={"kind": "postgres", "url": url}),
                                               checks=["postgres.locks"])
        await holder.execute("ROLLBACK")
        await asyncio.gather(*tasks)
        return report, quiet, holder.get_server_pid()
    finally:
        for conn in (holder, *waiters):
            await conn.close()


def test_a_blocking_tree_is_reported_at_its_head(pg_db):
    report, quiet, holder_pid = asyncio.run(_blocked_tree(pg_db.url))
    assert report.errors == []
    [finding] = [f for f in report.findings if f.object == f"pid {holder_pid}"]
    assert finding.evidence["waiting_sessions"] == 2
    assert finding.evidence["blocking"]["state"] == "idle in transaction"
    assert all(w["query"] == "SELECT count(*) FROM ledger" and w["waiting_s"] >= 1 for w in finding.evidence["waiting_tree"])
    assert finding.fix.steps[0].command == f"SELECT pg_terminate_backend({holder_pid});"
    assert finding.fix.safety is FixSafety.UNSAFE
    assert [f for f in quiet.findings if f.object == f"pid {holder_pid}"] == []  # under the 30 s default
