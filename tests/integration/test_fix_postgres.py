"""Applying and undoing SQL fixes on a real PostgreSQL: CREATE/DROP INDEX CONCURRENTLY outside
a transaction, an ALTER in one, the refusals, and a build that fails or is killed mid-way."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from checks.config import config_from_dict
from checks.contract import Scope
from checks.fixes import FixLimits, Journal, apply_fix, find_finding, plan_fix, undo_fix
from checks.model import Finding, Fix, FixSafety, FixStep, finding_id
from tests.data import fix_checks

PASSWORD = "s3cret-Pa55word"  # trust auth ignores it; the journal must never hold it


def settings_for(pg_db, tmp_path, **target: Any):
    url = pg_db.url.replace("postgres@", f"postgres:{PASSWORD}@")
    return config_from_dict({
        "targets": {"pg": {"kind": "postgres", "url": url, "allow_fixes": True, **target}},
        "journal": str(tmp_path / "journal.jsonl"),
    })


@pytest.fixture
def orders(pg_db):
    pg_db.execute("CREATE TABLE orders (id int PRIMARY KEY, customer_id int, note varchar(10))")
    pg_db.execute("INSERT INTO orders SELECT g, g % 7, 'n' FROM generate_series(1, 1000) g")
    return pg_db


def plan(settings, check, obj, *, allow_unsafe=False, registry=None):
    registry = registry or fix_checks.registry()

    async def go():
        found = await find_finding(settings, registry, finding_id(check, "pg", obj))
        assert found is not None, f"{check} did not report {obj}"
        return await plan_fix(settings, registry, found, allow_unsafe=allow_unsafe)

    return asyncio.run(go()), registry


def indexes(pg_db) -> dict[str, bool]:
    rows = pg_db.fetch("SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                       "WHERE i.indrelid = 'orders'::regclass AND NOT i.indisprimary")
    return {r["relname"]: r["indisvalid"] for r in rows}


def assert_no_secret(tmp_path):
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert PASSWORD not in path.read_text(errors="replace"), path


def test_create_index_concurrently_then_undo_drops_it(orders, tmp_path):
    settings = settings_for(orders, tmp_path)
    the_plan, registry = plan(settings, "test.pg-missing-index", "public.orders.customer_id")
    assert the_plan.applicable and not the_plan.gone
    progress: list[str] = []
    outcome = asyncio.run(apply_fix(settings, registry, the_plan, on_progress=progress.append))
    assert (outcome.outcome, outcome.verified) == ("fixed", True), outcome.message
    assert indexes(orders) == {"orders_customer_id_idx": True}
    assert any("CREATE INDEX CONCURRENTLY" in p for p in progress)

    journal = Journal(tmp_path / "journal.jsonl")
    entry = journal.get(outcome.entry_id)
    assert (entry.kind, entry.state, entry.steps_done, entry.verified) == ("fix", "fixed", 1, True)
    assert entry.finding["check"] == "test.pg-missing-index" and entry.target == "pg"
    assert entry.inverse[0]["command"].startswith("DROP INDEX CONCURRENTLY")
    assert entry.user and entry.duration_ms > 0 and "***" in entry.url

    undone = asyncio.run(undo_fix(settings, registry, outcome.entry_id))
    assert (undone.outcome, undone.verified) == ("fixed", True), undone.message
    assert indexes(orders) == {}
    assert journal.undone_by(outcome.entry_id).id == undone.entry_id
    again = asyncio.run(undo_fix(settings, registry, outcome.entry_id))
    assert again.outcome == "refused" and "already undone" in again.message
    assert_no_secret(tmp_path)


def test_undo_is_verified_by_the_object_even_when_the_finding_id_changed(orders, tmp_path):
    """Issue #25 item 6: `fix <id>` then `undo` was "not undone" because the id changed between
    them; and the undo (a build) was described with the fix's drop wording."""
    orders.execute("CREATE INDEX orders_customer ON orders (customer_id); "
                   "CREATE INDEX orders_customer_note ON orders (customer_id, note)")
    settings = settings_for(orders, tmp_path)
    registry = fix_checks.registry()

    async def plan_drop():
        found = await find_finding(settings, registry, finding_id("postgres.redundant-index", "pg",
                                                                  "public.orders_customer", "orders_customer_note"))
        assert found is not None
        return await plan_fix(settings, registry, found)

    the_plan = asyncio.run(plan_drop())
    assert the_plan.applicable, the_plan.refusals
    outcome = asyncio.run(apply_fix(settings, registry, the_plan))
    assert (outcome.outcome, outcome.verified) == ("fixed", True), outcome.message
    assert "orders_customer" not in indexes(orders)
    # The covering index gets a new name: the finding the undo brings back has another id
    # (it names the index that covers it), on the same object.
    orders.execute("ALTER INDEX orders_customer_note RENAME TO orders_customer_note_v2")
    undone = asyncio.run(undo_fix(settings, registry, outcome.entry_id))
    assert (undone.outcome, undone.verified) == ("fixed", True), undone.message
    assert "reports public.orders_customer again" in undone.message
    assert indexes(orders)["orders_customer"] is True
    entry = Journal(tmp_path / "journal.jsonl").get(undone.entry_id)
    assert entry.lock is not None and "waits for transactions using the index" not in entry.lock
    assert entry.lock.startswith("SHARE UPDATE EXCLUSIVE on public.orders")  # the build's own lock


