"""postgres.sequence-exhaustion: sequences that have used up most of their range — measured from
the sequence's own bound (MINVALUE for an ascending one) to the tighter of its other bound and the
range of the column it feeds (smallint, integer, bigint) — with the rate at which it advances and
the date it would run out.

A sequence never called is judged by its START (the value it would hand out next), so one created
`START 2000000000` on an integer column is as urgent as one that reached that value by use. Cycling
sequences never run out and are skipped.

The rate comes from two readings of the flagged sequences `sample_seconds` apart; when the sequence
did not move in between, from the inserts into the table it feeds since the statistics were reset
(or since the server started): none at all in that period bounds the rate at one value per period.
The evidence says which. The severity is the runway's (checks/runway.py: days left, not share
used); with no rate to go by it stays the share's, and the finding says the runway is unknown.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field

from pydantic import Field, model_validator

from checks.contract import Check, CheckOptions, Scope
from checks.model import Finding, Fix, FixAvailability, FixSafety, Severity
from checks.postgres._catalog import INTEGER_MAX, Catalog, CatalogSnapshot, qualified, quote_ident
from checks.postgres._fixes import alter_type_lock, sql
from checks.runway import grade, runway_text
from checks.units import counted, percent

# A sequence this role may not read shows last_value NULL with readable = false: reported, not guessed.
# A readable one with last_value NULL was never called: its next value is START.
QUERY = """
SELECT s.seqrelid AS oid, n.nspname AS schema, c.relname AS name, format_type(s.seqtypid, NULL) AS type,
       s.seqstart AS start, s.seqincrement AS increment, s.seqmax AS max, s.seqmin AS min, s.seqcycle AS cycle,
       has_sequence_privilege(c.oid, 'SELECT,USAGE') AS readable,
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

# The second reading, of the flagged sequences only, with the clock it was taken by.
# Reading a sequence's last value locks it until the transaction ends, and the lock table holds
# max_locks_per_transaction × max_connections locks for the whole server: read in batches, each
# statement its own transaction, so ten thousand sequences never exhaust it.
LAST_VALUES_QUERY = """
SELECT s.oid, CASE WHEN has_sequence_privilege(s.oid, 'SELECT,USAGE') THEN pg_sequence_last_value(s.oid) END AS last_value
FROM unnest($1::oid[]) AS s(oid)
"""
LAST_VALUES_BATCH = 500


async def last_values(session, oids: list[int]) -> dict[int, int | None]:
    values: dict[int, int | None] = {}
    for at in range(0, len(oids), LAST_VALUES_BATCH):
        for row in await session.fetch(LAST_VALUES_QUERY, oids[at:at + LAST_VALUES_BATCH]):
            values[row["oid"]] = row["last_value"]
    return values

INSERTS_QUERY = """
SELECT t.relid AS table_oid, t.n_tup_ins AS inserts
FROM pg_stat_all_tables t
WHERE t.relid = ANY ($1::oid[])
"""

# pg_stat_database.stats_reset is NULL until someone resets the statistics: then they count
# since the server started (PostgreSQL 15 keeps them over a clean restart; this is a lower bound).
STATS_SINCE_QUERY = """
SELECT coalesce(d.stats_reset, pg_postmaster_start_time()) AS since, d.stats_reset IS NULL AS since_start, now() AS now
FROM pg_stat_database d
WHERE d.datname = current_database()
"""


class Options(CheckOptions):
    threshold: float = Field(default=0.75, gt=0, le=1, description="Share of the usable range above which a sequence is reported (high).")
    critical_threshold: float = Field(default=0.9, gt=0, le=1, description="Share above which it is critical.")
    sample_seconds: float = Field(
        default=1.0, ge=0, le=60,
        description="Seconds between two readings of a flagged sequence, for its rate (0: rate from inserts only).")

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
    last_value: int | None  # None: never called (readable), or not readable
    table_oid: int | None
    column_num: int | None

    @property
    def qualified(self) -> str:
        return qualified(self.schema, self.name)

    @property
    def called(self) -> bool:
        return self.last_value is not None

    @property
    def current(self) -> int | None:
        """The value judged: the last one handed out, or START for a sequence never called."""
        if not self.readable:
            return None
        return self.last_value if self.last_value is not None else self.start


@dataclass(frozen=True)
class Rates:
    """What the rate of each flagged sequence is computed from."""

    advanced: dict[int, tuple[int, float]] = field(default_factory=dict)  # sequence oid → (values moved, seconds)
    inserts: dict[int, int] = field(default_factory=dict)  # table oid → n_tup_ins (partitions summed)
    stats_since: dt.datetime | None = None
    stats_since_start: bool = False  # the counters run since the server started, never reset
    now: dt.datetime | None = None


