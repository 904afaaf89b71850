"""postgres.missing-index: large tables read mostly by sequential scans, the heavy statements
behind them (pg_stat_statements, where present) and a suggested index, verified with a
hypothetical index (hypopg, where present) by the planner's cost before and after.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import asyncpg
from pydantic import Field

from checks.engine import Check, CheckOptions, Scope
from checks.model import Engine, Finding, Fix, FixAvailability, FixSafety, Severity
from checks.postgres._catalog import Catalog, Table, catalog, new_index_name, quote_ident
from checks.postgres._fixes import CONCURRENT_BUILD_LOCK, create_index_steps, sql
from checks.postgres._statement_shape import Shape, parameter_count, parse

# Partitions add up to their parent: a partitioned table is judged as one.
QUERY = """
SELECT coalesce(pg_partition_root(s.relid)::oid, s.relid) AS table_oid,
       sum(s.seq_scan)::bigint AS seq_scan, sum(s.seq_tup_read)::bigint AS seq_tup_read,
       sum(coalesce(s.idx_scan, 0))::bigint AS idx_scan, sum(s.n_live_tup)::bigint AS live_rows
FROM pg_stat_user_tables s
GROUP BY 1
"""

EXTENSIONS_QUERY = """
SELECT current_setting('shared_preload_libraries', true) AS preload,
       (SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_stat_statements') AS pgss_schema,
       (SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'hypopg') AS hypopg_schema
"""

STATEMENTS_QUERY = """
SELECT s.query, s.calls, s.total_exec_time::float8 AS total_ms, s.mean_exec_time::float8 AS mean_ms, s.rows
FROM {schema}.pg_stat_statements s
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY s.total_exec_time DESC
LIMIT $1
"""

# pg_stats shows only columns this role may read; the parent of a partitioned table has inherited stats.
COLUMN_STATS_QUERY = """
SELECT c.oid AS table_oid, s.attname AS column_name, s.n_distinct::float8 AS n_distinct, s.null_frac::float8 AS null_frac
FROM pg_stats s
JOIN pg_namespace n ON n.nspname = s.schemaname
JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.tablename
WHERE c.oid = ANY($1::oid[]) AND s.inherited = (c.relkind = 'p')
"""

PROBE = "dbvitals_missing_index_probe"


class Options(CheckOptions):
    min_rows: int = Field(default=10_000, ge=0, description="Only tables with at least this many live rows.")
    min_seq_scans: int = Field(default=50, ge=1, description="Only tables sequentially scanned at least this often.")
    min_seq_tup_read: int = Field(default=1_000_000, ge=0, description="Only tables whose sequential scans read at least this many rows in all.")
    max_index_share: float = Field(
        default=0.95, ge=0, le=1, description="Report when less than this share of scans use an index (pghero: 95%).")
    statements: int = Field(default=500, ge=1, le=10_000, description="How many of the heaviest pg_stat_statements entries to read.")
    min_saving: float = Field(
        default=0.2, ge=0, le=1, description="A verified suggestion must cut the planner's cost by at least this share.")


@dataclass(frozen=True)
class TableStats:
    table_oid: int
    seq_scan: int
    seq_tup_read: int
    idx_scan: int
    live_rows: int

    @property
    def index_share(self) -> float:
        total = self.seq_scan + self.idx_scan
        return self.idx_scan / total if total else 0.0


@dataclass(frozen=True)
class Statement:
    query: str
    calls: int
    total_ms: float
    mean_ms: float
    rows: int
    shape: Shape


@dataclass(frozen=True)
class Availability:
    available: bool
    detail: str


@dataclass(frozen=True)
class Suggestion:
    table_oid: int
    columns: tuple[str, ...]
    statement: Statement
    ordering: str  # how the columns were ordered, in words

    @property
    def columns_sql(self) -> str:
        return ", ".join(quote_ident(c) for c in self.columns)


@dataclass(frozen=True)
class Verification:
    cost_before: float | None
    cost_after: float | None
    uses_index: bool
    note: str | None = None


@dataclass(frozen=True)
class Facts:
    catalog: Catalog
    stats: tuple[TableStats, ...]
    statements_source: Availability
    hypopg: Availability
    statements: tuple[Statement, ...]
    distinct: dict[tuple[int, str], float]  # (table, column) → estimated distinct values
    stats_readable: dict[int, bool]  # per flagged table: whether pg_stats showed anything
    verifications: dict[tuple[int, tuple[str, ...]], Verification]


def flagged(stats: tuple[TableStats, ...], snapshot: Catalog, options: Options) -> list[TableStats]:
    return [s for s in stats
            if s.table_oid in snapshot.tables and not snapshot.tables[s.table_oid].is_partition
            and s.live_rows >= options.min_rows and s.seq_scan >= options.min_seq_scans
            and s.seq_tup_read >= options.min_seq_tup_read and s.index_share < options.max_index_share]


def statement_table(shape: Shape, snapshot: Catalog) -> Table | None:
    schemas = (shape.schema,) if shape.schema else snapshot.search_path
    for schema in schemas:
        for table in snapshot.tables.values():
            if table.schema == schema and table.name == shape.table:
                return table
    return None


def suggest(table: Table, live_rows: int, statements: tuple[Statement, ...], snapshot: Catalog,
            distinct: dict[tuple[int, str], float], *, skip_covered: bool = True) -> Suggestion | None:
    """An index for the heaviest statement on `table` that no existing index already leads with.

    Equality columns first, the most selective first (pg_stats n_distinct), then one range column
    or else the sort columns; stop adding once about 50 rows would remain (pghero's rule).
    """
    existing = [snapshot.column_names(table.oid, i.key_columns) for i in snapshot.indexes_of(table.oid)
                if i.valid and i.predicate is None and not i.attached]
    known = {c.name for c in snapshot.columns.get(table.oid, {}).values()}
    for statement in sorted(statements, key=lambda s: -s.total_ms):
        if statement_table(statement.shape, snapshot) != table:
            continue
        shape = statement.shape
        if not set(shape.equality + shape.ranges + shape.sort) <= known:
            continue
        have_stats = all((table.oid, c) in distinct for c in shape.equality)
        equality = sorted(shape.equality, key=lambda c: -distinct.get((table.oid, c), 0)) if have_stats else list(shape.equality)
        columns: list[str] = []
        remaining = float(max(live_rows, 1))
        for column in equality:
            columns.append(column)
            remaining /= max(distinct.get((table.oid, column), 1.0), 1.0)
            if have_stats and remaining <= 50:
                break
        tail = "none"
        if not (have_stats and remaining <= 50):
            if shape.ranges:
                columns.append(shape.ranges[0])
                tail = f"then the range column {shape.ranges[0]}"
            elif shape.sort and len(columns) == len(shape.equality):
                columns.extend(c for c in shape.sort if c not in columns)
                tail = f"then the ORDER BY column(s) {', '.join(shape.sort)}"
        if not columns:
            continue
        if skip_covered and any(tuple(e[: len(columns)]) == tuple(columns) for e in existing):
            continue
        ordering = ("equality columns by selectivity (pg_stats n_distinct, most distinct first)" if have_stats and equality
                    else "equality columns in the statement's order (selectivity unknown: pg_stats not readable)"
                    if equality else "no equality columns")
        return Suggestion(table.oid, tuple(columns), statement, f"{ordering}; {tail}")
    return None


class MissingIndex(Check):
    id = "postgres.missing-index"
    engine = Engine.POSTGRES
    title = "Large table read by sequential scans"
    severity = Severity.MEDIUM
    fix_availability = FixAvailability.SOMETIMES
    Options = Options
    rationale = (
        "A large table that is mostly read by sequential scans usually lacks an index for the statements that "
        "read it: every such statement reads the whole table, evicting the cache and burning I/O and CPU."
    )

    async def gather(self, session, scope: Scope) -> Facts:
        snapshot = await catalog(session)
        stats = tuple(TableStats(**dict(r)) for r in await session.fetch(QUERY))
        ext = await session.fetchrow(EXTENSIONS_QUERY)
        candidates = flagged(stats, snapshot, scope.options)
        pgss, statements = await _statements(session, ext, scope.options) if candidates else (
            Availability(False, "not read: no table qualifies"), ())
        hypopg = (Availability(True, f"hypopg in schema {ext['hypopg_schema']}") if ext["hypopg_schema"] else
                  Availability(False, "hypopg is not installed in this database (CREATE EXTENSION hypopg)"))
        distinct: dict[tuple[int, str], float] = {}
        readable: dict[int, bool] = {}
        if candidates and statements:
            oids = [c.table_oid for c in candidates]
            for row in await session.fetch(COLUMN_STATS_QUERY, oids):
                rows = snapshot.tables[row["table_oid"]].rows_estimate
                n = row["n_distinct"]
                distinct[(row["table_oid"], row["column_name"])] = n if n > 0 else -n * max(rows, 1)
                readable[row["table_oid"]] = True
        verifications = {}
        for stat in candidates:
            table = snapshot.tables[stat.table_oid]
            suggestion = suggest(table, stat.live_rows, statements, snapshot, distinct)
            if suggestion is not None:
                verifications[(table.oid, suggestion.columns)] = (
                    await verify(session, ext["hypopg_schema"], table, suggestion) if hypopg.available
                    else Verification(None, None, False, f"unverified: {hypopg.detail}"))
        return Facts(snapshot, stats, pgss, hypopg, statements, distinct, readable, verifications)

    def evaluate(self, facts: Facts, scope: Scope) -> list[Finding]:
        snapshot, options = facts.catalog, scope.options
        findings = []
        taken = {i.name for i in snapshot.indexes} | {t.name for t in snapshot.tables.values()}
        for stat in flagged(facts.stats, snapshot, options):
            table = snapshot.tables[stat.table_oid]
            related = [s for s in facts.statements if statement_table(s.shape, snapshot) == table]
            suggestion = suggest(table, stat.live_rows, facts.statements, snapshot, facts.distinct)
            if suggestion is None and suggest(table, stat.live_rows, facts.statements, snapshot, facts.distinct,
                                              skip_covered=False) is not None:
                # The statements that scanned it are served by an index now: the counters are history
                # (cumulative since the last stats reset), not a current problem.
                continue
            evidence = {
                "live_rows": stat.live_rows,
                "seq_scan": stat.seq_scan,
                "seq_tup_read": stat.seq_tup_read,
                "idx_scan": stat.idx_scan,
                "index_scan_share": round(stat.index_share, 4),
                "rows_read_per_seq_scan": stat.seq_tup_read // max(stat.seq_scan, 1),
                "statements_source": facts.statements_source.detail,
                "statements": [{"query": s.query[:500], "calls": s.calls, "total_ms": round(s.total_ms, 1),
                                "mean_ms": round(s.mean_ms, 2)} for s in sorted(related, key=lambda s: -s.total_ms)[:5]],
            }
            message = (f"{table.qualified} (~{stat.live_rows:,} live rows) was read by {stat.seq_scan:,} sequential scans "
                       f"({stat.seq_tup_read:,} rows) and only {stat.index_share:.0%} of its scans used an index.")
            fix = None
            if suggestion is None:
                evidence["suggestion"] = None
                evidence["suggestion_note"] = (
                    f"no suggestion: the statements are unknown ({facts.statements_source.detail})"
                    if not facts.statements_source.available else
                    "no suggestion: no single-table statement on this table with an indexable WHERE or ORDER BY, "
                    "or existing indexes already lead with its columns")
                evidence["verification"] = "unverified / not available"
                message += " Which columns the scans filter on is unknown, so no index is suggested."
            else:
                verification = facts.verifications.get((table.oid, suggestion.columns),
                                                        Verification(None, None, False, "unverified: not run"))
                name = new_index_name(table.name, suggestion.columns, taken)
                taken.add(name)
                definition = f"CREATE INDEX {quote_ident(name)} ON {table.qualified} ({suggestion.columns_sql})"
                evidence["suggestion"] = {"definition": definition, "ordering": suggestion.ordering,
                                          "for_statement": suggestion.statement.query[:500]}
                evidence["verification"] = _verification_evidence(verification)
                verified = _verified(verification, options)
                message += f" Suggested: ({', '.join(suggestion.columns)}) for its heaviest statement; "
                if verification.cost_before is not None and verification.cost_after is not None:
                    message += (f"hypopg: planner cost {verification.cost_before:,.0f} → {verification.cost_after:,.0f}"
                                + ("" if verified else " (not enough to recommend it)") + ".")
                else:
                    message += f"{verification.note}."
                if verified or verification.cost_before is None:
                    fix = Fix(
                        summary=f"Create index {name} on ({', '.join(suggestion.columns)})",
                        steps=create_index_steps(snapshot, table, name, suggestion.columns_sql),
                        safety=FixSafety.SAFE,
                        lock=CONCURRENT_BUILD_LOCK.format(table=table.qualified),
                        inverse=(sql(f"DROP INDEX {'' if table.partitioned else 'CONCURRENTLY '}"
                                     f"{quote_ident(table.schema)}.{quote_ident(name)};",
                                     transactional=table.partitioned),),
                        notes=None if verified else "Unverified: no hypothetical index was tried (hypopg); check the "
                                                    "plan with EXPLAIN after creating it.",
                    )
            findings.append(self.finding(
                scope, object=table.qualified, title=f"{table.name} is mostly read by sequential scans",
                message=message, evidence=evidence, fix=fix,
            ))
        return findings


def _verified(v: Verification, options: Options) -> bool:
    if v.cost_before is None or v.cost_after is None or not v.uses_index:
        return False
    return v.cost_after <= v.cost_before * (1 - options.min_saving)


def _verification_evidence(v: Verification) -> dict[str, object]:
    if v.cost_before is None:
        return {"status": "unverified", "note": v.note}
    return {"status": "verified with hypopg", "cost_before": v.cost_before, "cost_after": v.cost_after,
            "planner_uses_index": v.uses_index,
            "saving": None if not v.cost_before else round(1 - (v.cost_after or 0) / v.cost_before, 4)}


async def _statements(session, ext, options: Options) -> tuple[Availability, tuple[Statement, ...]]:
    preload = ext["preload"]
    loaded = preload is not None and "pg_stat_statements" in [p.strip() for p in preload.split(",")]
    if ext["pgss_schema"] is None:
        why = ("the extension is not created in this database (CREATE EXTENSION pg_stat_statements)" if loaded else
               "pg_stat_statements is not in shared_preload_libraries (it needs a server restart) "
               "and not created in this database")
        return Availability(False, f"not available: {why}"), ()
    try:
        rows = await session.fetch(STATEMENTS_QUERY.format(schema=quote_ident(ext["pgss_schema"])), options.statements)
    except asyncpg.PostgresError as exc:
        return Availability(False, f"not available: {exc}"), ()
    statements = []
    for row in rows:
        shape = parse(row["query"])
        if shape is not None:
            statements.append(Statement(row["query"], row["calls"], row["total_ms"], row["mean_ms"], row["rows"], shape))
    return Availability(True, f"pg_stat_statements ({len(rows)} heaviest statements read)"), tuple(statements)


async def verify(session, hypopg_schema: str, table: Table, suggestion: Suggestion) -> Verification:
    """The planner's generic-plan cost of the statement, then again with a hypothetical index.

    A normalised statement has $n parameters; PREPARE infers their types and a forced generic plan
    needs no values. Both the prepared statement and the hypothetical index live only in this
    backend and are removed before the connection returns to the pool.
    """
    if not table.readable:
        return Verification(None, None, False, f"unverified: this role may not SELECT from {table.qualified}, and EXPLAIN needs it")
    query = suggestion.statement.query
    params = ", ".join(["NULL"] * parameter_count(query))
    explain = f"EXPLAIN (FORMAT JSON) EXECUTE {PROBE}" + (f"({params})" if params else "")
    hypo = quote_ident(hypopg_schema)
    async with session.acquire() as conn:
        try:
            await conn.execute("SET plan_cache_mode = force_generic_plan")
            before = _plan(await _explain(conn, query, explain))
            index = await conn.fetchrow(f"SELECT indexrelid, indexname FROM {hypo}.hypopg_create_index($1)",
                                        f"CREATE INDEX ON {table.qualified} ({suggestion.columns_sql})")
            after_plan = await _explain(conn, query, explain)
            return Verification(before, _plan(after_plan), str(index["indexname"]) in after_plan)
        except asyncpg.PostgresError as exc:
            return Verification(None, None, False, f"unverified: the planner could not be asked ({exc})")
        finally:
            await conn.execute(f"SELECT {hypo}.hypopg_reset(); RESET plan_cache_mode")


async def _explain(conn, query: str, explain: str) -> str:
    # Prepared afresh each time: a prepared statement caches its generic plan, and a hypothetical
    # index does not invalidate it.
    await conn.execute(f"PREPARE {PROBE} AS {query}")
    try:
        return await conn.fetchval(explain)
    finally:
        await conn.execute(f"DEALLOCATE {PROBE}")


def _plan(explained: str) -> float:
    plan = json.loads(explained) if isinstance(explained, str) else explained
    cost = plan[0]["Plan"]["Total Cost"]
    return float(cost) if math.isfinite(cost) else float("inf")
