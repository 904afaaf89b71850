"""The PostgreSQL pack against a real server: a schema with every problem yields the right
findings, evidence and fixes; the fixes, applied, make the findings go away; a healthy schema
(partitioned tables and quoted names included) yields none; and a pg_monitor role sees enough."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from checks.model import FixSafety, Severity
from tests import support

PACK = [
    "postgres.fk-type-mismatch", "postgres.fk-missing-index", "postgres.missing-index", "postgres.duplicate-index",
    "postgres.redundant-index", "postgres.unused-index", "postgres.invalid-index", "postgres.no-primary-key",
    "postgres.sequence-exhaustion", "postgres.long-transactions",
]

PROBLEMS = '''
CREATE TABLE transactions (id uuid PRIMARY KEY, legacy_id integer UNIQUE, amount numeric(12,2));
CREATE TABLE rain_events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, transaction_id integer, mm numeric);
CREATE INDEX rain_events_transaction_id_idx ON rain_events (transaction_id);
CREATE TABLE products (id bigint PRIMARY KEY, name text);
CREATE TABLE order_items (id bigint PRIMARY KEY, product_id integer REFERENCES products (id), qty integer, note text);
CREATE TABLE roles (id bigint PRIMARY KEY);
CREATE TABLE forum_structure (id bigint PRIMARY KEY, min_group_id_required integer);
CREATE TABLE "Order Lines" ("Line ""No""" bigint PRIMARY KEY, "productId" bigint REFERENCES products (id));
CREATE INDEX order_items_qty_idx ON order_items (qty);
CREATE INDEX order_items_qty_copy ON order_items (qty);
CREATE INDEX order_items_note_idx ON order_items (note);
CREATE INDEX order_items_note_qty_idx ON order_items (note, qty);
CREATE TABLE audit_log (at timestamptz, message text);
CREATE TABLE counters (id serial PRIMARY KEY, label text);
SELECT setval('counters_id_seq', 2000000000);
CREATE TABLE dup_values (id bigint PRIMARY KEY, v integer);
INSERT INTO dup_values VALUES (1, 7), (2, 7);
INSERT INTO transactions SELECT gen_random_uuid(), g, g FROM generate_series(1, 20) g;
INSERT INTO rain_events (transaction_id, mm) SELECT g, g FROM generate_series(1, 25) g;
INSERT INTO rain_events (transaction_id, mm) VALUES (NULL, 0);
INSERT INTO products SELECT g, 'p' || g FROM generate_series(1, 10) g;
INSERT INTO order_items SELECT g, 1 + g % 10, g, 'n' FROM generate_series(1, 30) g;
'''

EXPECT = {"references": [{"column": "forum_structure.min_group_id_required", "references": "roles.id"}]}
QUIET_HISTORY = {"postgres.unused-index": {"min_history": "0s"}}


def problem_db(pg_db) -> None:
    pg_db.execute(PROBLEMS)
    with pytest.raises(asyncpg.UniqueViolationError):  # leaves an INVALID index, as in production
        pg_db.execute("CREATE UNIQUE INDEX CONCURRENTLY dup_values_v_key ON dup_values (v)")


def report(url: str, checks=PACK, expect=EXPECT):
    settings = support.settings_for(pg={"kind": "postgres", "url": url, "expect": expect, "checks": QUIET_HISTORY})
    result = support.run_report(settings, checks=checks)
    assert result.errors == []
    return result


def by_object(findings, check: str) -> dict:
    return {f.object: f for f in support.by_check(findings, check)}


def test_problem_schema_yields_each_finding_with_evidence_and_fix(pg_db):
    problem_db(pg_db)
    findings = report(pg_db.url).findings

    mismatch = by_object(findings, "postgres.fk-type-mismatch")
    assert sorted(mismatch) == ["public.forum_structure.min_group_id_required", "public.order_items.product_id",
                                "public.rain_events.transaction_id"]
    rain = mismatch["public.rain_events.transaction_id"]
    assert rain.severity is Severity.HIGH
    assert rain.evidence["columns"] == [{"column": "transaction_id", "type": "integer", "references": "id",
                                         "referenced_type": "uuid"}]
    assert rain.evidence["referenced_key"] == "public.transactions(id)"
    assert rain.evidence["rows"] == {"count": 26, "exact": True}
    assert rain.evidence["values_without_match"] == {"count": 25, "non_null": 25, "compared_as": "text"}
    assert "stem 'transaction'" in rain.evidence["how"]
    assert rain.fix.safety is FixSafety.MANUAL
    migration = " ".join(step.command for step in rain.fix.steps)
    assert "gen_random_uuid" not in migration
    assert "r.legacy_id = c.transaction_id" in migration and "VALIDATE CONSTRAINT" in migration
    items = mismatch["public.order_items.product_id"]
    assert items.evidence["origin"] == "declared" and items.evidence["rows"] == {"count": 30, "exact": True}
    assert items.fix.safety is FixSafety.UNSAFE and "30 rows" in items.fix.lock
    assert items.fix.steps[0].command == "ALTER TABLE public.order_items ALTER COLUMN product_id TYPE bigint USING product_id::bigint;"
    forum = mismatch["public.forum_structure.min_group_id_required"]
    assert forum.evidence["origin"] == "expected" and forum.evidence["values_without_match"]["count"] == 0

    missing_fk = by_object(findings, "postgres.fk-missing-index")
    assert sorted(missing_fk) == ['public."Order Lines"("productId")', "public.order_items(product_id)"]
    quoted = missing_fk['public."Order Lines"("productId")'].fix
    assert quoted.steps[0].command == (
        'CREATE INDEX CONCURRENTLY "Order Lines_productId_idx" ON public."Order Lines" ("productId");')

    duplicate = by_object(findings, "postgres.duplicate-index")
    assert list(duplicate) == ["public.order_items_qty_copy"]
    assert duplicate["public.order_items_qty_copy"].evidence["duplicate_of"]["definition"] == (
        "CREATE INDEX order_items_qty_idx ON public.order_items USING btree (qty)")
    assert list(by_object(findings, "postgres.redundant-index")) == ["public.order_items_note_idx"]

    invalid = by_object(findings, "postgres.invalid-index")
    assert list(invalid) == ["public.dup_values_v_key"]
    # Unique, and its duplicates were counted: they come first, by hand.
    assert invalid["public.dup_values_v_key"].fix.safety is FixSafety.MANUAL
    assert invalid["public.dup_values_v_key"].evidence["precondition"]["samples"] == ["7 ×2"]

    assert sorted(by_object(findings, "postgres.no-primary-key")) == ["public.audit_log"]

    [sequence] = support.by_check(findings, "postgres.sequence-exhaustion")
    assert sequence.object == "public.counters_id_seq" and sequence.severity is Severity.LOW  # no insert: years of runway
    assert sequence.evidence["limit"] == 2**31 - 1 and "integer column" in sequence.evidence["limited_by"]

    unused = by_object(findings, "postgres.unused-index")
    assert "public.order_items_qty_copy" in unused and "public.rain_events_transaction_id_idx" in unused
    assert not any(name.endswith(("_pkey", "_key")) for name in unused)  # constraint-backing: never
    assert unused["public.order_items_qty_copy"].evidence["counted_since_source"].startswith(
        ("pg_stat_database.stats_reset", "pg_postmaster_start_time"))


def test_applied_fixes_clear_their_findings(pg_db):
    problem_db(pg_db)
    pg_db.execute("DELETE FROM dup_values WHERE id = 2")
    findings = report(pg_db.url).findings
    chosen = [f for f in findings if f.check in (
        "postgres.fk-missing-index", "postgres.duplicate-index", "postgres.redundant-index",
        "postgres.invalid-index", "postgres.sequence-exhaustion")]
    chosen += [f for f in findings if f.object == "public.order_items.product_id"]
    assert len(chosen) == 7

    async def apply() -> None:
        conn = await asyncpg.connect(pg_db.url)
        try:
            for finding in chosen:
                for step in finding.fix.steps:
                    await conn.execute(step.command)
        finally:
            await conn.close()

    asyncio.run(apply())
    after = report(pg_db.url).findings
    assert {f.id for f in after} & {f.id for f in chosen} == set()


def test_inverse_steps_restore_a_dropped_index(pg_db):
    problem_db(pg_db)
    [finding] = support.by_check(report(pg_db.url).findings, "postgres.duplicate-index")
    before = pg_db.fetch("SELECT pg_get_indexdef('order_items_qty_copy'::regclass) AS d")[0]["d"]
    for step in (*finding.fix.steps, *finding.fix.inverse):
        pg_db.execute(step.command)
    assert pg_db.fetch("SELECT pg_get_indexdef('order_items_qty_copy'::regclass) AS d")[0]["d"] == before


HEALTHY = '''
CREATE SCHEMA "Billing Äpp";
CREATE TABLE "Billing Äpp"."user" (id uuid PRIMARY KEY, "Display ""Name""" text);
CREATE TABLE "Billing Äpp".authors (id uuid PRIMARY KEY);
CREATE TABLE "Billing Äpp"."Posts" (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    "authorId" uuid NOT NULL REFERENCES "Billing Äpp".authors (id), user_id uuid REFERENCES "Billing Äpp"."user" (id),
    external_user_id text, "reviewer.Ref" uuid);
