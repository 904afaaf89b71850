"""One table locked ACCESS EXCLUSIVE by someone else must not blind the PostgreSQL pack: the
catalog snapshot leaves that table out instead of waiting for it, postgres.locked-relation
names it and the session holding the lock, and every other table is still judged. And a
`dbvitals fix` whose re-check fails says so, and why, instead of "it may be fixed already"."""

from __future__ import annotations

import asyncio

import asyncpg

from checks.contract import Check, Scope
from checks.model import Finding, Fix, FixAvailability, FixSafety, FixStep, Severity, finding_id
from tests import support
from tests.data import fix_checks
from tests.integration.test_postgres_pack import EXPECT, PACK, QUIET_HISTORY, by_object, problem_db


async def hold_access_exclusive(url: str, table: str) -> asyncpg.Connection:
    holder = await asyncpg.connect(url)
    await holder.execute("SET application_name = 'schema-migration'")
    await holder.execute("BEGIN")
    await holder.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE /* the migration */")
    return holder


async def test_a_locked_table_is_reported_with_its_holder_and_the_other_tables_are_judged(pg_db):
    await asyncio.to_thread(problem_db, pg_db)
    holder = await hold_access_exclusive(pg_db.url, "order_items")
    try:
        await support.pg_until(pg_db.url, "SELECT clock_timestamp() - xact_start > interval '1.1 s' "
                               "FROM pg_stat_activity WHERE pid = $1", holder.get_server_pid())
        settings = support.settings_for(pg={"kind": "postgres", "url": pg_db.url, "expect": EXPECT,
                                            "checks": QUIET_HISTORY})
        result = await support.run_report_async(settings, checks=[*PACK, "postgres.locked-relation"])
        assert result.errors == []
        [locked] = support.by_check(result.findings, "postgres.locked-relation")
        assert locked.object == "public.order_items" and locked.severity is Severity.HIGH
        evidence = locked.evidence
        assert evidence["pid"] == holder.get_server_pid() and evidence["granted"] is True
        assert evidence["application_name"] == "schema-migration" and evidence["lock_mode"] == "AccessExclusiveLock"
        assert "the migration" in evidence["query"] and evidence["age_s"] >= 1
        assert f"pid {holder.get_server_pid()}" in locked.message and "schema-migration" in locked.message

        findings = result.findings
        # The other tables: judged as on an unlocked database.
        assert list(by_object(findings, "postgres.fk-missing-index")) == ['public."Order Lines"("productId")']
        assert list(by_object(findings, "postgres.invalid-index")) == ["public.dup_values_v_key"]
        assert sorted(by_object(findings, "postgres.no-primary-key")) == ["public.audit_log"]
        assert "public.rain_events.transaction_id" in by_object(findings, "postgres.fk-type-mismatch")
        # The locked one: skipped, never judged on half its facts.
        assert not [f for f in findings if "order_items" in f.object and f.check != "postgres.locked-relation"]
    finally:
        await holder.close()
    quiet = await support.run_report_async(settings, checks=["postgres.locked-relation", "postgres.duplicate-index"])
    assert support.by_check(quiet.findings, "postgres.locked-relation") == []
    assert list(by_object(quiet.findings, "postgres.duplicate-index")) == ["public.order_items_qty_copy"]


async def test_a_session_waiting_for_the_lock_is_reported_with_the_one_it_waits_for(pg_db):
    await asyncio.to_thread(problem_db, pg_db)
    reader = await asyncpg.connect(pg_db.url)
    waiter = await asyncpg.connect(pg_db.url)
    try:
        await reader.execute("BEGIN")
        await reader.execute("SELECT count(*) FROM products")
        await waiter.execute("SET application_name = 'alter-products'")
        pending = asyncio.create_task(waiter.execute("ALTER TABLE products ADD COLUMN sku text"))
        await support.pg_until(pg_db.url, "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1",
                               waiter.get_server_pid())
        settings = support.settings_for(pg={"kind": "postgres", "url": pg_db.url, "expect": EXPECT,
                                            "checks": QUIET_HISTORY})
        result = await support.run_report_async(settings, checks=[*PACK, "postgres.locked-relation"])
        assert result.errors == []
        [locked] = support.by_check(result.findings, "postgres.locked-relation")
        assert locked.object == "public.products" and locked.evidence["granted"] is False
        assert locked.evidence["application_name"] == "alter-products"
        assert locked.evidence["blocked_by"] == [reader.get_server_pid()]
        assert sorted(by_object(result.findings, "postgres.no-primary-key")) == ["public.audit_log"]
        await reader.execute("ROLLBACK")
        await pending
    finally:
        await reader.close()
        await waiter.close()


class CountsOrders(Check):
    """Reads the orders table itself, so a lock on it makes this check fail (lock_timeout)."""

    id = "test.pg-counts-orders"
    engine = "postgres"
    title = "Orders counted"
    severity = Severity.LOW
    rationale = "Test check."
    fix_availability = FixAvailability.ALWAYS

    async def gather(self, session: object, scope: Scope) -> int:
        return await session.fetchval("SELECT count(*) FROM public.orders")

    def evaluate(self, facts: int, scope: Scope) -> list[Finding]:
        fix = Fix(summary="comment", safety=FixSafety.SAFE, lock="none",
                  steps=(FixStep("sql", "COMMENT ON TABLE public.orders IS 'counted'"),),
                  inverse=(FixStep("sql", "COMMENT ON TABLE public.orders IS NULL"),))
        return [self.finding(scope, object="public.orders", title="t", message=f"{facts} orders", fix=fix)]


async def test_fix_says_the_recheck_failed_and_why_instead_of_maybe_fixed(pg_db, tmp_path, monkeypatch, capsys):
    import console.formats.sarif_format
    import console.runtime
    from console.cli import main

    await asyncio.to_thread(pg_db.execute, "CREATE TABLE orders (id int PRIMARY KEY)")
    registry = fix_checks.registry(CountsOrders)
    for where in (console.runtime, console.formats.sarif_format):  # the modules that load the registry
        monkeypatch.setattr(where, "load_registry", lambda *a, **k: registry)
    config = tmp_path / "dbvitals.toml"
    config.write_text(f'journal = "{tmp_path / "j.jsonl"}"\n\n[targets.pg]\nkind = "postgres"\n'
                      f'url = "{pg_db.url}"\nallow_fixes = true\n')
    wanted = finding_id(CountsOrders.id, "pg", "public.orders")
    holder = await hold_access_exclusive(pg_db.url, "orders")
    try:
        code = await asyncio.to_thread(main, ["fix", f"pg/{CountsOrders.id}/{wanted}", "--yes", "--config", str(config)])
    finally:
        await holder.close()
    captured = capsys.readouterr()
    assert code == 3, captured
    assert "may be fixed already" not in captured.out + captured.err
    assert f"finding {wanted} was not found, but the re-check failed" in captured.err
    assert "test.pg-counts-orders on pg failed" in captured.err and "LockNotAvailable" in captured.err
    assert not (tmp_path / "j.jsonl").exists()  # nothing applied, nothing journaled
