"""The PostgreSQL pack's pure judgement: catalog facts in, findings out, as tables of cases."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest

from checks.config import ReferenceExpectation
from checks.postgres.target import PostgresTarget
from checks.contract import Scope
from checks.model import FixSafety, Severity, TargetState, TargetStatus
from checks.postgres import duplicate_index, fk_missing_index, fk_type_mismatch, invalid_index, long_transactions
from checks.postgres._window import Counters, WriteWindow
from checks.postgres import _advisor, missing_index, no_primary_key, redundant_index, sequence_exhaustion, unused_index
from checks.postgres._catalog import Catalog, build_catalog
from checks.postgres._statement_shape import parse


class Schema:
    """Catalog rows as the snapshot queries return them, built by hand."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {k: [] for k in ("tables", "columns", "constraints", "indexes")}
        self.rows["search_path"] = [{"schemas": ["public"]}]
        self.next_oid = 16384
        self.names: dict[str, int] = {}

    def _oid(self) -> int:
        self.next_oid += 1
        return self.next_oid

    def table(self, name: str, columns: dict[str, str], *, schema: str = "public", kind: str = "r", rows: float = 1000,
              parent: str | None = None, not_null: tuple[str, ...] = ()) -> int:
        oid = self._oid()
        self.names[name] = oid
        self.rows["tables"].append(dict(oid=oid, schema=schema, name=name, kind=kind, is_partition=parent is not None,
                                        parent=self.names.get(parent), rows_estimate=rows, bytes=8192 * 10,
                                        replica_identity="d", readable=True))
        for num, (column, type_) in enumerate(columns.items(), 1):
            self.rows["columns"].append(dict(table_oid=oid, num=num, name=column, type=type_, base_type=type_,
                                             not_null=column in not_null))
        return oid

    def num(self, table: str, column: str) -> int:
        oid = self.names[table]
        return next(c["num"] for c in self.rows["columns"] if c["table_oid"] == oid and c["name"] == column)

    def constraint(self, kind: str, table: str, columns: list[str], *, name: str | None = None, ref: str | None = None,
                   ref_columns: list[str] = (), index: int = 0, inherited: bool = False) -> int:
        oid = self._oid()
        self.rows["constraints"].append(dict(
            oid=oid, name=name or f"{table}_{'_'.join(columns)}_{kind}", kind=kind, table_oid=self.names[table],
            ref_table_oid=self.names[ref] if ref else 0, columns=[self.num(table, c) for c in columns],
            ref_columns=[self.num(ref, c) for c in ref_columns] if ref else None, index_oid=index,
            inherited=inherited, validated=True))
        return oid

    def index(self, table: str, columns: list[str], *, name: str | None = None, unique: bool = False,
              primary: bool = False, valid: bool = True, method: str = "btree", predicate: str | None = None,
              include: list[str] = (), kind: str = "i", attached: bool = False, size: int = 16384) -> int:
        oid = self._oid()
        name = name or f"{table}_{'_'.join(columns)}_idx"
        keys = [self.num(table, c) for c in [*columns, *include]]
        cols = ", ".join(columns)
        self.rows["indexes"].append(dict(
            oid=oid, table_oid=self.names[table], schema="public", name=name, kind=kind, attached=attached,
            method=method, keys=keys, key_count=len(columns), is_unique=unique or primary, is_primary=primary,
            is_exclusion=False, valid=valid, ready=True, predicate=predicate, expressions=None,
            opclasses=[1978] * len(keys), collations=[0] * len(keys), options=[0] * len(keys),
            definition=f"CREATE {'UNIQUE ' if unique or primary else ''}INDEX {name} ON {'ONLY ' if kind == 'I' else ''}"
                       f"public.{table} USING {method} ({cols})" + (f" WHERE {predicate}" if predicate else ""),
            bytes=size))
        return oid

    def primary_key(self, table: str, columns: list[str]) -> None:
        index = self.index(table, columns, name=f"{table}_pkey", primary=True)
        self.constraint("p", table, columns, name=f"{table}_pkey", index=index)

    def build(self) -> Catalog:
        return build_catalog(self.rows)


def scope(check, expect: list[ReferenceExpectation] = (), **options: Any) -> Scope:
    config = PostgresTarget(kind="postgres", url="postgresql://u@h/db", expect={"references": list(expect)})
    status = TargetStatus(name="t", kind="postgres", state=TargetState.CONNECTED)
    return Scope(target="t", config=config, options=check.Options(**options), status=status)


def objects(findings) -> list[str]:
    return sorted(f.object for f in findings)


# --- fk-missing-index ---------------------------------------------------------------------------------

def fk_schema() -> Schema:
    s = Schema()
    s.table("customers", {"id": "bigint", "region": "text"})
    s.primary_key("customers", ["id"])
    s.table("orders", {"id": "bigint", "customer_id": "bigint", "region": "text", "status": "text"})
    s.primary_key("orders", ["id"])
    return s


@pytest.mark.parametrize("index, reported", [
    (None, True),
    ({"columns": ["customer_id"]}, False),
    ({"columns": ["customer_id", "status"]}, False),  # leading columns cover it
    ({"columns": ["status", "customer_id"]}, True),  # not leading
    ({"columns": ["customer_id"], "predicate": "status = 'open'"}, True),  # partial: not counted
    ({"columns": ["customer_id"], "valid": False}, True),
])
def test_fk_missing_index_single_column(index, reported):
    s = fk_schema()
    s.constraint("f", "orders", ["customer_id"], name="orders_customer_fk", ref="customers", ref_columns=["id"])
    if index:
        s.index("orders", **index)
    check = fk_missing_index.FkMissingIndex()
    findings = check.evaluate(fk_missing_index.Facts(s.build()), scope(check))
    assert objects(findings) == (["public.orders(customer_id)"] if reported else [])
    if reported:
        fix = findings[0].fix
        assert fix.safety is FixSafety.SAFE
        name = fix.summary.removeprefix("Create index ")  # _idx1 where a partial index holds the name
        assert name.startswith("orders_customer_id_idx")
        assert fix.steps[0].command == f"CREATE INDEX CONCURRENTLY {name} ON public.orders (customer_id);"
        assert fix.steps[0].transactional is False
        assert fix.inverse[0].command == f"DROP INDEX CONCURRENTLY public.{name};"


