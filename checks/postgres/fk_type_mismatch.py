"""postgres.fk-type-mismatch: references whose column type differs from the key they point at.

Declared foreign keys (int4 → int8, varchar(n) → text, numeric precision; composite keys column
by column), references implied by column names (`transaction_id integer` beside
`transactions.id uuid`, where no constraint can exist) and references declared in the config
(`[[targets.NAME.expect.references]]`) for names that cannot tell.

An id migration to uuid leaves integer columns behind whose names are not exactly `<table>_id`
(`last_post_id`, `min_group_id_required`, `structure_id` beside `org_structures`): such a name
that holds `<table>_id` is a widened match, judged with how sure it is — values found in the
referenced table's legacy integer id (one set-based pass) make it high, a name alone low.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from pydantic import Field

from checks.contract import Check, CheckOptions, Scope
from checks.model import Finding, Fix, FixAvailability, FixSafety, Severity
from checks.postgres._catalog import (
    INTEGER_WIDTH,
    Catalog,
    Column,
    Table,
    TableRef,
    CatalogSnapshot,
    name_forms,
    quote_ident,
    resolve_reference,
    snake,
)
from checks.postgres._fixes import alter_type_lock, sql
from checks.postgres._preconditions import Precondition, count_failing, out_of_budget, uncastable_sql

# For references with no constraint (implied or expected), values with no match prove the
# relationship is broken, not merely mistyped. Compared as text because the types differ. One
# set-based pass over each table: the keys once (DISTINCT, so no row is counted twice) joined to the
# referencing rows — a correlated NOT EXISTS on a cast column cannot use the key's index and read
# the whole referenced table once per referencing row (2,000 rows: 2,001 scans, 4 million rows).
ROWS_QUERY = "SELECT count(*) AS rows, NULL::bigint AS non_null, NULL::bigint AS unmatched FROM {table}"
# A widened match's values against the referenced table's legacy integer id: how many are ids there.
LEGACY_QUERY = """
SELECT count(c.{column}) AS non_null, count(c.{column}) FILTER (WHERE k.legacy IS NOT NULL) AS matched
FROM {table} c
LEFT JOIN (SELECT DISTINCT r.{legacy}::bigint AS legacy FROM {ref_table} r) k ON k.legacy = c.{column}::bigint
"""
UNMATCHED_QUERY = """
SELECT count(*) AS rows,
       count(c.{column}) AS non_null,
       count(c.{column}) FILTER (WHERE k.ref_key IS NULL) AS unmatched