@dataclass(frozen=True)
class Facts:
    catalog: Catalog
    sequences: tuple[Sequence, ...]
    database: str
    rates: Rates = field(default_factory=Rates)


@dataclass(frozen=True)
class Usage:
    limit: int
    limited_by: str
    used: float  # share of the range from the sequence's own bound to the limit
    remaining: int  # values left before the limit (in steps of the increment: remaining // |increment| calls)


def usage(seq: Sequence, column_type: str | None) -> Usage | None:
    value = seq.current
    if value is None:
        return None
    ascending = seq.increment > 0
    limits = []
    if column_type in INTEGER_MAX:  # listed first: on a tie the column's type is the limit to name
        bound = INTEGER_MAX[column_type] if ascending else -INTEGER_MAX[column_type] - 1
        limits.append((bound, f"the {column_type} column it feeds"))
    limits.append((seq.max if ascending else seq.min, f"the sequence's {'MAXVALUE' if ascending else 'MINVALUE'}"))
    limit, limited_by = min(limits, key=lambda item: item[0]) if ascending else max(limits, key=lambda item: item[0])
    origin = seq.min if ascending else seq.max
    span = abs(limit - origin)
    remaining = max(0, limit - value if ascending else value - limit)
    if span == 0:
        return Usage(limit, limited_by, 1.0, remaining)
    return Usage(limit, limited_by, min(1.0, max(0.0, 1 - remaining / span)), remaining)


def flagged(facts_catalog: Catalog, sequences: tuple[Sequence, ...], threshold: float) -> list[Sequence]:
    """The sequences at or above the threshold, each once (a sequence may feed several columns)."""
    out: dict[int, Sequence] = {}
    for seq in sorted(sequences, key=lambda s: (s.oid, s.column_num or 0)):
        table = facts_catalog.tables.get(seq.table_oid) if seq.table_oid else None
        if seq.cycle or seq.oid in out or (table is not None and table.is_partition):
            continue
        column = (facts_catalog.columns.get(seq.table_oid, {}).get(seq.column_num)
                  if table and seq.table_oid and seq.column_num is not None else None)
        measured = usage(seq, column.base_type if column else None)
        if measured is not None and measured.used >= threshold:
            out[seq.oid] = seq
    return list(out.values())


def rate(seq: Sequence, rates: Rates, snapshot: Catalog) -> tuple[float | None, str, bool]:
    """Values per second, how that was measured, and whether it is an upper bound (no insert at
    all over a known period: fewer than one value per that period)."""
    moved = rates.advanced.get(seq.oid)
    if moved and moved[0] > 0 and moved[1] > 0:
        return moved[0] / moved[1], f"advance of {moved[0]:,} over {moved[1]:.1f} s between two readings", False
    counted = seq.table_oid is not None and seq.table_oid in rates.inserts
    if counted and seq.table_oid and rates.stats_since and rates.now and rates.now > rates.stats_since:
        inserts = rates.inserts[seq.table_oid]
        seconds = (rates.now - rates.stats_since).total_seconds()
        since = "the server started (statistics never reset)" if rates.stats_since_start else "the statistics reset"
        where = f"into {snapshot.tables[seq.table_oid].qualified} since {since}, {rates.stats_since:%Y-%m-%d %H:%M} UTC"
        if inserts:
            return (inserts * abs(seq.increment)) / seconds, f"{inserts:,} inserts {where}", False
        return abs(seq.increment) / seconds, f"no insert {where}: under one value per {seconds:,.0f} s", True
    if moved is not None:
        return None, f"did not advance over {moved[1]:.1f} s and no insert count to go by", False
    return None, "no insert count to go by", False