def test_fk_missing_index_composite_in_any_order():
    s = fk_schema()
    s.constraint("u", "customers", ["id", "region"], name="customers_id_region")
    s.constraint("f", "orders", ["customer_id", "region"], ref="customers", ref_columns=["id", "region"])
    s.index("orders", ["region", "customer_id", "status"])
    check = fk_missing_index.FkMissingIndex()
    assert check.evaluate(fk_missing_index.Facts(s.build()), scope(check)) == []


def test_fk_missing_index_on_partitioned_table_uses_on_only_and_attaches():
    s = fk_schema()
    s.table("events", {"id": "bigint", "customer_id": "bigint"}, kind="p", rows=0)
    s.table("events_2024", {"id": "bigint", "customer_id": "bigint"}, parent="events")
    s.table("events_2025", {"id": "bigint", "customer_id": "bigint"}, parent="events")
    s.constraint("f", "events", ["customer_id"], name="events_customer_fk", ref="customers", ref_columns=["id"])
    for part in ("events_2024", "events_2025"):  # the partitions' inherited copies
        s.constraint("f", part, ["customer_id"], name="events_customer_fk", ref="customers", ref_columns=["id"], inherited=True)
    check = fk_missing_index.FkMissingIndex()
    [finding] = check.evaluate(fk_missing_index.Facts(s.build()), scope(check))
    commands = [step.command for step in finding.fix.steps]
    assert commands[0] == "CREATE INDEX events_customer_id_idx ON ONLY public.events (customer_id);"
    assert commands[1] == "CREATE INDEX CONCURRENTLY events_2024_events_customer_id_idx ON public.events_2024 (customer_id);"
    assert commands[2] == "ALTER INDEX public.events_customer_id_idx ATTACH PARTITION public.events_2024_events_customer_id_idx;"
    assert len(commands) == 5
    assert finding.fix.inverse[0].command == "DROP INDEX public.events_customer_id_idx;"


# --- duplicate-index and redundant-index --------------------------------------------------------------

def test_duplicate_keeps_the_oldest_and_drops_the_newer():
    s = fk_schema()
    s.index("orders", ["status"], name="orders_status_a")
    s.index("orders", ["status"], name="orders_status_b", size=32768)
    check = duplicate_index.DuplicateIndex()
    [finding] = check.evaluate(duplicate_index.Facts(s.build()), scope(check))
    assert finding.object == "public.orders_status_b"
    assert finding.evidence["duplicate_of"]["definition"].startswith("CREATE INDEX orders_status_a")
    assert finding.evidence["index"]["bytes"] == 32768
    assert finding.fix.steps[0].command == "DROP INDEX CONCURRENTLY public.orders_status_b;"
    assert finding.fix.inverse[0].command == "CREATE INDEX CONCURRENTLY orders_status_b ON public.orders USING btree (status);"


def test_duplicate_of_a_primary_key_drops_the_plain_index_never_the_constraint():
    s = fk_schema()
    s.index("orders", ["id"], name="orders_id_copy", unique=True)  # older-looking name, newer oid
    check = duplicate_index.DuplicateIndex()
    findings = check.evaluate(duplicate_index.Facts(s.build()), scope(check))
    # orders_pkey is primary (is_primary differs only through constraint; signature is the same)
    assert objects(findings) == ["public.orders_id_copy"]
    assert "orders_pkey" not in findings[0].fix.steps[0].command


def test_duplicates_that_both_back_constraints_have_no_fix():
    s = fk_schema()
    index = s.index("orders", ["status"], name="orders_status_key", unique=True)
    s.constraint("u", "orders", ["status"], name="orders_status_key", index=index)
    index = s.index("orders", ["status"], name="orders_status_key1", unique=True)
    s.constraint("u", "orders", ["status"], name="orders_status_key1", index=index)
    check = duplicate_index.DuplicateIndex()
    [finding] = check.evaluate(duplicate_index.Facts(s.build()), scope(check))
    assert finding.fix is None
    assert "constraint" in finding.message


@pytest.mark.parametrize("narrow, wide, redundant", [
    ({"columns": ["status"]}, {"columns": ["status", "region"]}, True),
    ({"columns": ["status"]}, {"columns": ["region", "status"]}, False),
    ({"columns": ["status"], "unique": True}, {"columns": ["status", "region"]}, False),
    ({"columns": ["status"], "method": "hash"}, {"columns": ["status", "region"]}, True),  # equality served by the btree
    ({"columns": ["status"], "method": "hash"}, {"columns": ["region", "status"]}, False),
    ({"columns": ["status"], "method": "hash"}, {"columns": ["status"], "predicate": "region = 'eu'"}, False),
    ({"columns": ["id", "status"], "unique": True}, {"columns": ["region"]}, True),  # implied by the primary key on id
    ({"columns": ["status", "id"], "unique": True}, {"columns": ["region"]}, False),
    ({"columns": ["id", "status"], "unique": True, "predicate": "region = 'eu'"}, {"columns": ["region"]}, False),
    ({"columns": ["status"], "predicate": "region = 'eu'"}, {"columns": ["status", "region"]}, False),
    ({"columns": ["status"], "predicate": "region = 'eu'"}, {"columns": ["status", "region"], "predicate": "region = 'eu'"}, True),
    ({"columns": ["status"], "include": ["region"]}, {"columns": ["status", "region"]}, True),
    ({"columns": ["status"], "include": ["id"]}, {"columns": ["status", "region"]}, False),
    ({"columns": ["status"]}, {"columns": ["status"], "unique": True}, True),
    ({"columns": ["status"]}, {"columns": ["status", "region"], "valid": False}, False),
])
def test_redundant_index_cases(narrow, wide, redundant):
    s = fk_schema()
    s.index("orders", name="narrow", **narrow)
    s.index("orders", name="wide", **wide)
    check = redundant_index.RedundantIndex()
    findings = check.evaluate(redundant_index.Facts(s.build()), scope(check))
    assert objects(findings) == (["public.narrow"] if redundant else [])
    if redundant:
        assert findings[0].evidence["covered_by"]["definition"].startswith("CREATE")
        assert re.match(r"CREATE (UNIQUE )?INDEX CONCURRENTLY narrow ", findings[0].fix.inverse[0].command)


