"""postgres.locked-relation judged on pg_locks rows as the snapshot reads them: a held lock names
its holder, a waiting request names the sessions it waits for, a prepared transaction has no pid;
and the name a new index gets, kept stable across an interrupted build."""

from __future__ import annotations

from checks.postgres.target import PostgresTarget
from checks.contract import Scope
from checks.model import TargetState, TargetStatus
from checks.postgres._catalog import build_catalog
from checks.postgres.locked_relation import Facts, LockedRelation


def lock_row(**changes):
    row = dict(oid=16400, table_oid=16400, relation="public.orders", kind="r", granted=True, pid=4242,
               application_name="migrate", user_name="deploy", state="idle in transaction",
               query="LOCK TABLE orders IN ACCESS EXCLUSIVE MODE", age_s=125.0, blocked_by=None)
    row.update(changes)
    return row


def findings(*locks):
    catalog = build_catalog({"tables": [], "columns": [], "constraints": [], "indexes": [], "search_path": [],
                             "locks": list(locks)})
    config = PostgresTarget(kind="postgres", url="postgresql://u@h/db")
    status = TargetStatus(name="t", kind="postgres", state=TargetState.CONNECTED)
    check = LockedRelation()
    return check.evaluate(Facts(catalog), Scope(target="t", config=config, options=check.Options(), status=status))


def test_no_lock_no_finding():
    assert findings() == []


def test_a_held_lock_names_its_holder_and_its_age():
    [finding] = findings(lock_row())
    assert finding.object == "public.orders"
    assert "locked ACCESS EXCLUSIVE by pid 4242 (deploy, migrate, idle in transaction, transaction open 2m05s)" in finding.message
    assert finding.evidence["query"].startswith("LOCK TABLE") and finding.evidence["age_s"] == 125.0


def test_a_waiting_request_names_what_it_waits_for_and_one_finding_per_relation():
    [finding] = findings(lock_row(granted=False, pid=5151, blocked_by=[4242, 4343]),
                         lock_row(granted=False, pid=5252, blocked_by=[4242]))
    assert "pid 5151" in finding.message and "behind pids 4242, 4343" in finding.message
    assert finding.evidence["granted"] is False and finding.evidence["blocked_by"] == [4242, 4343]


def test_a_prepared_transaction_and_a_hidden_query():
    [finding] = findings(lock_row(pid=None, application_name=None, user_name=None, state=None, age_s=None,
                                  query="<insufficient privilege>"))
    assert "a prepared transaction (see pg_prepared_xacts)" in finding.message
    assert finding.evidence["query"] is None and "pg_read_all_stats" in finding.message


def test_a_locked_index_is_reported_as_an_index():
    [finding] = findings(lock_row(oid=16500, relation="public.orders_pkey", kind="i"))
    assert finding.evidence["relation_kind"] == "index"


def test_a_new_index_keeps_the_name_of_its_own_interrupted_build_and_no_other():
    from checks.postgres._fixes import name_for_new_index
    from tests.unit.test_postgres_evaluate import Schema

    s = Schema()
    s.table("child", {"id": "bigint", "parent_id": "bigint", "note": "text"})
    s.index("child", ["parent_id"], name="child_parent_id_idx", valid=False)  # an interrupted build of it
    s.index("child", ["note"], name="child_note_idx", unique=True, valid=False)  # a failed unique build
    s.index("child", ["parent_id", "note"], name="child_parent_id_note_idx")  # valid: someone's index
    catalog = s.build()
    table = next(t for t in catalog.tables.values() if t.name == "child")
    taken = {i.name for i in catalog.indexes}
    assert name_for_new_index(catalog, table, ("parent_id",), set(taken)) == "child_parent_id_idx"
    # Not this build's leftover (unique, or valid, or on other columns): the name stays taken.
    assert name_for_new_index(catalog, table, ("note",), set(taken)) == "child_note_idx1"
    assert name_for_new_index(catalog, table, ("parent_id", "note"), set(taken)) == "child_parent_id_note_idx1"
    assert name_for_new_index(catalog, table, ("note", "parent_id"), set(taken)) == "child_note_parent_id_idx"