CREATE INDEX "Posts by author" ON "Billing Äpp"."Posts" ("authorId");
CREATE INDEX ON "Billing Äpp"."Posts" (user_id, id);
CREATE TABLE customers (id bigserial PRIMARY KEY, email text UNIQUE);
CREATE TABLE events (id bigint GENERATED ALWAYS AS IDENTITY, at date NOT NULL, customer_id bigint REFERENCES customers (id),
    PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')
    PARTITION BY RANGE (at);
CREATE TABLE events_2026_h1 PARTITION OF events_2026 FOR VALUES FROM ('2026-01-01') TO ('2026-07-01');
CREATE INDEX events_customer_idx ON events (customer_id);
INSERT INTO customers (email) SELECT 'c' || g || '@example.com' FROM generate_series(1, 50) g;
INSERT INTO events (at, customer_id) SELECT date '2025-03-01' + g, 1 + g % 50 FROM generate_series(1, 400) g;
'''


def test_healthy_schema_yields_no_findings(pg_db):
    pg_db.execute(HEALTHY)
    pg_db.execute("ANALYZE")
    result = report(pg_db.url, expect={"references": [
        {"column": '"Billing Äpp"."Posts"."reviewer.Ref"', "references": '"Billing Äpp".user.id'}]})
    assert [f.to_dict() for f in result.findings] == []
    assert {c["check"] for c in result.checks} == set(PACK)


@pytest.fixture
def monitor_role(pg_server):
    name = f"dbv_monitor_{uuid.uuid4().hex[:8]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(pg_server)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f"CREATE ROLE {name} LOGIN IN ROLE pg_monitor"))
    try:
        yield name
    finally:
        asyncio.run(admin(f"DROP ROLE IF EXISTS {name}"))


def test_pg_monitor_role_sees_the_catalog_and_says_what_it_cannot_read(pg_db, monitor_role):
    problem_db(pg_db)
    url = pg_db.url.replace("postgres@", f"{monitor_role}@", 1)
    findings = report(url).findings
    mismatch = by_object(findings, "postgres.fk-type-mismatch")
    assert "public.rain_events.transaction_id" in mismatch
    rain = mismatch["public.rain_events.transaction_id"]
    assert rain.evidence["values_without_match"] == {
        "count": None, "note": "not counted: this role may not SELECT from public.rain_events"}
    assert rain.evidence["rows"]["exact"] is False
    assert sorted(by_object(findings, "postgres.fk-missing-index")) == [
        'public."Order Lines"("productId")', "public.order_items(product_id)"]
    assert list(by_object(findings, "postgres.duplicate-index")) == ["public.order_items_qty_copy"]
    assert list(by_object(findings, "postgres.invalid-index")) == ["public.dup_values_v_key"]
    sequences = support.by_check(findings, "postgres.sequence-exhaustion")
    [unreadable] = [f for f in sequences if f.severity is Severity.INFO]
    assert "public.counters_id_seq" in unreadable.evidence["unreadable_sequences"]
    assert "pg_monitor does not grant it" in unreadable.message


async def test_long_and_idle_transactions_are_reported_with_their_locks(pg_db):
    holder = await asyncpg.connect(pg_db.url)
    try:
        await holder.execute("CREATE TABLE ledger (id bigint PRIMARY KEY, amount numeric)")
        await holder.execute("SET application_name = 'billing-worker'")
        await holder.execute("BEGIN")
        await holder.execute("INSERT INTO ledger VALUES (1, 10)")
        await holder.execute("SELECT * FROM ledger /* the last statement */")
        await support.pg_until(pg_db.url, "SELECT state = 'idle in transaction' AND clock_timestamp() - state_change "
                               "> interval '1.1 s' FROM pg_stat_activity WHERE pid = $1", holder.get_server_pid())
        settings = support.settings_for(pg={"kind": "postgres", "url": pg_db.url, "checks": {
            "postgres.long-transactions": {"max_transaction_age": "1s", "max_idle_in_transaction": "1s"}}})
        result = await support.run_report_async(settings, checks=["postgres.long-transactions"])
        [finding] = result.findings
        assert finding.severity is Severity.HIGH
        assert finding.evidence["application_name"] == "billing-worker"
        assert finding.evidence["state"] == "idle in transaction"
        assert "the last statement" in finding.evidence["query"]
        assert "RowExclusiveLock on ledger" in finding.evidence["locks_held"]
        assert finding.evidence["has_written"] is True
        assert finding.fix.steps[0].command == f"SELECT pg_terminate_backend({holder.get_server_pid()});"
        await holder.execute("ROLLBACK")
        quiet = await support.run_report_async(settings, checks=["postgres.long-transactions"])
        assert quiet.findings == []
    finally:
        await holder.close()