FROM {table} c
LEFT JOIN (SELECT DISTINCT r.{ref_column}::text AS ref_key FROM {ref_table} r) k ON k.ref_key = c.{column}::text
"""


class Options(CheckOptions):
    implied: bool = Field(default=True, description="Also infer references from column names (transaction_id → transactions).")
    exact_count_max_bytes: int = Field(
        default=100_000_000, ge=0,
        description="Count rows and unmatched values exactly only in tables up to this size (bytes); larger ones show the planner's estimate.",
    )


@dataclass(frozen=True)
class Reference:
    table: Table
    columns: tuple[Column, ...]
    ref_table: Table
    ref_columns: tuple[Column, ...]
    origin: str  # "declared" (a foreign key), "implied" (by the column's name) or "expected" (by the config)
    how: str  # the constraint's name, or how the reference was inferred or declared
    widened: bool = False  # implied by a name that holds <table>_id but is not exactly it

    @property
    def mismatched(self) -> tuple[tuple[Column, Column], ...]:
        return tuple((c, r) for c, r in zip(self.columns, self.ref_columns) if c.base_type != r.base_type)


@dataclass(frozen=True)
class ValueCount:
    rows: int | None
    non_null: int | None
    unmatched: int | None
    note: str | None = None  # why a figure is missing


@dataclass(frozen=True)
class LegacyMatch:
    """A widened match's values looked up in the referenced table's legacy integer id."""

    legacy_column: str | None  # None: the referenced table has no column that looks like one
    non_null: int | None = None
    matched: int | None = None
    note: str | None = None

    @property
    def confidence(self) -> str:
        if self.legacy_column is None or not self.non_null or self.matched is None:
            return "low"
        share = self.matched / self.non_null
        return "high" if share >= 0.9 else "medium" if share > 0 else "none"


@dataclass(frozen=True)
class Facts:
    catalog: Catalog
    references: tuple[Reference, ...]
    counts: dict[tuple[int, int], ValueCount]  # (table oid, attnum) → count, for implied / expected
    unresolved: tuple[tuple[str, str], ...]  # (expectation, why it could not be checked)
    legacy: dict[tuple[int, int], LegacyMatch] = field(default_factory=dict)  # widened matches only
    # The values the fix's ALTER ... TYPE would fail on, where its cast may fail: by (table oid, attnum).
    casts: dict[tuple[int, int], Precondition] = field(default_factory=dict)


# Time spent counting values a type change would fail on at most, over all references of a run.
CAST_BUDGET_S = 5.0


class FkTypeMismatch(Check):
    id = "postgres.fk-type-mismatch"
    needs = (CatalogSnapshot,)
    engine = "postgres"
    title = "Reference column type differs from the key it points at"
    severity = Severity.HIGH
    fix_availability = FixAvailability.SOMETIMES
    Options = Options
    rationale = (
        "A referencing column narrower than its key (integer → bigint) fails once keys outgrow it; a different "
        "type (integer → uuid) means no foreign key can exist, joins need casts that defeat indexes, and the "
        "relationship is kept by convention only — often left behind by an id migration."
    )

    async def gather(self, session, scope: Scope) -> Facts:
        snapshot = await self.fact(CatalogSnapshot, session, scope)
        references, unresolved = find_references(snapshot, scope.config.expect.references, scope.options.implied)
        counts: dict[tuple[int, int], ValueCount] = {}
        legacy: dict[tuple[int, int], LegacyMatch] = {}
        for ref in references:
            if ref.mismatched:
                counts[(ref.table.oid, ref.columns[0].num)] = await count_unmatched(session, ref, scope.options)
            if ref.widened:
                legacy[(ref.table.oid, ref.columns[0].num)] = await match_legacy(session, ref, snapshot, scope.options)
        return Facts(snapshot, tuple(references), counts, tuple(unresolved), legacy,
                     await count_cast_failures(session, references))

    def evaluate(self, facts: Facts, scope: Scope) -> list[Finding]:
        findings = [self._finding(ref, facts, scope) for ref in facts.references if ref.mismatched
                    and not (ref.widened and _legacy(facts, ref).confidence == "none")]
        for expectation, why in facts.unresolved:
            findings.append(self.finding(
                scope, object=expectation, key="unresolved", severity=Severity.LOW,
                title="Declared reference cannot be checked",
                message=f"expect.references {expectation}: {why}.",
                evidence={"expectation": expectation, "reason": why},
            ))
        return findings

    def _finding(self, ref: Reference, facts: Facts, scope: Scope) -> Finding:
        pairs = ref.mismatched
        table, ref_table = ref.table, ref.ref_table
        columns = ", ".join(c.name for c in ref.columns)
        obj = f"{table.qualified}.({columns})" if len(ref.columns) > 1 else f"{table.qualified}.{quote_ident(ref.columns[0].name)}"
        key_name = f"{ref_table.qualified}({', '.join(quote_ident(c.name) for c in ref.ref_columns)})"
        type_pairs = [{"column": c.name, "type": c.type, "references": r.name, "referenced_type": r.type} for c, r in pairs]
        count = facts.counts.get((table.oid, ref.columns[0].num))
        evidence = {
            "origin": ref.origin,
            "how": ref.how,
            "columns": type_pairs,
            "referenced_key": key_name,
            "rows": _rows(table, count),
        }
        if ref.origin != "declared":
            evidence["values_without_match"] = _unmatched(count)
        worst = max((_severity(c.base_type, r.base_type) for c, r in pairs), key=lambda s: s.rank)
        sureness = ""
        if ref.widened:
            match = _legacy(facts, ref)
            confidence = _confidence_evidence(match, ref)
            evidence["confidence"] = confidence
            sureness = f" How sure: {match.confidence} ({confidence['why']})."
            if match.confidence != "high":
                worst = Severity.MEDIUM  # a name alone: worth a look, not a page
        described = "; ".join(f"{c.name} is {c.type} but {r.name} is {r.type}" for c, r in pairs)
        origin_words = {
            "declared": f"foreign key {quote_ident(ref.how)}",
            "implied": "reference implied by the column's name (no constraint)",
            "expected": "reference declared in the config (no constraint)",
        }[ref.origin]
        if ref.widened:
            origin_words = "reference implied by a name holding the table's <table>_id (no constraint)"
        message = f"{obj} → {key_name}, {origin_words}: {described}.{sureness}"
        if count is not None and count.unmatched:
            message += f" {count.unmatched:,} of {count.non_null:,} non-null values match no key."
        return self.finding(
            scope, object=obj, key=key_name, severity=worst,
            title=f"{table.name}.{columns} type differs from {ref_table.name} key",
            message=message, evidence=evidence | _cast_evidence(facts, ref),
            fix=mismatch_fix(ref, facts.catalog, facts.counts, facts.casts.get((table.oid, ref.columns[0].num))),
        )


def find_references(snapshot: Catalog, expectations, implied: bool) -> tuple[list[Reference], list[tuple[str, str]]]:
    """Declared foreign keys, references the config declares, then (optionally) those implied by names."""
    references: list[Reference] = []
    claimed: set[tuple[int, int]] = set()
    for fk in snapshot.foreign_keys:
        if fk.inherited or fk.table_oid not in snapshot.tables or fk.ref_table_oid not in snapshot.tables:
            continue  # a partition's copy is judged at its parent
        table, ref_table = snapshot.tables[fk.table_oid], snapshot.tables[fk.ref_table_oid]
        references.append(Reference(
            table, tuple(snapshot.column(table.oid, n) for n in fk.columns),
            ref_table, tuple(snapshot.column(ref_table.oid, n) for n in fk.ref_columns),
            "declared", fk.name,
        ))
        claimed.update((fk.table_oid, n) for n in fk.columns)
    unresolved: list[tuple[str, str]] = []
    for expectation in expectations:
        label = f"{expectation.column} → {expectation.references}"
        source, why_source = locate_column(snapshot, expectation.column)
        target, why_target = locate_column(snapshot, expectation.references)
        if source is None or target is None:
            unresolved.append((label, why_source or why_target or "not found"))
            continue
        claimed.add((source[0].oid, source[1].num))
        references.append(Reference(source[0], (source[1],), target[0], (target[1],), "expected",
                                    f"[[expect.references]] column = {expectation.column!r}, references = {expectation.references!r}"))
    if implied:
        references.extend(_implied(snapshot, claimed))
    return references, unresolved


def _implied(snapshot: Catalog, claimed: set[tuple[int, int]]) -> list[Reference]:
    keyed = []
    for table in snapshot.judged_tables():
        pk = snapshot.primary_key(table.oid)
        if pk is not None and len(pk.columns) == 1:
            keyed.append(TableRef(table.oid, table.schema, table.name))
    found = []
    for table in snapshot.judged_tables():
        for column in snapshot.columns.get(table.oid, {}).values():
            if (table.oid, column.num) in claimed:
                continue
            resolution = resolve_reference(column.name, table.schema, keyed, snapshot.search_path)
            if resolution.table is None:
                continue
            ref_table = snapshot.tables[resolution.table.oid]
            pk = snapshot.primary_key(ref_table.oid)
            assert pk is not None  # keyed: tables with a one-column primary key
            key = snapshot.column(ref_table.oid, pk.columns[0])
            if ref_table.oid == table.oid and column.num == key.num:
                continue  # a table's own key
            found.append(Reference(table, (column,), ref_table, (key,), "implied", resolution.how))
    return found + _widened(snapshot, claimed | {(r.table.oid, r.columns[0].num) for r in found})


def _widened(snapshot: Catalog, claimed: set[tuple[int, int]]) -> list[Reference]:
    """Integer columns whose name holds `<table>_id` without being exactly it, for tables whose
    one-column key is a uuid: the shape an id migration leaves behind. The longest stem wins; two
    tables matching it equally mean no answer."""
    uuid_keyed: dict[str, list[tuple[Table, Column]]] = {}
    for table in snapshot.judged_tables():
        pk = snapshot.primary_key(table.oid)
        key = snapshot.column(table.oid, pk.columns[0]) if pk is not None and len(pk.columns) == 1 else None
        if key is not None and key.base_type == "uuid":
            uuid_keyed.setdefault(snake(table.name), []).append((table, key))
    if not uuid_keyed:
        return []
    found = []
    for table in snapshot.judged_tables():
        for column in snapshot.columns.get(table.oid, {}).values():
            if (table.oid, column.num) in claimed or family(column.base_type) != "integer":
                continue
            match = _widened_match(snake(column.name), uuid_keyed, table.schema, snapshot.search_path)
            if match is None or match[0][0].oid == table.oid:
                continue
            (ref_table, key), stem = match
            how = (f"column name {column.name!r} holds {stem + '_id'!r} → table {ref_table.qualified} "
                   "(a widened match: not exactly <table>_id)")
            found.append(Reference(table, (column,), ref_table, (key,), "implied", how, widened=True))
    return found


# Words that make a `<thing>_id` another system's id or an old copy, not this database's key.
_NOT_OURS = {"external", "remote", "provider", "vendor", "partner", "stripe", "legacy", "old", "source", "upstream"}


def _widened_match(name: str, tables: dict[str, list[tuple[Table, Column]]], schema: str,
                   search_path: tuple[str, ...]) -> tuple[tuple[Table, Column], str] | None:
    words = name.split("_")
    if _NOT_OURS & set(words):
        return None
    stems = sorted({"_".join(words[start:end]) for end, word in enumerate(words) if word == "id"
                    for start in range(end)}, key=lambda s: (-len(s), s))
    for stem in stems:
        forms = set(name_forms(stem))
        candidates = [t for n, ts in tables.items() for t in ts
                      if n in forms or any(n.endswith("_" + f) for f in forms)]
        for schemas in ((schema,), search_path):
            in_schema = [t for t in candidates if t[0].schema in schemas]
            if len(in_schema) == 1:
                return in_schema[0], stem
            if len(in_schema) > 1:
                return None
    return None


def split_dotted(text: str) -> list[tuple[str, bool]]:
    """`schema.table.column` into (name, quoted) parts; "double quoted" parts may hold dots and quotes."""
    parts, at = [], 0
    while at <= len(text):
        if text.startswith('"', at):
            end, name = at + 1, []
            while end < len(text):
                if text[end] == '"':
                    if text.startswith('""', end):
                        name.append('"')
                        end += 2
                        continue
                    break
                name.append(text[end])
                end += 1
            parts.append(("".join(name), True))
            at = end + 1
        else:
            end = text.find(".", at)
            end = len(text) if end < 0 else end
            parts.append((text[at:end], False))
            at = end
        if at < len(text) and text[at] != ".":
            raise ValueError(f"cannot read {text!r} as table.column")
        at += 1
    return parts


def locate_column(snapshot: Catalog, dotted: str) -> tuple[tuple[Table, Column] | None, str | None]:
    """"table.column" or "schema.table.column". A quoted part must match exactly; a bare one
    matches exactly, else case-insensitively (people write names as they read them)."""
    try:
        parts = split_dotted(dotted)
    except ValueError as exc:
        return None, str(exc)
    if len(parts) not in (2, 3):
        return None, f"expected table.column or schema.table.column, got {dotted!r}"
    schema = parts[0] if len(parts) == 3 else None
    table_part, column_part = parts[-2], parts[-1]

    def matches(name: str, part: tuple[str, bool], exact: bool) -> bool:
        return name == part[0] if exact or part[1] else name.lower() == part[0].lower()

    for exact in (True, False):
        tables = [t for t in snapshot.judged_tables()
                  if matches(t.name, table_part, exact) and (schema is None or matches(t.schema, schema, exact))]
        if schema is None and len(tables) > 1:
            tables = [t for s in snapshot.search_path for t in tables if t.schema == s][:1]
        if len(tables) == 1:
            table = tables[0]
            columns = [c for c in snapshot.columns.get(table.oid, {}).values() if matches(c.name, column_part, exact)]
            if len(columns) == 1:
                return (table, columns[0]), None
            if not exact:
                return None, f"table {table.qualified} has no column {column_part[0]!r}"
    where = f"schema {schema[0]!r}" if schema else f"search_path: {', '.join(snapshot.search_path) or 'empty'}"
    return None, f"no table {table_part[0]!r} ({where})"


async def count_unmatched(session, ref: Reference, options: Options) -> ValueCount:
    table, ref_table = ref.table, ref.ref_table
    for t in (table, ref_table):
        if not t.readable:
            return ValueCount(None, None, None, f"not counted: this role may not SELECT from {t.qualified}")
    if table.bytes > options.exact_count_max_bytes:
        return ValueCount(None, None, None,
                          f"not counted: {table.qualified} is larger than exact_count_max_bytes ({options.exact_count_max_bytes:,})")
    if ref.origin == "declared" or len(ref.columns) > 1:
        query = ROWS_QUERY.format(table=table.qualified)  # a validated constraint leaves nothing unmatched
    else:
        query = UNMATCHED_QUERY.format(
            column=quote_ident(ref.columns[0].name), table=table.qualified,
            ref_table=ref_table.qualified, ref_column=quote_ident(ref.ref_columns[0].name))
    import asyncpg  # the driver only when a check runs: the catalog loads without it

    try:
        row = await session.fetchrow(query)
    except (asyncpg.QueryCanceledError, asyncpg.LockNotAvailableError, asyncpg.InsufficientPrivilegeError) as exc:
        return ValueCount(None, None, None, f"not counted: {type(exc).__name__}: {exc}")
    return ValueCount(row["rows"], row["non_null"], row["unmatched"])


async def match_legacy(session, ref: Reference, snapshot: Catalog, options: Options) -> LegacyMatch:
    """One set-based pass: how many of the column's values are ids in the referenced table's legacy column."""
    legacy = legacy_id_column(snapshot, ref.ref_table, ref.ref_columns[0], ref.columns[0])
    if legacy is None:
        return LegacyMatch(None)
    for t in (ref.table, ref.ref_table):
        if not t.readable:
            return LegacyMatch(legacy.name, note=f"not counted: this role may not SELECT from {t.qualified}")
    if ref.table.bytes > options.exact_count_max_bytes:
        return LegacyMatch(legacy.name, note=f"not counted: {ref.table.qualified} is larger than exact_count_max_bytes")
    import asyncpg  # the driver only when a check runs

    query = LEGACY_QUERY.format(column=quote_ident(ref.columns[0].name), table=ref.table.qualified,
                                legacy=quote_ident(legacy.name), ref_table=ref.ref_table.qualified)
    try:
        row = await session.fetchrow(query)
    except (asyncpg.QueryCanceledError, asyncpg.LockNotAvailableError, asyncpg.InsufficientPrivilegeError) as exc:
        return LegacyMatch(legacy.name, note=f"not counted: {type(exc).__name__}: {exc}")
    return LegacyMatch(legacy.name, row["non_null"], row["matched"])


def _legacy(facts: Facts, ref: Reference) -> LegacyMatch:
    return facts.legacy.get((ref.table.oid, ref.columns[0].num)) or LegacyMatch(None)


def _confidence_evidence(match: LegacyMatch, ref: Reference) -> dict[str, object]:
    if match.legacy_column is None:
        why = f"the name only: {ref.ref_table.qualified} has no legacy integer id to compare the values with"
    elif match.matched is None:
        why = f"the name only: the values were {match.note or 'not counted'}"
    else:
        why = (f"{match.matched:,} of {match.non_null:,} non-null values are ids in "
               f"{ref.ref_table.qualified}.{quote_ident(match.legacy_column)}, the key's legacy integer column")
    return {"level": match.confidence, "why": why, "legacy_column": match.legacy_column,
            "matched": match.matched, "non_null": match.non_null}


def _rows(table: Table, count: ValueCount | None) -> dict[str, object]:
    if count is not None and count.rows is not None:
        return {"count": count.rows, "exact": True}
    return {"count": table.rows, "exact": False,
            "note": "planner estimate (reltuples)" if table.rows is not None else "never analysed: unknown"}


def _unmatched(count: ValueCount | None) -> dict[str, object]:
    if count is None or count.unmatched is None:
        return {"count": None, "note": count.note if count else "not counted"}
    return {"count": count.unmatched, "non_null": count.non_null, "compared_as": "text"}


_FAMILIES = (
    ("integer", re.compile(r"^(smallint|integer|bigint)$")),
    ("text", re.compile(r"^(text|character varying(\(\d+\))?|character(\(\d+\))?|name|citext)$")),
    ("numeric", re.compile(r"^numeric(\(\d+(,\d+)?\))?$")),
    ("timestamp", re.compile(r"^timestamp(\(\d\))? with(out)? time zone$")),
)


def family(type_name: str) -> str:
    return next((name for name, pattern in _FAMILIES if pattern.match(type_name)), type_name)


def _severity(column_type: str, key_type: str) -> Severity:
    if family(column_type) != family(key_type):
        return Severity.HIGH  # no constraint possible, joins need casts
    if family(column_type) == "integer" and INTEGER_WIDTH[column_type] < INTEGER_WIDTH[key_type]:
        return Severity.MEDIUM  # fails once keys outgrow the column
    return Severity.LOW


def _no_cast(column_type: str, key_type: str) -> bool:
    """Types between which no cast keeps the values' meaning (integer ids are not uuids)."""
    kinds = {family(column_type), family(key_type)}
    return "uuid" in kinds and kinds & {"integer", "numeric"} != set()