def test_partition_indexes_are_judged_at_the_parent():
    s = Schema()
    s.table("m", {"a": "int", "b": "int"}, kind="p")
    s.table("m1", {"a": "int", "b": "int"}, parent="m")
    s.index("m", ["a"], name="m_a", kind="I")
    s.index("m", ["a", "b"], name="m_a_b", kind="I")
    s.index("m1", ["a"], name="m1_a", attached=True)
    s.index("m1", ["a", "b"], name="m1_a_b", attached=True)
    check = redundant_index.RedundantIndex()
    [finding] = check.evaluate(redundant_index.Facts(s.build()), scope(check))
    assert finding.object == "public.m_a"
    assert finding.fix.safety is FixSafety.UNSAFE  # a partitioned index cannot be dropped CONCURRENTLY
    assert finding.fix.steps[0].command == "DROP INDEX public.m_a;"
    assert finding.fix.inverse[0].command == "CREATE INDEX m_a ON public.m USING btree (a);"


# --- unused-index ---------------------------------------------------------------------------------------

NOW = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)


def history(days: float, reset: bool = True) -> unused_index.History:
    since = NOW - dt.timedelta(days=days)
    return unused_index.History(since if reset else None, since, NOW, False)


@pytest.mark.parametrize("index, scans, days, reported", [
    ({"columns": ["status"]}, 0, 30, True),
    ({"columns": ["status"]}, 3, 30, False),
    ({"columns": ["status"]}, 0, 2, False),  # too little history
    ({"columns": ["status"], "unique": True}, 0, 30, False),
    ({"columns": ["customer_id", "status"]}, 0, 30, False),  # serves the foreign key
    ({"columns": ["status"], "valid": False}, 0, 30, False),  # invalid-index's
])
def test_unused_index_cases(index, scans, days, reported):
    s = fk_schema()
    s.constraint("f", "orders", ["customer_id"], ref="customers", ref_columns=["id"])
    oid = s.index("orders", name="candidate", **index)
    snapshot = s.build()
    all_scans = {i.oid: 0 for i in snapshot.indexes} | {oid: scans}
    check = unused_index.UnusedIndex()
    findings = check.evaluate(unused_index.Facts(snapshot, all_scans, history(days)), scope(check))
    assert [f.object for f in findings if f.object == "public.candidate"] == (["public.candidate"] if reported else [])
    assert all(f.object != "public.orders_pkey" for f in findings)  # constraint-backing: never


def test_unused_index_names_its_history_source():
    s = fk_schema()
    oid = s.index("orders", ["status"], name="candidate")
    check = unused_index.UnusedIndex()
    [finding] = check.evaluate(unused_index.Facts(s.build(), {oid: 0}, history(10, reset=False)), scope(check))
    assert "pg_postmaster_start_time" in finding.evidence["counted_since_source"]
    assert finding.evidence["days_covered"] == 10.0
    assert "10 days" in finding.title


# --- invalid-index --------------------------------------------------------------------------------------

@pytest.mark.parametrize("unique, safety", [(False, FixSafety.SAFE), (True, FixSafety.UNSAFE)])
def test_invalid_index_drop_and_rebuild(unique, safety):
    s = fk_schema()
    s.index("orders", ["status"], name="orders_status_idx", unique=unique, valid=False)
    check = invalid_index.InvalidIndex()
    [finding] = check.evaluate(invalid_index.Facts(s.build()), scope(check))
    assert finding.fix.safety is safety
    assert [step.command for step in finding.fix.steps] == [
        "DROP INDEX CONCURRENTLY public.orders_status_idx;",
        f"CREATE {'UNIQUE ' if unique else ''}INDEX CONCURRENTLY orders_status_idx ON public.orders USING btree (status);",
    ]
    assert all(step.transactional is False for step in finding.fix.steps)


def test_invalid_partitioned_index_is_manual():
    s = Schema()
    s.table("m", {"a": "int"}, kind="p")
    s.table("m1", {"a": "int"}, parent="m")
    s.index("m", ["a"], name="m_a", kind="I", valid=False)
    check = invalid_index.InvalidIndex()
    [finding] = check.evaluate(invalid_index.Facts(s.build()), scope(check))
    assert finding.fix.safety is FixSafety.MANUAL
    assert finding.evidence["partitions"] == ["public.m1"]


# --- no-primary-key -------------------------------------------------------------------------------------

def test_no_primary_key_with_a_promotable_unique_index():
    s = Schema()
    s.table("logs", {"id": "bigint", "msg": "text"}, not_null=("id",))
    s.index("logs", ["id"], name="logs_id_key", unique=True)
    s.table("notes", {"body": "text"})
    s.table("ok", {"id": "int"})
    s.primary_key("ok", ["id"])
    check = no_primary_key.NoPrimaryKey()
    findings = {f.object: f for f in check.evaluate(no_primary_key.Facts(s.build()), scope(check))}
    assert sorted(findings) == ["public.logs", "public.notes"]
    promote = findings["public.logs"].fix
    assert promote.safety is FixSafety.UNSAFE
    assert promote.steps[0].command == "ALTER TABLE public.logs ADD CONSTRAINT logs_pkey PRIMARY KEY USING INDEX logs_id_key;"
    assert findings["public.notes"].fix.safety is FixSafety.MANUAL
    assert "GENERATED ALWAYS AS IDENTITY" in findings["public.notes"].fix.steps[0].command


