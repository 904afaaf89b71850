"""postgres.vacuum against real servers: on a private cluster (autovacuum off, logical slots and
prepared transactions allowed) every holder of the xmin horizon is named with its age, dead rows
are judged against the table's own autovacuum threshold, and a table with autovacuum disabled is
reported; wraparound is reported with the oldest tables and a FREEZE fix; a fresh database on the
shared server is quiet."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
import pytest

from checks.model import FixSafety, Severity
from checks.runway import grade, runway_text
from tests import support

CHECK = "postgres.vacuum"


def run(url: str, **options):
    settings = support.settings_for(pg={"kind": "postgres", "url": url, "checks": {CHECK: options}})
    report = support.run_report(settings, checks=[CHECK])
    assert report.errors == []
    return report.findings


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    with support.private_postgres("autovacuum=off", "wal_level=logical", "max_prepared_transactions=5",
                                  "max_replication_slots=4") as url:
        yield url


async def _hold_and_check(url: str, **options):
    admin = await asyncpg.connect(url, timeout=10, command_timeout=20)
    # Created first: a logical slot waits for every transaction holding an xid to end.
    await admin.execute("SELECT pg_create_logical_replication_slot('stale_slot', 'test_decoding')")
    holder = await asyncpg.connect(url, timeout=10, command_timeout=20)
    try:
        await holder.execute("BEGIN")
        await holder.fetchval("SELECT txid_current()")  # idle in transaction, holding an xid
        try:
            await admin.execute("BEGIN; CREATE TABLE prepared_leftover (id int); PREPARE TRANSACTION 'forgotten'")
            for _ in range(3):
                await admin.fetchval("SELECT txid_current()")
            settings = support.settings_for(pg={"kind": "postgres", "url": url, "checks": {CHECK: options}})
            return await support.run_report_async(settings, checks=[CHECK])
        finally:
            await admin.execute("ROLLBACK PREPARED 'forgotten'")
            await admin.execute("SELECT pg_drop_replication_slot('stale_slot')")
            await admin.close()
    finally:
        await holder.close()


def test_every_holder_of_the_xmin_horizon_is_named_with_its_age(cluster):
    report = asyncio.run(_hold_and_check(cluster, horizon_xid_age=1))
    assert report.errors == []
    horizon = {f.object: f for f in report.findings if f.id and "holds back VACUUM" in f.title}
    kinds = {f.evidence["kind"] for f in horizon.values()}
    assert kinds == {"session", "replication slot", "prepared transaction"}
    slot = horizon["replication slot stale_slot"]
    assert slot.evidence["xid_age"] >= 3 and slot.fix.safety is FixSafety.UNSAFE
    assert slot.fix.steps[0].command == "SELECT pg_drop_replication_slot('stale_slot');"
    prepared = horizon["prepared transaction forgotten"]
    assert prepared.fix.steps[0].command == "ROLLBACK PREPARED 'forgotten';"
    [session] = [f for f in horizon.values() if f.evidence["kind"] == "session"]
    assert "idle in transaction" in session.evidence["detail"]
    assert session.fix.steps[0].command.startswith("SELECT pg_terminate_backend(")
    [off] = [f for f in report.findings if f.object == "autovacuum"]
    assert off.severity is Severity.HIGH


async def _dead_rows(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("""
            CREATE TABLE churn (id int PRIMARY KEY, v int);
            INSERT INTO churn SELECT g, 0 FROM generate_series(1, 2000) g;
            ANALYZE churn;
            UPDATE churn SET v = 1;
            CREATE TABLE frozen_out (id int) WITH (autovacuum_enabled = false);
            CREATE TABLE calm (id int PRIMARY KEY, v int) WITH (autovacuum_vacuum_scale_factor = 5);
            INSERT INTO calm SELECT g, 0 FROM generate_series(1, 2000) g;
            ANALYZE calm;
            UPDATE calm SET v = 1;""")
        await conn.execute("SELECT pg_stat_force_next_flush()")
    finally:
        await conn.close()


def test_dead_rows_against_each_tables_own_threshold_and_a_disabled_autovacuum(cluster):
    asyncio.run(_dead_rows(cluster))
    findings = {(f.object, f.title.split(":")[0]): f for f in run(cluster, min_dead_rows=100)}
    churn = findings[("public.churn", "churn")]
    assert churn.evidence["dead_rows"] == 2000 and churn.evidence["autovacuum_threshold"] == 450  # 50 + 0.2 × 2000
    assert "never processed" in churn.message
    assert churn.fix.steps[0].command == "VACUUM (ANALYZE, VERBOSE) public.churn;"
    assert ("public.calm", "calm") not in findings  # its own scale factor puts the threshold at 10,050
    [disabled] = [f for f in findings.values() if f.object == "public.frozen_out"]
    assert disabled.fix.steps[0].command == "ALTER TABLE public.frozen_out RESET (autovacuum_enabled);"
    for step in churn.fix.steps:
        asyncio.run(_execute(cluster, step.command))
    assert ("public.churn", "churn") not in {(f.object, f.title.split(":")[0]) for f in run(cluster, min_dead_rows=100)}


async def _execute(url: str, command: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(command)
        await conn.execute("SELECT pg_stat_force_next_flush()")
    finally:
        await conn.close()


def test_wraparound_names_the_oldest_tables_and_offers_a_freeze(pg_db):
    pg_db.execute("CREATE TABLE old_rows (id int); INSERT INTO old_rows VALUES (1);")
    findings = run(pg_db.url, wraparound_warn=1e-9, wraparound_critical=0.9, sample_seconds=0)
    [mine] = [f for f in findings if f.object == f"database {pg_db.name}"]
    assert mine.severity is Severity.HIGH  # no rate: graded by the share used
    assert mine.evidence["runway"] == "runway unknown" and "Runway: runway unknown." in mine.message
    assert mine.evidence["ids_left_before_writes_stop"] == 2**31 - 3_000_000 - max(mine.evidence["xid_age"],
                                                                                    mine.evidence["mxid_age"])
    ages = [max(t["xid_age"], t["mxid_age"]) for t in mine.evidence["oldest_tables"]]
    assert ages == sorted(ages, reverse=True) and len(ages) == 10  # the catalogs copied from template1 are older
    assert [step.command for step in mine.fix.steps] == [
        f"VACUUM (FREEZE, VERBOSE) {t['table']};" for t in mine.evidence["oldest_tables"][:5]]


def test_a_fresh_database_is_quiet_but_for_the_servers_autovacuum_setting(pg_db):
    pg_db.execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 100);")
    [[autovacuum]] = pg_db.fetch("SELECT current_setting('autovacuum')::bool")
    findings = run(pg_db.url)
    assert [f.object for f in findings] == ([] if autovacuum else ["autovacuum"])


async def _write_while_checking(url: str):
    """Each autocommitted INSERT takes a transaction id while the check reads the ages twice."""
    conn = await asyncpg.connect(url)
    await conn.execute("CREATE TABLE busy (id serial PRIMARY KEY)")
    stop = asyncio.Event()

    async def write():
        while not stop.is_set():
            await conn.execute("INSERT INTO busy DEFAULT VALUES")
            await asyncio.sleep(0.01)

    writing = asyncio.create_task(write())
    try:
        settings = support.settings_for(pg={"kind": "postgres", "url": url, "checks": {
            CHECK: {"wraparound_warn": 1e-9, "wraparound_critical": 0.9, "sample_seconds": 1}}})
        return await support.run_report_async(settings, checks=[CHECK])
    finally:
        stop.set()
        await writing
        await conn.close()


def test_wraparound_is_graded_by_the_days_left_at_the_rate_ids_are_taken(pg_db):
    report = asyncio.run(_write_while_checking(pg_db.url))
    assert report.errors == []
    [mine] = [f for f in report.findings if f.object == f"database {pg_db.name}"]
    assert mine.evidence["rate_per_second"] > 1 and "between two readings" in mine.evidence["rate_from"]
    days = mine.evidence["days_before_writes_stop"]
    assert days == pytest.approx(
        mine.evidence["ids_left_before_writes_stop"] / mine.evidence["rate_per_second"] / 86400, rel=1e-3)
    # Graded by the days left at that rate, whatever the share used.
    assert mine.severity is grade(days, Severity.HIGH)
    assert mine.evidence["runway"] == runway_text(days) and f"Runway: {runway_text(days)} at" in mine.message