def test_alter_runs_in_one_transaction_with_allow_unsafe_and_undoes(orders, tmp_path):
    settings = settings_for(orders, tmp_path)
    the_plan, registry = plan(settings, "test.pg-narrow-column", "public.orders.note", allow_unsafe=True)
    outcome = asyncio.run(apply_fix(settings, registry, the_plan, allow_unsafe=True))
    assert (outcome.outcome, outcome.verified) == ("fixed", True), outcome.message
    column = orders.fetch("SELECT data_type, col_description('orders'::regclass, 3) AS comment "
                          "FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'note'")[0]
    assert (column["data_type"], column["comment"]) == ("text", "widened by dbvitals")
    assert asyncio.run(undo_fix(settings, registry, outcome.entry_id)).outcome == "refused"  # unsafe inverse too
    undone = asyncio.run(undo_fix(settings, registry, outcome.entry_id, allow_unsafe=True))
    assert undone.outcome == "fixed", undone.message
    column = orders.fetch("SELECT character_maximum_length AS n FROM information_schema.columns "
                          "WHERE table_name = 'orders' AND column_name = 'note'")[0]
    assert column["n"] == 10
    assert_no_secret(tmp_path)


def test_a_failing_step_rolls_back_its_whole_transaction(orders, tmp_path):
    orders.execute("INSERT INTO orders VALUES (5000, 1, 'n')")
    settings = settings_for(orders, tmp_path)
    the_plan, registry = plan(settings, "test.pg-narrow-column", "public.orders.note", allow_unsafe=True)
    broken = FixStep("sql", "COMMENT ON COLUMN public.orders.no_such_column IS 'x'")
    the_plan.steps = (the_plan.steps[0], broken)
    outcome = asyncio.run(apply_fix(settings, registry, the_plan, allow_unsafe=True))
    assert outcome.outcome == "failed" and "steps 1-2 failed (rolled back together)" in outcome.message
    assert orders.fetch("SELECT data_type FROM information_schema.columns WHERE table_name = 'orders' "
                        "AND column_name = 'note'")[0]["data_type"] == "character varying"
    entry = Journal(tmp_path / "journal.jsonl").get(outcome.entry_id)
    assert (entry.state, entry.steps_done) == ("failed", 0)