def test_no_primary_key_on_a_partitioned_table_and_on_each_partition_without_one():
    """pg-index-health reports the partitioned table and its (default) partition."""
    s = Schema()
    s.table("m", {"a": "int"}, kind="p")
    for n in range(3):
        s.table(f"m{n}", {"a": "int"}, parent="m")
    s.primary_key("m2", ["a"])  # a partition may have a key of its own
    check = no_primary_key.NoPrimaryKey()
    findings = {f.object: f for f in check.evaluate(no_primary_key.Facts(s.build()), scope(check))}
    assert sorted(findings) == ["public.m", "public.m0", "public.m1"]
    assert findings["public.m"].evidence["partitions"] == 3 and findings["public.m"].severity is Severity.MEDIUM
    assert findings["public.m0"].severity is Severity.LOW and findings["public.m0"].evidence["partition_of"] == "public.m"


# --- sequence-exhaustion --------------------------------------------------------------------------------

def sequence(last: int | None, *, seq_type: str = "bigint", maximum: int = 2**63 - 1, readable: bool = True,
             cycle: bool = False, table: int | None = None, column: int | None = None) -> sequence_exhaustion.Sequence:
    return sequence_exhaustion.Sequence(
        oid=1, schema="public", name="orders_id_seq", type=seq_type, start=1, increment=1, max=maximum, min=1,
        cycle=cycle, readable=readable, last_value=last, table_oid=table, column_num=column)


@pytest.mark.parametrize("last, column_type, used, limited_by", [
    (1_073_741_824, "integer", 0.5, "the integer column it feeds"),
    (2_000_000_000, "integer", 0.93, "the integer column it feeds"),
    (2_000_000_000, "bigint", 0.0, "the bigint column"),  # a tie names the column
    (30_000, "smallint", 0.92, "the smallint column it feeds"),
])
def test_sequence_usage_is_measured_against_the_column_type(last, column_type, used, limited_by):
    measured = sequence_exhaustion.usage(sequence(last), column_type)
    assert measured.used == pytest.approx(used, abs=0.01)
    assert limited_by in measured.limited_by


def pgih_sequence(name: str, seq_type: str, increment: int, *, cycle: bool = False, last: int | None = None):
    """pg-index-health's fixture: `CREATE SEQUENCE seq_N AS type INCREMENT BY n MAXVALUE 100 START 92`, never called."""
    return sequence_exhaustion.Sequence(
        oid=hash(name) & 0xFFFF, schema="public", name=name, type=seq_type, start=92, increment=increment, max=100,
        min=1, cycle=cycle, readable=True, last_value=last, table_oid=None, column_num=None)


def test_sequence_usage_is_measured_from_its_bounds_and_a_never_called_one_by_its_start():
    # pg-index-health reports 8.08 % left for each: (100 - 92) / (100 - 1).
    for seq in (pgih_sequence("seq_1", "smallint", 1), pgih_sequence("seq_3", "integer", 2),
                pgih_sequence("seq_5", "bigint", 10)):
        measured = sequence_exhaustion.usage(seq, None)
        assert 1 - measured.used == pytest.approx(0.0808, abs=0.0001)
        assert measured.remaining == 8 and "MAXVALUE" in measured.limited_by
    # Created at START 2000000000 on an integer column, or RESTARTed there: the same usage.
    fresh = sequence_exhaustion.Sequence(1, "public", "s", "bigint", 2_000_000_000, 1, 2**63 - 1, 1, False, True, None,
                                         None, None)
    restarted = sequence_exhaustion.Sequence(1, "public", "s", "bigint", 1, 1, 2**63 - 1, 1, False, True, 2_000_000_000,
                                             None, None)
    assert sequence_exhaustion.usage(fresh, "integer") == sequence_exhaustion.usage(restarted, "integer")
    descending = sequence_exhaustion.Sequence(1, "public", "d", "integer", -1, -1, -1, -100, False, True, -95, None, None)
    assert sequence_exhaustion.usage(descending, None).remaining == 5
    unreadable = sequence_exhaustion.Sequence(1, "public", "u", "bigint", 1, 1, 100, 1, False, False, None, None, None)
    assert sequence_exhaustion.usage(unreadable, None) is None


def test_sequence_findings_follow_pg_index_health_cases_and_skip_cycling_ones():
    s = Schema()
    check = sequence_exhaustion.SequenceExhaustion()
    sequences = (pgih_sequence("seq_1", "smallint", 1), pgih_sequence("seq_3", "integer", 2),
                 pgih_sequence("seq_5", "bigint", 10), pgih_sequence("seq_cycle", "bigint", 10, cycle=True))
    findings = check.evaluate(sequence_exhaustion.Facts(s.build(), sequences, "app"), scope(check))
    assert sorted(objects(findings)) == ["public.seq_1", "public.seq_3", "public.seq_5"]
    assert all(f.severity is Severity.CRITICAL and f.evidence["called"] is False for f in findings)
    assert "never called; it starts at 92" in findings[0].message


def test_sequence_rate_from_two_readings_or_from_inserts_with_the_exhaustion_date():
    s = Schema()
    oid = s.table("orders", {"id": "integer"})
    now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    seq = sequence(2_147_000_000, table=oid, column=1)  # 483,647 values left
    check = sequence_exhaustion.SequenceExhaustion()
    sampled = sequence_exhaustion.Rates(advanced={1: (10, 2.0)}, now=now)
    [finding] = check.evaluate(sequence_exhaustion.Facts(s.build(), (seq,), "app", sampled), scope(check))
    assert finding.evidence["rate_per_second"] == 5.0 and "two readings" in finding.evidence["rate_from"]
    assert finding.evidence["estimated_exhaustion"] == "2026-01-02 02:52 UTC"  # 483,647 / 5 s
    counted = sequence_exhaustion.Rates(advanced={1: (0, 1.0)}, inserts={oid: 86_400}, now=now,
                                        stats_since=now - dt.timedelta(days=10))
    [finding] = check.evaluate(sequence_exhaustion.Facts(s.build(), (seq,), "app", counted), scope(check))
    assert "inserts into public.orders since the statistics reset" in finding.evidence["rate_from"]
    assert finding.evidence["exhausted_in_days"] == pytest.approx(56.0, abs=0.1)  # 8,640 a day
    [idle] = check.evaluate(sequence_exhaustion.Facts(s.build(), (seq,), "app", sequence_exhaustion.Rates(
        advanced={1: (0, 1.0)}, now=now)), scope(check))
    assert idle.evidence["rate_per_second"] is None and "did not advance" in idle.evidence["rate_from"]
    assert "estimated_exhaustion" not in idle.evidence