def _widens_key(ref: Reference) -> bool:
    return all(family(c.base_type) == "integer" == family(r.base_type)
               and INTEGER_WIDTH[c.base_type] > INTEGER_WIDTH[r.base_type] for c, r in ref.mismatched)


def cast_failures_sql(ref: Reference) -> str | None:
    """The rows the fix's cast of the referencing column would fail on (single-column references
    whose column the fix retypes), or None when no cast there may fail."""
    if len(ref.columns) != 1 or not ref.mismatched or _widens_key(ref):
        return None
    column, key = ref.columns[0], ref.ref_columns[0]
    if _no_cast(column.base_type, key.base_type):
        return None  # a migration, not a cast: _migration_fix
    return uncastable_sql(ref.table.qualified, column.name, family(column.base_type), key.base_type)


async def count_cast_failures(session, references: list[Reference]) -> dict[tuple[int, int], Precondition]:
    """One set-based count per reference whose type change may fail, all within CAST_BUDGET_S."""
    deadline = time.monotonic() + CAST_BUDGET_S
    casts: dict[tuple[int, int], Precondition] = {}
    for ref in references:
        query = cast_failures_sql(ref)
        if query is None or not ref.table.readable:
            continue
        requirement = f"every value of {ref.table.qualified}.{quote_ident(ref.columns[0].name)} casts to {ref.ref_columns[0].type}"
        left = deadline - time.monotonic()
        key = (ref.table.oid, ref.columns[0].num)
        casts[key] = (await count_failing(session, query, requirement=requirement, failing_what="value(s) do not cast",
                                          timeout_s=left) if left > 0 else
                      out_of_budget(requirement, "value(s) do not cast", CAST_BUDGET_S))
    return casts