def test_unsafe_fix_is_refused_without_allow_unsafe(orders, tmp_path):
    settings = settings_for(orders, tmp_path)
    the_plan, registry = plan(settings, "test.pg-narrow-column", "public.orders.note")
    assert any("--allow-unsafe" in r and "ACCESS EXCLUSIVE" in r for r in the_plan.refusals)
    outcome = asyncio.run(apply_fix(settings, registry, the_plan))
    assert outcome.outcome == "refused" and "--allow-unsafe" in outcome.message
    assert Journal(tmp_path / "journal.jsonl").get(outcome.entry_id).state == "refused"
    assert orders.fetch("SELECT data_type FROM information_schema.columns WHERE table_name = 'orders' "
                        "AND column_name = 'note'")[0]["data_type"] == "character varying"


def test_fix_is_refused_on_a_target_without_allow_fixes(orders, tmp_path):
    settings = settings_for(orders, tmp_path, allow_fixes=False)
    the_plan, registry = plan(settings, "test.pg-missing-index", "public.orders.customer_id")
    assert the_plan.refusals == ["target pg does not allow fixes (set allow_fixes = true in [targets.pg] to permit them)"]
    outcome = asyncio.run(apply_fix(settings, registry, the_plan, allow_unsafe=True))
    assert outcome.outcome == "refused"
    assert indexes(orders) == {}


def test_manual_fix_is_never_applied(orders, tmp_path):
    settings = settings_for(orders, tmp_path)
    the_plan, registry = plan(settings, "test.pg-manual", "public.orders", allow_unsafe=True)
    assert any("manual fix" in r for r in the_plan.refusals)
    outcome = asyncio.run(apply_fix(settings, registry, the_plan, allow_unsafe=True))
    assert outcome.outcome == "refused"
    assert orders.fetch("SELECT to_regclass('public.orders') IS NOT NULL AS present")[0]["present"]


def test_a_problem_gone_since_the_report_is_not_applied(orders, tmp_path):
    settings = settings_for(orders, tmp_path)
    registry = fix_checks.registry()
    stale = asyncio.run(find_finding(settings, registry, finding_id("test.pg-missing-index", "pg", "public.orders.customer_id")))
    orders.execute("CREATE INDEX orders_customer_id_idx ON orders (customer_id)")
    the_plan = asyncio.run(plan_fix(settings, registry, stale))
    assert the_plan.gone and the_plan.finding is None
    outcome = asyncio.run(apply_fix(settings, registry, the_plan))
    assert outcome.outcome == "refused" and "no longer exists" in outcome.message


class UniqueCustomer(fix_checks.PgMissingIndex):
    """Proposes a UNIQUE index on a column with duplicates: the concurrent build fails."""

    id = "test.pg-unique-customer"
    index = "orders_customer_id_key"

    def evaluate(self, facts: bool, scope: Scope) -> list[Finding]:
        if facts:
            return []
        fix = Fix(summary="unique index", safety=FixSafety.SAFE, lock="SHARE UPDATE EXCLUSIVE",
                  steps=(FixStep("sql", f"CREATE UNIQUE INDEX CONCURRENTLY {self.index} ON public.orders (customer_id)",
                                 transactional=False),),
                  inverse=(FixStep("sql", f"DROP INDEX CONCURRENTLY IF EXISTS {self.index}", transactional=False),))
        return [self.finding(scope, object="public.orders.customer_id", title="t", message="m", fix=fix)]


def test_failed_concurrent_build_drops_the_invalid_index_and_reports_it(orders, tmp_path):
    settings = settings_for(orders, tmp_path)
    the_plan, registry = plan(settings, UniqueCustomer.id, "public.orders.customer_id",
                              registry=fix_checks.registry(UniqueCustomer))
    outcome = asyncio.run(apply_fix(settings, registry, the_plan))
    assert outcome.outcome == "failed"
    assert "UniqueViolation" in outcome.message
    assert outcome.leftovers == [
        "the failed build left INVALID index public.orders_customer_id_key: dropped it "
        "(DROP INDEX CONCURRENTLY IF EXISTS public.orders_customer_id_key)"
    ]
    assert indexes(orders) == {}
    entry = Journal(tmp_path / "journal.jsonl").get(outcome.entry_id)
    assert entry.state == "failed" and entry.leftovers == outcome.leftovers
    undo = asyncio.run(undo_fix(settings, registry, outcome.entry_id))
    assert undo.outcome == "refused" and "nothing to undo" in undo.message
    assert_no_secret(tmp_path)


