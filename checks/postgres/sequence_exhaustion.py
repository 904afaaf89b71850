"""postgres.sequence-exhaustion: sequences that have used up most of the range of the column they
feed (smallint, integer, bigint) — not only of their own maximum, which for a serial column on an
integer is often the bigint maximum."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field, model_validator

from checks.engine import Check, CheckOptions, Scope
from checks.model import Engine, Finding, Fix, FixAvailability, FixSafety, Severity
from checks.postgres._catalog import INTEGER_MAX, Catalog, catalog, qualified, quote_ident
from checks.postgres._fixes import alter_type_lock, sql

# A sequence this role may not read shows last_value NULL with readable = false: reported, not guessed.
QUERY = """
SELECT s.seqrelid AS oid, n.nspname AS schema, c.relname AS name, format_type(s.seqtypid, NULL) AS type,
       s.seqstart AS start, s.seqincrement AS increment, s.seqmax AS max, s.seqmin AS min, s.seqcycle AS cycle,
       has_sequence_privilege(c.oid, 'SELECT,USAGE') AS readable,
       CASE WHEN has_sequence_privilege(c.oid, 'SELECT,USAGE') THEN pg_sequence_last_value(c.oid) END AS last_value,
       col.table_oid, col.column_num
FROM pg_sequence s
JOIN pg_class c ON c.oid = s.seqrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN LATERAL (
    SELECT d.refobjid AS table_oid, d.refobjsubid AS column_num   -- serial / identity / OWNED BY
    FROM pg_depend d
    WHERE d.classid = 'pg_class'::regclass AND d.objid = s.seqrelid AND d.refclassid = 'pg_class'::regclass
      AND d.refobjsubid > 0 AND d.deptype IN ('a', 'i')
    UNION
    SELECT ad.adrelid, ad.adnum                                   -- DEFAULT nextval('...') without OWNED BY
    FROM pg_depend d
    JOIN pg_attrdef ad ON ad.oid = d.objid
    WHERE d.classid = 'pg_attrdef'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid = s.seqrelid
) col ON true
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
"""


class Options(CheckOptions):
    threshold: float = Field(default=0.75, gt=0, le=1, description="Share of the usable range above which a sequence is reported (high).")
    critical_threshold: float = Field(default=0.9, gt=0, le=1, description="Share above which it is critical.")

    @model_validator(mode="after")
    def _ordered(self) -> Options:
        if self.critical_threshold < self.threshold:
            raise ValueError("critical_threshold must be at least threshold")
        return self


@dataclass(frozen=True)
class Sequence:
    oid: int
    schema: str
    name: str
    type: str
    start: int
    increment: int
    max: int
    min: int
    cycle: bool
    readable: bool
    last_value: int | None  # None: never used, or not readable
    table_oid: int | None
    column_num: int | None

    @property
    def qualified(self) -> str:
        return qualified(self.schema, self.name)


@dataclass(frozen=True)
class Facts:
    catalog: Catalog
    sequences: tuple[Sequence, ...]
    database: str


@dataclass(frozen=True)
class Usage:
    limit: int
    limited_by: str
    used: float  # share of the range from start to limit


def usage(seq: Sequence, column_type: str | None) -> Usage | None:
    if seq.last_value is None:
        return None
    ascending = seq.increment > 0
    limits = []
    if column_type in INTEGER_MAX:  # listed first: on a tie the column's type is the limit to name
        bound = INTEGER_MAX[column_type] if ascending else -INTEGER_MAX[column_type] - 1
        limits.append((bound, f"the {column_type} column it feeds"))
    limits.append((seq.max if ascending else seq.min, f"the sequence's {'MAXVALUE' if ascending else 'MINVALUE'}"))
    limit, limited_by = min(limits, key=lambda item: item[0]) if ascending else max(limits, key=lambda item: item[0])
    span = limit - seq.start
    if span == 0:
        return Usage(limit, limited_by, 1.0)
    return Usage(limit, limited_by, max(0.0, (seq.last_value - seq.start) / span))


class SequenceExhaustion(Check):
    id = "postgres.sequence-exhaustion"
    engine = Engine.POSTGRES
    title = "Sequence close to running out"
    severity = Severity.HIGH
    fix_availability = FixAvailability.SOMETIMES
    Options = Options
    rationale = (
        "When a sequence, or the integer column it feeds, reaches its maximum every insert fails. The column "
        "is often the tighter limit: a serial on integer stops at 2,147,483,647 whatever the sequence allows."
    )

    async def gather(self, session, scope: Scope) -> Facts:
        snapshot = await catalog(session)
        rows = await session.fetch(QUERY)
        return Facts(snapshot, tuple(Sequence(**dict(r)) for r in rows), session.database)

    def evaluate(self, facts: Facts, scope: Scope) -> list[Finding]:
        snapshot, options = facts.catalog, scope.options
        findings = []
        unreadable = sorted(s.qualified for s in facts.sequences if not s.readable)
        seen: set[int] = set()
        for seq in sorted(facts.sequences, key=lambda s: (s.oid, s.column_num or 0)):
            table = snapshot.tables.get(seq.table_oid) if seq.table_oid else None
            column = snapshot.columns.get(seq.table_oid, {}).get(seq.column_num) if table else None
            if seq.cycle or seq.oid in seen or (table is not None and table.is_partition):
                continue
            measured = usage(seq, column.base_type if column else None)
            if measured is None or measured.used < options.threshold:
                continue
            seen.add(seq.oid)
            feeds = f"{table.qualified}.{quote_ident(column.name)} ({column.type})" if column else "no column (not owned)"
            findings.append(self.finding(
                scope, object=seq.qualified,
                severity=Severity.CRITICAL if measured.used >= options.critical_threshold else Severity.HIGH,
                title=f"{seq.name} has used {measured.used:.0%} of its range",
                message=(f"{seq.qualified} is at {seq.last_value:,} of {measured.limit:,} ({measured.used:.1%}), limited by "
                         f"{measured.limited_by}; it feeds {feeds}. Inserts fail when it is reached."),
                evidence={
                    "last_value": seq.last_value, "limit": measured.limit, "limited_by": measured.limited_by,
                    "used": round(measured.used, 4), "sequence_type": seq.type, "increment": seq.increment,
                    "column": feeds, "rows_estimate": table.rows if table else None,
                },
                fix=_fix(seq, snapshot, table, column),
            ))
        if unreadable:
            findings.append(self.finding(
                scope, object=f"database {quote_ident(facts.database)}", key="unreadable", severity=Severity.INFO,
                title=f"{len(unreadable)} sequence(s) could not be read",
                message=("This role has neither SELECT nor USAGE on these sequences, so their current value is "
                         "hidden (pg_monitor does not grant it): " + ", ".join(unreadable[:20])
                         + (" …" if len(unreadable) > 20 else "") + ". GRANT SELECT ON SEQUENCE to check them."),
                evidence={"unreadable_sequences": unreadable, "why": "no SELECT or USAGE privilege on the sequence"},
            ))
        return findings


def _fix(seq: Sequence, snapshot: Catalog, table, column) -> Fix | None:
    if column is not None and column.base_type in ("smallint", "integer"):
        referencing = [
            f"{snapshot.tables[fk.table_oid].qualified}.{quote_ident(snapshot.column(fk.table_oid, fk.columns[0]).name)}"
            for fk in snapshot.foreign_keys
            if fk.ref_table_oid == table.oid and fk.ref_columns == (column.num,) and not fk.inherited
        ]
        col = quote_ident(column.name)
        return Fix(
            summary=f"Widen {table.name}.{column.name} and {seq.name} to bigint",
            steps=(sql(f"ALTER TABLE {table.qualified} ALTER COLUMN {col} TYPE bigint;"),
                   sql(f"ALTER SEQUENCE {seq.qualified} AS bigint;")),
            safety=FixSafety.UNSAFE,
            lock=alter_type_lock(table),
            inverse=(sql(f"ALTER SEQUENCE {seq.qualified} AS {column.base_type};"),
                     sql(f"ALTER TABLE {table.qualified} ALTER COLUMN {col} TYPE {column.base_type};")),
            notes=("Widen the columns that reference it too: " + ", ".join(referencing)) if referencing else
                  "On a large table consider a new bigint column, backfilled in batches, and a swap instead of the rewrite.",
        )
    if seq.type != "bigint" or seq.max < INTEGER_MAX["bigint"]:
        return Fix(
            summary=f"Let {seq.name} run to the bigint maximum",
            steps=(sql(f"ALTER SEQUENCE {seq.qualified} AS bigint MAXVALUE {INTEGER_MAX['bigint']};"),),
            safety=FixSafety.SAFE,
            lock=f"a brief lock on {seq.qualified}; no table is touched",
            inverse=(sql(f"ALTER SEQUENCE {seq.qualified} AS {seq.type} MAXVALUE {seq.max};"),),
        )
    return None