def _cast_evidence(facts: Facts, ref: Reference) -> dict[str, object]:
    cast = facts.casts.get((ref.table.oid, ref.columns[0].num))
    return {"precondition": cast.evidence()} if cast is not None else {}


def mismatch_fix(ref: Reference, snapshot: Catalog, counts: dict[tuple[int, int], ValueCount],
                 cast: Precondition | None = None) -> Fix:
    pairs = ref.mismatched
    if any(_no_cast(c.base_type, r.base_type) for c, r in pairs):
        return _migration_fix(ref, snapshot)
    widen_key = _widens_key(ref)
    if widen_key:
        # The referencing column is the wider one: narrowing it would be wrong; widen the key instead.
        table, changes = ref.ref_table, [(r, c.type) for c, r in pairs]
        notes = "Widen every other column that references this key (and its sequence) to match."
    else:
        table, changes = ref.table, [(c, r.type) for c, r in pairs]
        notes = None
    alter = ", ".join(f"ALTER COLUMN {quote_ident(col.name)} TYPE {new} USING {quote_ident(col.name)}::{new}"
                      for col, new in changes)
    undo = ", ".join(f"ALTER COLUMN {quote_ident(col.name)} TYPE {col.type} USING {quote_ident(col.name)}::{col.type}"
                     for col, _ in changes)
    count = counts.get((ref.table.oid, ref.columns[0].num)) if table is ref.table else None
    rows = count.rows if count is not None else None
    summary = f"Change {table.name}.{', '.join(c.name for c, _ in changes)} to {', '.join(t for _, t in changes)}"
    steps = (sql(f"ALTER TABLE {table.qualified} {alter};"),)
    if cast is not None and not cast.holds:
        # The cast would fail (or may): those values first, by hand; the rewrite would roll back.
        return Fix(summary=f"{summary}, once the values that do not cast are corrected (manual)",
                   steps=(sql(f"{cast.query};", "the values the cast would fail on: correct them first"), *steps),
                   safety=FixSafety.MANUAL, lock=alter_type_lock(table, rows),
                   inverse=(sql(f"ALTER TABLE {table.qualified} {undo};"),), notes=cast.sentence())
    return Fix(
        summary=summary,
        steps=steps,
        safety=FixSafety.UNSAFE,
        lock=alter_type_lock(table, rows),
        inverse=(sql(f"ALTER TABLE {table.qualified} {undo};"),),
        notes=" ".join(n for n in (notes, cast.sentence() if cast is not None else None) if n) or None,
    )