def test_sequence_findings_severity_fix_and_unreadable():
    s = Schema()
    oid = s.table("orders", {"id": "integer"})
    s.table("order_items", {"id": "bigint", "order_id": "integer"})
    s.primary_key("orders", ["id"])
    s.constraint("f", "order_items", ["order_id"], ref="orders", ref_columns=["id"])
    sequences = (
        sequence(2_000_000_000, table=oid, column=1),
        sequence_exhaustion.Sequence(2, "public", "secret_seq", "bigint", 1, 1, 2**63 - 1, 1, False, False, None, None, None),
    )
    check = sequence_exhaustion.SequenceExhaustion()
    findings = {f.object: f for f in check.evaluate(sequence_exhaustion.Facts(s.build(), sequences, "app"), scope(check))}
    critical = findings["public.orders_id_seq"]
    assert critical.severity is Severity.CRITICAL
    assert critical.evidence["limit"] == 2**31 - 1
    assert [step.command for step in critical.fix.steps] == [
        "ALTER TABLE public.orders ALTER COLUMN id TYPE bigint;", "ALTER SEQUENCE public.orders_id_seq AS bigint;"]
    assert "public.order_items.order_id" in critical.fix.notes
    info = findings["database app"]
    assert info.severity is Severity.INFO and info.evidence["unreadable_sequences"] == ["public.secret_seq"]


def test_sequence_below_threshold_or_cycling_is_quiet():
    s = Schema()
    oid = s.table("orders", {"id": "integer"})
    check = sequence_exhaustion.SequenceExhaustion()
    for seq in (sequence(1_000_000_000, table=oid, column=1), sequence(2_100_000_000, cycle=True, table=oid, column=1)):
        assert check.evaluate(sequence_exhaustion.Facts(s.build(), (seq,), "app"), scope(check)) == []


# --- long-transactions ----------------------------------------------------------------------------------

def session(state: str, xact_age: float, state_age: float, *, blocking: int = 0, query: str = "select 1"):
    return long_transactions.Session(
        pid=42, user_name="app", application_name="api", client_addr="10.0.0.7", state=state,
        xact_start="2026-03-01 10:00:00+00", xact_age_s=xact_age,
        state_age_s=state_age, wait_event_type="Client", wait_event="ClientRead", query=query, wrote=True,
        xmin="1234", locks=("RowExclusiveLock on orders",), blocking=blocking)


@pytest.mark.parametrize("s, severity, action", [
    (session("idle in transaction", 120, 90), Severity.HIGH, "pg_terminate_backend(42)"),
    (session("active", 600, 600), Severity.MEDIUM, "pg_cancel_backend(42)"),
    (session("active", 600, 600, blocking=3), Severity.HIGH, "pg_terminate_backend(42)"),
    (session("idle in transaction", 50, 30), None, None),
    (session("active", 200, 200), None, None),
])
def test_long_transactions(s, severity, action):
    check = long_transactions.LongTransactions()
    findings = check.evaluate(long_transactions.Facts((s,)), scope(check))
    if severity is None:
        assert findings == []
        return
    [finding] = findings
    assert finding.severity is severity
    assert action in finding.fix.steps[0].command
    assert finding.evidence["locks_held"] == ["RowExclusiveLock on orders"]


def test_long_transaction_with_hidden_query_says_why():
    check = long_transactions.LongTransactions()
    [finding] = check.evaluate(long_transactions.Facts((session("active", 900, 900, query="<insufficient privilege>"),)),
                               scope(check))
    assert finding.evidence["query"] is None
    assert "pg_read_all_stats" in finding.evidence["query_note"]


# --- fk-type-mismatch -----------------------------------------------------------------------------------

def mismatch_schema() -> Schema:
    s = Schema()
    s.table("transactions", {"id": "uuid", "legacy_id": "integer"})
    s.primary_key("transactions", ["id"])
    s.table("rain_events", {"id": "bigint", "transaction_id": "integer"})
    s.primary_key("rain_events", ["id"])
    s.table("products", {"id": "bigint"})
    s.primary_key("products", ["id"])
    s.table("order_items", {"id": "integer", "product_id": "integer"})
    s.primary_key("order_items", ["id"])
    s.constraint("f", "order_items", ["product_id"], name="order_items_product_id_fkey", ref="products", ref_columns=["id"])
    s.table("roles", {"id": "bigint"})
    s.primary_key("roles", ["id"])
    s.table("forum_structure", {"id": "integer", "min_group_id_required": "integer"})
    s.primary_key("forum_structure", ["id"])
    return s


def mismatch_findings(s: Schema, expect=(), **options):
    check = fk_type_mismatch.FkTypeMismatch()
    sc = scope(check, expect=list(expect), **options)
    snapshot = s.build()
    references, unresolved = fk_type_mismatch.find_references(snapshot, sc.config.expect.references, sc.options.implied)
    facts = fk_type_mismatch.Facts(snapshot, tuple(references), {}, tuple(unresolved))
    return {f.object: f for f in check.evaluate(facts, sc)}


def test_fk_type_mismatch_the_issue_case():
    expect = [ReferenceExpectation(column="forum_structure.min_group_id_required", references="roles.id")]
    findings = mismatch_findings(mismatch_schema(), expect)
    assert sorted(findings) == ["public.forum_structure.min_group_id_required", "public.order_items.product_id",
                                "public.rain_events.transaction_id"]
    implied = findings["public.rain_events.transaction_id"]
    assert implied.severity is Severity.HIGH
    assert implied.evidence["origin"] == "implied" and "stem 'transaction'" in implied.evidence["how"]
    assert implied.fix.safety is FixSafety.MANUAL
    commands = " ".join(step.command for step in implied.fix.steps)
    assert "gen_random_uuid" not in commands
    assert "r.legacy_id = c.transaction_id" in commands  # joined through the legacy id
    declared = findings["public.order_items.product_id"]
    assert declared.severity is Severity.MEDIUM and declared.evidence["origin"] == "declared"
    assert declared.fix.safety is FixSafety.UNSAFE
    assert declared.fix.steps[0].command == (
        "ALTER TABLE public.order_items ALTER COLUMN product_id TYPE bigint USING product_id::bigint;")
    assert "ACCESS EXCLUSIVE" in declared.fix.lock
    expected = findings["public.forum_structure.min_group_id_required"]
    assert expected.evidence["origin"] == "expected" and expected.evidence["referenced_key"] == "public.roles(id)"