def test_fix_session_terminated_mid_build_is_journaled_and_its_invalid_index_dropped(orders, tmp_path):
    settings = settings_for(orders, tmp_path)
    the_plan, registry = plan(settings, "test.pg-missing-index", "public.orders.customer_id")

    async def scenario():
        # An open writing transaction makes CREATE INDEX CONCURRENTLY wait for it, mid-build.
        blocker = await asyncpg.connect(orders.url)
        admin = await asyncpg.connect(orders.url)
        try:
            writer = blocker.transaction()
            await writer.start()
            await blocker.execute("INSERT INTO orders VALUES (9999, 1, 'x')")
            task = asyncio.create_task(apply_fix(settings, registry, the_plan, limits=FixLimits(lock_timeout_s=60)))
            for _ in range(200):
                pid = await admin.fetchval(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND application_name LIKE 'dbvitals fix %' AND query LIKE '/* dbvitals */ CREATE INDEX%' AND wait_event IS NOT NULL")
                if pid:
                    break
                await asyncio.sleep(0.05)
            assert pid, "the fix session never started its build"
            invalid = await admin.fetchval("SELECT count(*) FROM pg_index WHERE NOT indisvalid AND indrelid = 'orders'::regclass")
            assert invalid == 1  # half-built
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
            await writer.rollback()
            return await task
        finally:
            await blocker.close()
            await admin.close()

    outcome = asyncio.run(scenario())
    assert outcome.outcome == "failed"
    assert "terminating connection" in outcome.message or "Connection" in outcome.message, outcome.message
    assert outcome.leftovers and "dropped it" in outcome.leftovers[0]
    assert indexes(orders) == {}
    entry = Journal(tmp_path / "journal.jsonl").get(outcome.entry_id)
    assert (entry.state, entry.steps_done) == ("failed", 0)
    assert "INVALID index public.orders_customer_id_idx" in entry.message
    # Nothing half-done is left, so applying again simply works.
    again, _ = plan(settings, "test.pg-missing-index", "public.orders.customer_id")
    assert asyncio.run(apply_fix(settings, registry, again)).outcome == "fixed"
    assert_no_secret(tmp_path)


def test_an_invalid_index_left_by_a_killed_build_is_dropped_before_building_again(orders, tmp_path):
    from checks.fixes import finding_summary, fix_entry

    # What a build killed with its server (or its dbvitals process) leaves: the index, INVALID,
    # and in the journal an entry that started building it and never finished.
    orders.execute("CREATE INDEX orders_customer_id_idx ON orders (customer_id)")
    orders.execute("UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'orders_customer_id_idx'::regclass")
    settings = settings_for(orders, tmp_path)
    the_plan, registry = plan(settings, "test.pg-missing-index", "public.orders.customer_id")
    journal = Journal(tmp_path / "journal.jsonl")
    killed = fix_entry("fix", "pg", settings.targets["pg"], finding_summary(the_plan.finding), the_plan.finding.fix,
                       the_plan.steps, the_plan.inverse)
    journal.append(killed)
    outcome = asyncio.run(apply_fix(settings, registry, the_plan))
    assert outcome.outcome == "fixed", outcome.message
    assert (f"dropped INVALID index public.orders_customer_id_idx left by an earlier, interrupted build "
            f"(journal entry {killed.id})") in outcome.message
    assert indexes(orders) == {"orders_customer_id_idx": True}
