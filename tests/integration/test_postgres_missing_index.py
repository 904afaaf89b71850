"""postgres.missing-index against real servers: on a private server with nothing preloaded it
finds the table and says the suggestion is unavailable; on a private server started with
pg_stat_statements it suggests an index and verifies it with hypopg."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
import pytest

from checks.model import FixSafety
from tests import support

CHECK = "postgres.missing-index"
LOW_BARS = {"min_rows": 1000, "min_seq_scans": 20, "min_seq_tup_read": 10_000}

SCHEMA = """
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id integer, status text, created_at timestamptz);
INSERT INTO orders SELECT g, g % 2000, (ARRAY['new', 'paid', 'shipped', 'void'])[1 + g % 4], now() - g * interval '1 minute'
FROM generate_series(1, 40000) g;
CREATE TABLE "Event Log" (id bigint, at date NOT NULL, kind text) PARTITION BY RANGE (at);
CREATE TABLE "Event Log 2025" PARTITION OF "Event Log" FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE "Event Log 2026" PARTITION OF "Event Log" FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO "Event Log" SELECT g, date '2025-06-01' + (g % 400), 'k' || (g % 50) FROM generate_series(1, 30000) g;
CREATE TABLE customers (id integer PRIMARY KEY, name text);
INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, 20000) g;
ANALYZE;
"""


async def workload(url: str) -> None:
    """Sequential scans on orders and the partitioned log, index scans on customers; then flush
    this backend's statistics so the check sees them now (PostgreSQL 15)."""
    conn = await asyncpg.connect(url)
    try:
        for n in range(30):
            await conn.fetch("SELECT * FROM orders WHERE customer_id = $1 AND status = $2", n, "paid")
            await conn.fetch('SELECT count(*) FROM "Event Log" WHERE kind = $1', f"k{n}")
            await conn.fetch("SELECT * FROM customers WHERE id = $1", n + 1)
        await conn.execute("SELECT pg_stat_force_next_flush()")
    finally:
        await conn.close()


def run(url: str):
    settings = support.settings_for(pg={"kind": "postgres", "url": url, "checks": {CHECK: LOW_BARS}})
    result = support.run_report(settings, checks=[CHECK])
    assert result.errors == []
    return {f.object: f for f in result.findings}


@pytest.fixture(scope="module")
def bare_server() -> Iterator[str]:
    """A throwaway cluster with nothing preloaded: the shared test server (DBVITALS_TEST_PG_URL
    may name any) can have pg_stat_statements in shared_preload_libraries or not."""
    with support.private_postgres("shared_preload_libraries=''") as url:
        yield url


def test_a_server_without_pg_stat_statements_finds_tables_but_cannot_suggest(bare_server):
    asyncio.run(_admin(bare_server, "CREATE DATABASE app"))
    url = support.with_path(bare_server, "app")
    asyncio.run(_admin(url, "CREATE EXTENSION hypopg;" + SCHEMA))
    asyncio.run(workload(url))
    findings = run(url)
    # customers is read by its primary key; the partitions add up to one finding on their parent.
    assert sorted(findings) == ['public."Event Log"', "public.orders"]
    orders = findings["public.orders"]
    assert orders.evidence["seq_scan"] >= 30 and orders.evidence["idx_scan"] == 0
    assert orders.evidence["live_rows"] == 40000
    assert orders.evidence["suggestion"] is None
    assert "shared_preload_libraries" in orders.evidence["statements_source"]
    assert orders.evidence["verification"] == "unverified / not available"
    assert orders.fix is None
    assert findings['public."Event Log"'].evidence["live_rows"] == 30000


def test_no_statistics_no_finding(pg_db):
    pg_db.execute(SCHEMA)
    assert run(pg_db.url) == {}


# --- a private server with pg_stat_statements preloaded -------------------------------------------------

@pytest.fixture(scope="module")
def preloaded_server() -> Iterator[str]:
    """A throwaway cluster started with pg_stat_statements preloaded."""
    with support.private_postgres("shared_preload_libraries=pg_stat_statements") as url:
        yield url


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def test_suggestion_from_pg_stat_statements_verified_with_hypopg(preloaded_server):
    asyncio.run(_admin(preloaded_server, "CREATE DATABASE app"))
    url = support.with_path(preloaded_server, "app")
    asyncio.run(_admin(url, "CREATE EXTENSION pg_stat_statements; CREATE EXTENSION hypopg;" + SCHEMA))
    asyncio.run(workload(url))
    findings = run(url)
    orders = findings["public.orders"]
    # customer_id alone brings the cost under min_cost: the narrower index, not (customer_id, status).
    assert orders.evidence["definition"] == "CREATE INDEX orders_customer_id_idx ON public.orders (customer_id)"
    [statement] = orders.evidence["statements"]
    assert statement["query"] == "SELECT * FROM orders WHERE customer_id = $1 AND status = $2"
    assert statement["source"] == "pg_stat_statements" and statement["calls"] == 30
    assert statement["cost_after"] < statement["cost_before"] / 5
    assert orders.fix.safety is FixSafety.SAFE
    assert orders.fix.steps[0].command == "CREATE INDEX CONCURRENTLY orders_customer_id_idx ON public.orders (customer_id);"

    log = findings['public."Event Log"']
    assert log.evidence["definition"] == 'CREATE INDEX "Event Log_kind_idx" ON public."Event Log" (kind)'
    # A partitioned table: the parent's index ON ONLY, then one per partition, attached.
    commands = [step.command for step in log.fix.steps]
    assert commands[0] == 'CREATE INDEX "Event Log_kind_idx" ON ONLY public."Event Log" (kind);'
    assert len(commands) == 5
    assert "public.customers" not in findings  # read by its primary key

    async def apply() -> list[str]:
        conn = await asyncpg.connect(url)
        try:
            for step in (*orders.fix.steps, *log.fix.steps):
                await conn.execute(step.command)
            rows = await conn.fetch("SELECT indexrelid::regclass::text AS name, indisvalid FROM pg_index "
                                    "WHERE indrelid IN ('orders'::regclass, '\"Event Log\"'::regclass)")
            return sorted(r["name"] for r in rows if r["indisvalid"])
        finally:
            await conn.close()

    assert asyncio.run(apply()) == ['"Event Log_kind_idx"', "orders_customer_id_idx", "orders_pkey"]