def test_fk_type_mismatch_implied_off_and_unresolved_expectation():
    expect = [ReferenceExpectation(column="forum_structure.nope", references="roles.id")]
    findings = mismatch_findings(mismatch_schema(), expect, implied=False)
    assert "public.rain_events.transaction_id" not in findings
    [unresolved] = [f for f in findings.values() if f.title == "Declared reference cannot be checked"]
    assert "no column 'nope'" in unresolved.message


@pytest.mark.parametrize("column, key, severity", [
    ("integer", "bigint", Severity.MEDIUM),
    ("smallint", "integer", Severity.MEDIUM),
    ("text", "character varying(40)", Severity.LOW),
    ("numeric(10,2)", "numeric(12,2)", Severity.LOW),
    ("integer", "uuid", Severity.HIGH),
    ("text", "uuid", Severity.HIGH),
])
def test_fk_type_mismatch_severity(column, key, severity):
    s = Schema()
    s.table("parents", {"id": key})
    s.primary_key("parents", ["id"])
    s.table("children", {"id": "bigint", "parent_ref": column})
    s.primary_key("children", ["id"])
    s.constraint("f", "children", ["parent_ref"], ref="parents", ref_columns=["id"]) if key != "uuid" or column == "text" else None
    expect = [] if key != "uuid" or column == "text" else [ReferenceExpectation(column="children.parent_ref", references="parents.id")]
    [finding] = mismatch_findings(s, expect).values()
    assert finding.severity is severity


def test_fk_type_mismatch_wider_referencing_column_widens_the_key():
    s = Schema()
    s.table("parents", {"id": "integer"})
    s.primary_key("parents", ["id"])
    s.table("children", {"id": "bigint", "parent_id": "bigint"})
    s.constraint("f", "children", ["parent_id"], ref="parents", ref_columns=["id"])
    [finding] = mismatch_findings(s).values()
    assert finding.fix.steps[0].command == "ALTER TABLE public.parents ALTER COLUMN id TYPE bigint USING id::bigint;"


def test_fk_type_mismatch_composite_column_by_column():
    s = Schema()
    s.table("parents", {"a": "bigint", "b": "text"})
    s.constraint("u", "parents", ["a", "b"])
    s.table("children", {"a": "integer", "b": "text"})
    s.constraint("f", "children", ["a", "b"], ref="parents", ref_columns=["a", "b"])
    [finding] = mismatch_findings(s).values()
    assert [c["column"] for c in finding.evidence["columns"]] == ["a"]


def test_matching_types_and_own_keys_are_quiet():
    s = Schema()
    s.table("users", {"id": "bigint"})
    s.primary_key("users", ["id"])
    s.table("posts", {"id": "bigint", "user_id": "bigint", "external_user_id": "text"})
    s.primary_key("posts", ["id"])
    assert mismatch_findings(s) == {}


@pytest.mark.parametrize("text, parts", [
    ("orders.customer_id", [("orders", False), ("customer_id", False)]),
    ('"Billing Äpp"."Posts"."reviewer.Ref"', [("Billing Äpp", True), ("Posts", True), ("reviewer.Ref", True)]),
    ('public."say ""hi""".x', [("public", False), ('say "hi"', True), ("x", False)]),
])
def test_split_dotted(text, parts):
    assert fk_type_mismatch.split_dotted(text) == parts


def test_expectation_names_case_insensitive_unless_quoted():
    s = mismatch_schema()
    snapshot = s.build()
    found, _ = fk_type_mismatch.locate_column(snapshot, "Forum_Structure.Min_Group_Id_Required")
    assert found is not None
    missing, why = fk_type_mismatch.locate_column(snapshot, '"Forum_Structure".min_group_id_required')
    assert missing is None and "no table 'Forum_Structure'" in why


# --- missing-index --------------------------------------------------------------------------------------

def stats(table_oid: int, **kw) -> missing_index.TableStats:
    base = dict(seq_scan=500, seq_tup_read=50_000_000, idx_scan=5, live_rows=100_000)
    return missing_index.TableStats(table_oid=table_oid, **(base | kw))


@pytest.mark.parametrize("kw, reported", [
    ({}, True),
    ({"live_rows": 5_000}, False),
    ({"idx_scan": 50_000}, False),
    ({"seq_scan": 10}, False),
    ({"seq_tup_read": 100}, False),
])
def test_missing_index_thresholds(kw, reported):
    s = fk_schema()
    snapshot = s.build()
    options = missing_index.Options()
    assert bool(missing_index.flagged((stats(s.names["orders"], **kw),), snapshot, options)) is reported


def statement(query: str, total_ms: float = 1000.0) -> missing_index.Statement:
    return missing_index.Statement(query, 100, total_ms, total_ms / 100, 10, parse(query))


def test_suggestion_orders_equality_by_selectivity_then_range():
    s = fk_schema()
    snapshot = s.build()
    orders = snapshot.tables[s.names["orders"]]
    distinct = {(orders.oid, "status"): 5, (orders.oid, "region"): 40}
    q = "SELECT * FROM orders WHERE status = $1 AND region = $2 AND id > $3"
    suggestion = missing_index.suggest(orders, 100_000, (statement(q),), snapshot, distinct)
    assert suggestion.columns == ("region", "status", "id")
    assert "selectivity" in suggestion.ordering