class SequenceExhaustion(Check):
    id = "postgres.sequence-exhaustion"
    needs = (CatalogSnapshot,)
    engine = "postgres"
    title = "Sequence close to running out"
    severity = Severity.HIGH
    fix_availability = FixAvailability.SOMETIMES
    Options = Options
    rationale = (
        "When a sequence, or the integer column it feeds, reaches its maximum every insert fails. The column "
        "is often the tighter limit: a serial on integer stops at 2,147,483,647 whatever the sequence allows."
    )

    async def gather(self, session, scope: Scope) -> Facts:
        # The first reading before the snapshot: the wait for the second one overlaps reading it.
        rows = await session.fetch(QUERY)
        first = await last_values(session, [r["oid"] for r in rows])
        read_at = asyncio.get_running_loop().time()
        snapshot = await self.fact(CatalogSnapshot, session, scope)
        sequences = tuple(Sequence(**dict(r), last_value=first.get(r["oid"])) for r in rows)
        hot = flagged(snapshot, sequences, scope.options.threshold)
        if not hot:
            return Facts(snapshot, sequences, session.database)
        advanced: dict[int, tuple[int, float]] = {}
        if scope.options.sample_seconds > 0:
            await asyncio.sleep(max(0.0, read_at + scope.options.sample_seconds - asyncio.get_running_loop().time()))
            again = await last_values(session, [s.oid for s in hot])
            elapsed = asyncio.get_running_loop().time() - read_at
            before = {s.oid: s.current for s in hot}
            for oid, value in again.items():
                if value is not None and (previous := before.get(oid)) is not None:
                    advanced[oid] = (abs(value - previous), elapsed)
        tables = {s.table_oid for s in hot if s.table_oid}
        members = {t: [t, *snapshot.leaves(t)] for t in tables}
        counted = {r["table_oid"]: r["inserts"] for r in await session.fetch(
            INSERTS_QUERY, sorted({m for ms in members.values() for m in ms}))}
        inserts = {t: sum(counted.get(m, 0) for m in ms) for t, ms in members.items()}
        since = await session.fetch(STATS_SINCE_QUERY)
        rates = Rates(advanced, inserts, since[0]["since"] if since else None,
                      bool(since and since[0]["since_start"]), since[0]["now"] if since else None)
        return Facts(snapshot, sequences, session.database, rates)

    def evaluate(self, facts: Facts, scope: Scope) -> list[Finding]:
        snapshot, options = facts.catalog, scope.options
        findings = []
        unreadable = sorted(s.qualified for s in facts.sequences if not s.readable)
        for seq in flagged(snapshot, facts.sequences, options.threshold):
            table = snapshot.tables.get(seq.table_oid) if seq.table_oid else None
            column = (snapshot.columns.get(seq.table_oid, {}).get(seq.column_num)
                      if table and seq.table_oid and seq.column_num is not None else None)
            measured = usage(seq, column.base_type if column else None)
            assert measured is not None  # flagged returns measured sequences only
            feeds = (f"{table.qualified}.{quote_ident(column.name)} ({column.type})" if column and table
                     else "no column (not owned)")
            per_second, measured_by, upper_bound = rate(seq, facts.rates, snapshot)
            evidence = {
                "last_value": seq.last_value, "called": seq.called, "start": seq.start,
                "bounds": [seq.min, seq.max], "limit": measured.limit, "limited_by": measured.limited_by,
                "used": round(measured.used, 4), "remaining_values": measured.remaining,
                "sequence_type": seq.type, "increment": seq.increment,
                "column": feeds, "rows_estimate": table.rows if table else None,
                "rate_per_second": round(per_second, 3) if per_second else None, "rate_from": measured_by,
            }
            when = ""
            days_left = None
            if per_second and facts.rates.now is not None:
                left = dt.timedelta(seconds=min(measured.remaining / per_second, 3.2e9))  # timedelta tops out near 10^9 days
                days_left = left.total_seconds() / 86400
                evidence["exhausted_in_days"] = round(days_left, 1)
                if upper_bound:
                    when = (f" Even at one value per {1 / per_second:,.0f} s (more than the inserts show) it "
                            f"{runway_text(days_left, at_least=True)}.")
                elif left.days < 36500:
                    evidence["estimated_exhaustion"] = (facts.rates.now + left).strftime("%Y-%m-%d %H:%M UTC")
                    when = f" At {per_second:,.2f} values/s it runs out around {evidence['estimated_exhaustion']}."
                else:
                    when = f" At {per_second:,.2f} values/s that is more than a century away."
            else:
                when = " Runway unknown: no rate to go by, so the share used decides."
            evidence["runway"] = runway_text(days_left, at_least=upper_bound)
            by_share = Severity.CRITICAL if measured.used >= options.critical_threshold else Severity.HIGH
            state = f"at {seq.last_value:,}" if seq.called else f"never called; it starts at {seq.start:,}"
            findings.append(self.finding(
                scope, object=seq.qualified,
                severity=grade(days_left, by_share),
                # The runway stays out of the title: it moves with every reading, the title must not.
                title=f"{seq.name} has used {percent(measured.used)} of its range",
                message=(f"{seq.qualified} is {state}, {measured.remaining:,} values from {measured.limit:,} "
                         f"({percent(measured.used, 1)} of its range used), limited by {measured.limited_by}; it feeds {feeds}. "
                         f"Inserts fail when it is reached.{when}"),
                evidence=evidence,
                fix=_fix(seq, snapshot, table, column),
            ))
        if unreadable:
            findings.append(self.finding(
                scope, object=f"database {quote_ident(facts.database)}", key="unreadable", severity=Severity.INFO,
                title=f"{counted(len(unreadable), 'sequence')} could not be read",
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
            for fk in snapshot.referencing(table.oid)
            if fk.ref_columns == (column.num,) and not fk.inherited
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