def test_dbvitals_own_statements_carry_the_marker_and_are_never_advised_on(preloaded_server):
    """pg_stat_statements keeps dbvitals' catalog reads (marked /* dbvitals */); the check reads
    the workload without them, so it never suggests an index for its own queries."""
    from checks.connectors import connect
    from checks.postgres.marker import STATEMENT_MARKER, is_own_statement
    from checks.contract import Scope, resolve_options
    from checks.postgres.missing_index import MissingIndex

    asyncio.run(_admin(preloaded_server, "CREATE DATABASE own"))
    url = support.with_path(preloaded_server, "own")
    asyncio.run(_admin(url, "CREATE EXTENSION pg_stat_statements; CREATE EXTENSION hypopg;" + SCHEMA))
    asyncio.run(workload(url))
    settings = support.settings_for(pg={"kind": "postgres", "url": url, "checks": {CHECK: LOW_BARS}})
    support.run_report(settings)  # every check: dbvitals' own statements land in pg_stat_statements

    async def read() -> tuple[list[str], list[str]]:
        target = settings.targets["pg"]
        connection = await connect("pg", target)
        try:
            scope = Scope(target="pg", config=target, options=resolve_options(MissingIndex, "pg", target),
                          status=connection.status)
            facts = await MissingIndex().gather(connection.session, scope)
            recorded = await connection.session.fetch(
                "SELECT query FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'own')")
            return [s.query for s in facts.statements], [r["query"] for r in recorded]
        finally:
            await connection.close()

    read_by_check, recorded = asyncio.run(read())
    own = [q for q in recorded if q.startswith(STATEMENT_MARKER)]
    assert len(own) > 10  # the catalog snapshot, the stats reads...: all marked
    assert "SELECT * FROM orders WHERE customer_id = $1 AND status = $2" in read_by_check
    assert read_by_check and not any(is_own_statement(q) for q in read_by_check)


async def _figures(url: str):
    from checks.postgres import figures

    conn = await asyncpg.connect(url)
    try:
        return await figures.gather(conn)
    finally:
        await conn.close()


def test_writes_are_weighed_over_a_window_not_since_the_statistics_reset(pg_db, tmp_path):
    """Issue #25 item 12: a one-time bulk load made a table "write-heavy" (low) for ever."""
    from checks.config import config_from_dict
    from checks.snapshots.store import SnapshotStore

    pg_db.execute("""
        CREATE EXTENSION hypopg;
        CREATE TABLE loads (id bigint, account integer, payload text);
        INSERT INTO loads SELECT g, g % 5000, 'p' FROM generate_series(1, 60000) g;
        ANALYZE loads;
        SELECT pg_stat_force_next_flush();""")
    settings = config_from_dict({"journal": str(tmp_path / "journal.jsonl"), "targets": {"pg": {
        "kind": "postgres", "url": pg_db.url, "expect": {"queries": [{"sql": "SELECT * FROM loads WHERE account = $1"}]},
        "checks": {CHECK: {"write_window": "0s"}}}}})

    def suggestion():
        report = support.run_report(settings, checks=[CHECK])
        assert report.errors == []
        [found] = [f for f in report.findings if f.object == "public.loads"]
        return found

    bulk_loaded = suggestion()  # 60,000 inserts since the reset, no window to weigh them over
    assert bulk_loaded.severity.value == "medium" and "write_heavy" not in bulk_loaded.evidence
    assert "not weighed" in bulk_loaded.evidence["write_window"]

    SnapshotStore(tmp_path / "snapshots.db").save(
        support.run_report(settings, checks=[CHECK]), {"pg": asyncio.run(_figures(pg_db.url))}, label="before")
    quiet = suggestion()  # nothing written since the snapshot
    assert quiet.severity.value == "medium" and quiet.evidence["write_window"]["writes"] == 0

    pg_db.execute("UPDATE loads SET payload = 'q'; SELECT pg_stat_force_next_flush();")
    busy = suggestion()  # 60,000 updates in the window against one scan: write-heavy now
    assert busy.evidence["write_window"]["writes"] == 60_000
    assert busy.severity.value == "low" and "60,000 writes" in busy.evidence["write_heavy"]