def test_suggestion_skips_statements_an_index_already_serves():
    s = fk_schema()
    s.index("orders", ["status", "region"])
    snapshot = s.build()
    orders = snapshot.tables[s.names["orders"]]
    q = "SELECT * FROM orders WHERE status = $1"
    assert missing_index.suggest(orders, 100_000, (statement(q),), snapshot, {}) is None


def test_missing_index_without_statements_says_unverified():
    s = fk_schema()
    snapshot = s.build()
    check = missing_index.MissingIndex()
    facts = missing_index.Facts(
        snapshot, (stats(s.names["orders"]),),
        missing_index.Availability(False, "not available: pg_stat_statements is not in shared_preload_libraries"),
        missing_index.Availability(False, "hypopg is not installed"), ())
    [finding] = check.evaluate(facts, scope(check))
    assert finding.fix is None
    assert finding.evidence["verification"] == "unverified / not available"
    assert "shared_preload_libraries" in finding.evidence["suggestion_note"]


def test_missing_index_without_hypopg_falls_back_to_the_statement_and_says_unverified():
    s = fk_schema()
    snapshot = s.build()
    facts = missing_index.Facts(
        snapshot, (stats(s.names["orders"]),), missing_index.Availability(True, "pg_stat_statements"),
        missing_index.Availability(False, "hypopg is not installed"), (statement("SELECT * FROM orders WHERE status = $1"),))
    check = missing_index.MissingIndex()
    [finding] = check.evaluate(facts, scope(check))
    assert finding.evidence["verification"]["status"] == "unverified"
    assert finding.fix.notes.startswith("Unverified")
    assert finding.evidence["suggestion"]["definition"] == "CREATE INDEX orders_status_idx ON public.orders (status)"


def test_missing_index_not_reported_once_an_index_serves_its_statements():
    """Seq-scan counters are cumulative: after the index exists they are history, not a finding."""
    s = fk_schema()
    s.index("orders", ["status"])
    snapshot = s.build()
    facts = missing_index.Facts(
        snapshot, (stats(s.names["orders"]),), missing_index.Availability(True, "pg_stat_statements"),
        missing_index.Availability(False, "hypopg"), (statement("SELECT * FROM orders WHERE status = $1"),))
    check = missing_index.MissingIndex()
    assert check.evaluate(facts, scope(check)) == []
    served = advice("SELECT * FROM orders WHERE status = $1", "existing indexes already lead with every candidate column",
                    tables=(s.names["orders"],))
    facts = missing_index.Facts(snapshot, (stats(s.names["orders"]),), missing_index.Availability(True, "pgss"),
                                missing_index.Availability(True, "hypopg"), (statement(served.statement.query),),
                                advice=(served,))
    assert check.evaluate(facts, scope(check)) == []


def advice(query: str, decision: str = "index", *, proposals=(), total_ms: float = 1000.0, before: float = 1000.0,
           after: float = 10.0, tables=(), source: str = "pg_stat_statements") -> _advisor.Advice:
    return _advisor.Advice(_advisor.Statement(query, 100, total_ms, total_ms / 100, source), decision, before, after,
                           tuple(proposals), tuple(tables or {p.table_oid for p in proposals}), 3)


def test_advice_is_consolidated_ranked_and_write_heavy_tables_ranked_low():
    s = fk_schema()
    snapshot = s.build()
    orders, customers = s.names["orders"], s.names["customers"]
    by_status = _advisor.Proposal(orders, ("status",))
    by_status_region = _advisor.Proposal(orders, ("status", "region"))
    by_region = _advisor.Proposal(customers, ("region",))
    window = WriteWindow(7200.0, "2026-01-01T00:00:00+00:00",
                         {orders: Counters(0, 500), customers: Counters(1_000_000, 500)})

    def judged(window):
        facts = missing_index.Facts(
            snapshot, (stats(orders, live_rows=10), stats(customers, live_rows=10, writes=1_000_000, idx_scan=0)),
            missing_index.Availability(True, "pgss"), missing_index.Availability(True, "hypopg"), (),
            advice=(advice("q1", proposals=[by_status], total_ms=100.0),
                    advice("q2", proposals=[by_status_region], total_ms=50.0),
                    advice("q3", proposals=[by_region], total_ms=10_000.0),
                    advice("q4", "low initial cost: planner cost 8.0 is under min_cost 100", tables=(orders,))),
            window=window)
        check = missing_index.MissingIndex()
        return {f.evidence["definition"]: f for f in check.evaluate(facts, scope(check))}

    findings = judged(window)
    assert sorted(findings) == ["CREATE INDEX customers_region_idx ON public.customers (region)",
                                "CREATE INDEX orders_status_region_idx ON public.orders (status, region)"]
    both = findings["CREATE INDEX orders_status_region_idx ON public.orders (status, region)"]
    assert both.evidence["statements_served"] == 2 and both.evidence["rank"] == "1 of 2"
    heavy = findings["CREATE INDEX customers_region_idx ON public.customers (region)"]
    assert heavy.severity is Severity.LOW and "over the last 2.0 h" in heavy.evidence["write_heavy"]
    assert heavy.evidence["rank"] == "2 of 2"  # 10 s of statements, but 1,000,000 writes against 500 scans
    # The same counters since the statistics reset, with no window to weigh them over: not weighed.
    unweighed = judged(None)["CREATE INDEX customers_region_idx ON public.customers (region)"]
    assert unweighed.severity is Severity.MEDIUM and unweighed.evidence["rank"] == "1 of 2"
    assert "write_heavy" not in unweighed.evidence and "not weighed" in unweighed.evidence["write_window"]


def test_declared_queries_are_summarised_with_each_decision():
    s = fk_schema()
    snapshot = s.build()
    facts = missing_index.Facts(
        snapshot, (), missing_index.Availability(False, "n/a"), missing_index.Availability(True, "hypopg"), (),
        advice=(advice("SELECT 1", "no tables: the statement reads no table", source="expect.queries"),))
    check = missing_index.MissingIndex()
    [summary] = check.evaluate(facts, scope(check))
    assert summary.severity is Severity.INFO and summary.object == "expect.queries"
    assert summary.evidence["statements"][0]["decision"].startswith("no tables")