def _migration_fix(ref: Reference, snapshot: Catalog) -> Fix:
    """integer → uuid: no cast maps an old integer id to its new uuid; the mapping must come from
    the referenced table's legacy id. A generated uuid (gen_random_uuid) would destroy it."""
    table, ref_table = ref.table, ref.ref_table
    column, key = ref.columns[0], ref.ref_columns[0]
    legacy = legacy_id_column(snapshot, ref_table, key, column)
    legacy_name = legacy.name if legacy else "legacy_id"
    new_column = f"{column.name}_new"
    q_col, q_new, q_key, q_legacy = (quote_ident(n) for n in (column.name, new_column, key.name, legacy_name))
    constraint = f"{table.name}_{column.name}_fkey"
    steps = (
        sql(f"ALTER TABLE {table.qualified} ADD COLUMN {q_new} {key.type};",
            "1. a new column of the key's type (no rewrite, brief ACCESS EXCLUSIVE lock)"),
        sql(f"UPDATE {table.qualified} AS c SET {q_new} = r.{q_key} FROM {ref_table.qualified} AS r "
            f"WHERE r.{q_legacy} = c.{q_col} AND c.{q_new} IS NULL;",
            f"2. backfill by joining through the old integer id kept in {ref_table.name}.{legacy_name}; "
            "run in batches (add AND c.ctid = ANY(...) or a key range) on a large table"),
        sql(f"SELECT count(*) FROM {table.qualified} WHERE {q_col} IS NOT NULL AND {q_new} IS NULL;",
            "3. must be 0 before the swap: these rows found no key through the legacy id"),
        sql(f"ALTER TABLE {table.qualified} RENAME COLUMN {q_col} TO {quote_ident(column.name + '_legacy')};",
            "4. swap (with the next statement, in one transaction, once the application writes both columns)"),
        sql(f"ALTER TABLE {table.qualified} RENAME COLUMN {q_new} TO {q_col};"),
        sql(f"ALTER TABLE {table.qualified} ADD CONSTRAINT {quote_ident(constraint)} FOREIGN KEY ({q_col}) "
            f"REFERENCES {ref_table.qualified} ({q_key}) NOT VALID;",
            "5. the constraint, added without a long lock, then validated (SHARE UPDATE EXCLUSIVE)"),
        sql(f"ALTER TABLE {table.qualified} VALIDATE CONSTRAINT {quote_ident(constraint)};"),
    )
    where = (f"{ref_table.qualified}.{quote_ident(legacy.name)} looks like the old id" if legacy else
             f"{ref_table.qualified} has no column that looks like the old integer id: the old → new id "
             "mapping must come from wherever the id migration kept it; replace legacy_id accordingly")
    return Fix(
        summary=f"Migrate {table.name}.{column.name} to {key.type} through the legacy id (manual)",
        steps=steps,
        safety=FixSafety.MANUAL,
        lock=f"brief ACCESS EXCLUSIVE locks on {table.qualified} for ADD/RENAME COLUMN; the backfill rewrites "
             f"every row of {table.qualified} (row locks, WAL, bloat)",
        notes=f"No cast turns an integer id into the uuid the row now has, and a generated uuid would destroy "
              f"the relationship. {where}. Deploy application code that writes both columns before the swap.",
    )


_LEGACY = re.compile(r"(^|_)(legacy|old|int|integer|serial|numeric)(_|$)")


def legacy_id_column(snapshot: Catalog, ref_table: Table, key: Column, column: Column) -> Column | None:
    """The referenced table's integer column that kept the pre-migration id, when exactly one looks like it."""
    candidates = [c for c in snapshot.columns.get(ref_table.oid, {}).values()
                  if c.num != key.num and family(c.base_type) == family(column.base_type)
                  and _LEGACY.search(snake(c.name))]
    return candidates[0] if len(candidates) == 1 else None