PLAN = {
    "Node Type": "Limit", "Total Cost": 100.0, "Plans": [{
        "Node Type": "Sort", "Sort Key": ["p.user_id DESC", "p.blog_id"], "Total Cost": 99.0, "Plans": [{
            "Node Type": "Hash Join", "Hash Cond": "(p.blog_id = b.id)", "Total Cost": 90.0, "Plans": [
                {"Node Type": "Seq Scan", "Relation Name": "orders", "Schema": "public", "Alias": "p",
                 "Filter": "((p.status)::text = $1)"},
                {"Node Type": "Seq Scan", "Relation Name": "customers", "Schema": "public", "Alias": "b",
                 "Filter": "(b.region = 'eu'::text)"},
                {"Node Type": "Foreign Scan", "Relation Name": "remote", "Schema": "public", "Alias": "r"},
            ]}]}]}


def test_candidates_come_from_filters_joins_and_sort_keys_of_every_relation():
    s = Schema()
    s.table("orders", {"id": "bigint", "status": "text", "user_id": "bigint", "blog_id": "bigint"})
    s.table("customers", {"id": "bigint", "region": "text"})
    snapshot = s.build()
    found, outside = _advisor.candidates(PLAN, snapshot, _advisor.tables_by_name(snapshot))
    orders, customers = found[s.names["orders"]], found[s.names["customers"]]
    assert orders.filters == ["blog_id", "status"] and orders.sorts == ["user_id", "blog_id"]
    assert customers.filters == ["id", "region"] and customers.sorts == []
    assert outside == ["public.remote (Foreign Scan)"]
    singles, multi = _advisor.proposals_to_try(found)
    assert _advisor.Proposal(s.names["orders"], ("status", "user_id", "blog_id")) in multi
    assert _advisor.Proposal(s.names["orders"], ("user_id", "blog_id")) in multi
    assert len(singles) + len(multi) <= _advisor.MAX_HYPOTHETICAL


def test_partitions_are_indexed_at_their_root_and_narrow_proposals_merge_into_wider_ones():
    s = Schema()
    s.table("events", {"id": "bigint", "kind": "text"}, kind="p")
    s.table("events_1", {"id": "bigint", "kind": "text"}, parent="events")
    snapshot = s.build()
    plan = {"Node Type": "Seq Scan", "Relation Name": "events_1", "Schema": "public", "Alias": "events",
            "Filter": "(events.kind = $1)", "Total Cost": 10.0}
    found, _ = _advisor.candidates(plan, snapshot, _advisor.tables_by_name(snapshot))
    assert list(found) == [s.names["events"]]
    narrow, wide = _advisor.Proposal(1, ("a",)), _advisor.Proposal(1, ("a", "b"))
    merged = _advisor.consolidate([advice("x", proposals=[narrow]), advice("y", proposals=[wide])])
    assert list(merged) == [wide] and [a.statement.query for a in merged[wide]] == ["y", "x"]


@pytest.mark.parametrize("sql, shape", [
    ("SELECT * FROM orders WHERE customer_id = $1 AND status = $2 ORDER BY created_at DESC LIMIT $3",
     ("orders", ("customer_id", "status"), (), ("created_at",))),
    ('select id from public."Big Table" t where t."Kind" = $1 and t.x between $2 and $3',
     ("Big Table", ("Kind",), ("x",), ())),
    ("UPDATE orders SET status = $1 WHERE id = ANY($2)", ("orders", ("id",), (), ())),
    ("DELETE FROM events WHERE created_at < $1", ("events", (), ("created_at",), ())),
    ("SELECT count(*) FROM events WHERE kind IN ($1, $2) AND deleted_at IS NULL",
     ("events", ("kind", "deleted_at"), (), ())),
    ("SELECT * FROM a JOIN b ON a.id = b.id WHERE a.x = $1", None),
    ("SELECT * FROM a WHERE x = $1 OR y = $2", None),
    ("SELECT * FROM a, b WHERE a.x = $1", None),
    ("SELECT kind, count(*) FROM a WHERE x = $1 GROUP BY kind", None),
    ("SELECT 1", None),
    ("BEGIN", None),
])
def test_statement_shapes(sql, shape):
    parsed = parse(sql)
    if shape is None:
        assert parsed is None
    else:
        assert (parsed.table, parsed.equality, parsed.ranges, parsed.sort) == shape


# --- partitions and materialized views in the index checks ---------------------------------------------

def test_a_partition_index_repeating_the_attached_one_is_the_duplicate():
    s = Schema()
    s.table("events", {"id": "bigint", "kind": "text"}, kind="p")
    s.table("events_1", {"id": "bigint", "kind": "text"}, parent="events")
    s.index("events", ["kind"], name="events_kind_idx", kind="I")
    s.index("events_1", ["kind"], name="events_1_kind_idx", attached=True)
    s.index("events_1", ["kind"], name="events_1_by_hand")
    check = duplicate_index.DuplicateIndex()
    [finding] = check.evaluate(duplicate_index.Facts(s.build()), scope(check))
    assert finding.object == "public.events_1_by_hand" and finding.evidence["duplicate_of"]["attached_from_parent"]
    # Attached copies of two identical parent indexes are judged at the parent, not per partition.
    s2 = Schema()
    s2.table("events", {"id": "bigint", "kind": "text"}, kind="p")
    s2.table("events_1", {"id": "bigint", "kind": "text"}, parent="events")
    for name in ("a", "b"):
        s2.index("events", ["kind"], name=f"events_{name}", kind="I")
        s2.index("events_1", ["kind"], name=f"events_1_{name}", attached=True)
    assert objects(check.evaluate(duplicate_index.Facts(s2.build()), scope(check))) == ["public.events_b"]


def test_materialized_views_are_not_judged_as_tables_without_a_key():
    s = Schema()
    s.table("totals", {"client_id": "bigint"}, kind="m")
    check = no_primary_key.NoPrimaryKey()
    assert check.evaluate(no_primary_key.Facts(s.build()), scope(check)) == []
