"""postgres.missing-index: the indexes the planner would use for the statements that cost the
most time (pg_stat_statements) or that the application declares (`[[targets.NAME.expect.queries]]`),
found with hypothetical indexes (hypopg) — see `_advisor` — and ranked by the time they would save;
and large tables read by sequential scans that no suggestion explains, with the reason for each
statement that touched them.

Without hypopg the suggestion falls back to reading the statement's WHERE and ORDER BY (single
table, literal column names) and is marked unverified.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from pydantic import Field

from checks.postgres.marker import STATEMENT_MARKER, is_own_statement
from checks.config import Duration, duration
from checks.contract import Check, CheckOptions, Scope
from checks.model import Finding, Fix, FixAvailability, FixSafety, Severity
from checks.postgres import _advisor
from checks.postgres._advisor import Advice, Proposal, consolidate
from checks.postgres._catalog import Catalog, CatalogSnapshot, Table, quote_ident
from checks.postgres._fixes import CONCURRENT_BUILD_LOCK, create_index_steps, name_for_new_index, sql
from checks.postgres._statement_shape import Shape, parse
from checks.postgres._window import Counters, WriteWindow, write_window
from checks.units import counted, listed

# Partitions add up to their parent: a partitioned table is judged as one.
QUERY = """
SELECT coalesce(pg_partition_root(s.relid)::oid, s.relid) AS table_oid,
       sum(s.seq_scan)::bigint AS seq_scan, sum(s.seq_tup_read)::bigint AS seq_tup_read,
       sum(coalesce(s.idx_scan, 0))::bigint AS idx_scan, sum(s.n_live_tup)::bigint AS live_rows,
       sum(s.n_tup_ins + s.n_tup_upd + s.n_tup_del)::bigint AS writes
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
  AND s.query NOT LIKE '%{marker}%'
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

OWN_MARKER = "/* dbvitals */"  # our own statements are never advised on


class Options(CheckOptions):
    min_rows: int = Field(default=10_000, ge=0, description="Only tables with at least this many live rows.")
    min_seq_scans: int = Field(default=50, ge=1, description="Only tables sequentially scanned at least this often.")
    min_seq_tup_read: int = Field(default=1_000_000, ge=0, description="Only tables whose sequential scans read at least this many rows in all.")
    max_index_share: float = Field(
        default=0.95, ge=0, le=1, description="Report when less than this share of scans use an index (pghero: 95%).")
    statements: int = Field(default=100, ge=1, le=10_000, description="How many of the heaviest pg_stat_statements entries the planner is asked about.")
    min_saving: float = Field(
        default=0.5, ge=0, le=1, description="A suggested index must cut the planner's cost by at least this share (dexter: 50%).")
    min_cost: float = Field(
        default=100.0, ge=0, description="pg_stat_statements entries whose planner cost is below this are cheap enough already.")
    advise_seconds: float = Field(
        default=10.0, gt=0, le=600, description="Time the planner is asked for, at most; statements left are listed as not examined.")
    write_heavy_ratio: float = Field(
        default=5.0, gt=0, description="Writes (inserts+updates+deletes) over scans above which a suggestion is low "
                                       "severity, both counted over the write window.")
    write_window: Duration = Field(
        default=duration("1h"),
        description="Writes are weighed over the time since the newest snapshot at least this old (dbvitals snapshot "
                    "save), never since the statistics reset: a one-time bulk load is not a write-heavy table. "
                    "Without such a snapshot, writes are not weighed.")


@dataclass(frozen=True)
class TableStats:
    table_oid: int
    seq_scan: int
    seq_tup_read: int
    idx_scan: int
    live_rows: int
    writes: int = 0

    @property
    def index_share(self) -> float:
        total = self.seq_scan + self.idx_scan
        return self.idx_scan / total if total else 0.0

    @property
    def reads(self) -> int:
        return self.seq_scan + self.idx_scan


@dataclass(frozen=True)
class Statement:
    query: str
    calls: int
    total_ms: float
    mean_ms: float
    rows: int
    shape: Shape | None


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
class Facts:
    catalog: Catalog
    stats: tuple[TableStats, ...]
    statements_source: Availability
    hypopg: Availability
    statements: tuple[Statement, ...]
    distinct: dict[tuple[int, str], float] = field(default_factory=dict)  # (table, column) → estimated distinct values
    advice: tuple[Advice, ...] = ()  # the planner's word on each statement examined (hypopg present)
    window: WriteWindow | None = None  # writes and scans over a time window, when a snapshot gives one


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
        if statement.shape is None or statement_table(statement.shape, snapshot) != table:
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
                tail = f"then the ORDER BY {listed('column', shape.sort)}"
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
    needs = (CatalogSnapshot,)
    engine = "postgres"
    title = "Missing index (planner-verified)"
    severity = Severity.MEDIUM
    fix_availability = FixAvailability.SOMETIMES
    Options = Options
    rationale = (
        "A statement that reads a whole table to find a few rows, joins without an index or sorts what an index "
        "could return in order spends time an index would save. The planner, shown hypothetical indexes, says "
        "which ones it would use and what they save; large tables still read by sequential scans are reported too."
    )

    async def gather(self, session, scope: Scope) -> Facts:
        options = scope.options
        snapshot = await self.fact(CatalogSnapshot, session, scope)
        stats = tuple(TableStats(**dict(r)) for r in await session.fetch(QUERY))
        window = await write_window(scope.journal, scope.target, snapshot,
                                    {s.table_oid: Counters(s.writes, s.reads) for s in stats}, options.write_window)
        ext = await session.fetchrow(EXTENSIONS_QUERY)
        declared = tuple(Statement(q.sql, 0, 0.0, 0.0, 0, parse(q.sql)) for q in scope.config.expect.queries
                         if q.sql is not None)  # every one (PostgresTarget): for the type checker
        pgss, observed = await _statements(session, ext, options)
        statements = observed + declared
        hypopg = (Availability(True, f"hypopg in schema {ext['hypopg_schema']}") if ext["hypopg_schema"] else
                  Availability(False, "hypopg is not installed in this database (CREATE EXTENSION hypopg)"))
        if hypopg.available and statements:
            advice = await _advise_all(session, ext["hypopg_schema"], snapshot, observed, declared, options, scope)
            return Facts(snapshot, stats, pgss, hypopg, statements, advice=advice, window=window)
        distinct: dict[tuple[int, str], float] = {}
        candidates = flagged(stats, snapshot, options)
        if candidates and statements:
            for row in await session.fetch(COLUMN_STATS_QUERY, [c.table_oid for c in candidates]):
                rows = snapshot.tables[row["table_oid"]].rows_estimate
                n = row["n_distinct"]
                distinct[(row["table_oid"], row["column_name"])] = n if n > 0 else -n * max(rows, 1)
        return Facts(snapshot, stats, pgss, hypopg, statements, distinct, window=window)

    def evaluate(self, facts: Facts, scope: Scope) -> list[Finding]:
        snapshot, options = facts.catalog, scope.options
        taken = {i.name for i in snapshot.indexes} | {t.name for t in snapshot.tables.values()}
        by_table = {s.table_oid: s for s in facts.stats}
        findings = []
        suggested: set[int] = set()
        serving = consolidate(a for a in facts.advice if a.proposals)
        windowed = facts.window.tables if facts.window else {}
        ranked = sorted(serving.items(), key=lambda item: -_score(item[1], windowed.get(item[0].table_oid)))
        for rank, (proposal, advice) in enumerate(ranked, 1):
            suggested.add(proposal.table_oid)
            findings.append(self._suggestion(scope, snapshot, proposal, advice, by_table.get(proposal.table_oid),
                                             facts.window, rank, len(ranked), taken))
        for stat in flagged(facts.stats, snapshot, options):
            if stat.table_oid in suggested:
                continue
            finding = self._sequential(scope, facts, stat, taken)
            if finding is not None:
                findings.append(finding)
        declared = [a for a in facts.advice if a.statement.source == "expect.queries"]
        if declared:
            # A gate that declares its queries is told what became of each, index or not.
            indexed = sum(1 for a in declared if a.proposals)
            findings.append(self.finding(
                scope, object="expect.queries", severity=Severity.INFO,
                title=f"{counted(len(declared), 'declared statement')} planned: {indexed} would use a new index",
                message=("Each statement in expect.queries was planned with hypothetical indexes; the decision for "
                         "each is in the evidence."),
                evidence={"statements": [a.to_evidence() for a in declared]},
            ))
        return findings

    def _suggestion(self, scope: Scope, snapshot: Catalog, proposal: Proposal, advice: list[Advice],
                    stat: TableStats | None, window: WriteWindow | None, rank: int, of: int, taken: set[str]) -> Finding:
        options = scope.options
        table = snapshot.tables[proposal.table_oid]
        name = name_for_new_index(snapshot, table, proposal.columns, taken)
        columns = ", ".join(proposal.columns)
        total_ms = sum(a.statement.total_ms for a in advice)
        recent = window.tables.get(proposal.table_oid) if window else None
        write_heavy = recent is not None and recent.writes > options.write_heavy_ratio * max(recent.reads, 1)
        evidence = {
            "definition": f"CREATE INDEX {quote_ident(name)} ON {table.qualified} ({proposal.columns_sql()})",
            "rank": f"{rank} of {of}",
            "statements": [a.to_evidence() for a in sorted(advice, key=lambda a: -a.statement.total_ms)[:10]],
            "statements_served": len(advice),
            "statement_time_ms": round(total_ms, 1),
            "verification": "verified with hypopg: the planner uses the hypothetical index",
            "threshold": options.min_saving,
        }
        if stat is not None:
            evidence["table"] = {"live_rows": stat.live_rows, "seq_scan": stat.seq_scan, "idx_scan": stat.idx_scan,
                                 "writes": stat.writes}
        if window is not None and recent is not None:
            evidence["write_window"] = {"since": window.since, "seconds": round(window.seconds),
                                        "writes": recent.writes, "scans": recent.reads}
        else:
            hours = options.write_window.total_seconds() / 3600
            evidence["write_window"] = (f"writes not weighed: no snapshot at least {hours:g} h old to compare with "
                                        "(the counters since the statistics reset include one-time loads)")
        if write_heavy and recent is not None and window is not None:  # write_heavy implies both
            evidence["write_heavy"] = (f"{recent.writes:,} writes against {recent.reads:,} scans over the last "
                                       f"{window.seconds / 3600:,.1f} h: every write would maintain this index too")
        best = max(advice, key=lambda a: a.saving or 0)
        message = (f"The planner would use an index on {table.qualified} ({columns}) for {counted(len(advice), 'statement')}"
                   + (f" that took {total_ms:,.0f} ms in all" if total_ms else "")
                   + f": planner cost {best.cost_before:,.1f} → {best.cost_after:,.1f} for the one it helps most."
                   + (" The table is write-heavy, so this is ranked low." if write_heavy else ""))
        return self.finding(
            scope, object=table.qualified, key="index:" + ",".join(proposal.columns),
            severity=Severity.LOW if write_heavy else Severity.MEDIUM,
            title=f"index on {table.name} ({columns}) would serve {counted(len(advice), 'statement')}",
            message=message, evidence=evidence,
            fix=Fix(
                summary=f"Create index {name} on ({columns})",
                steps=create_index_steps(snapshot, table, name, proposal.columns_sql()),
                safety=FixSafety.SAFE,
                lock=CONCURRENT_BUILD_LOCK.format(table=table.qualified),
                inverse=_drop_new_index(table, name),
            ),
        )

    def _sequential(self, scope: Scope, facts: Facts, stat: TableStats, taken: set[str]) -> Finding | None:
        """A large table read by sequential scans that no verified suggestion explains."""
        snapshot = facts.catalog
        table = snapshot.tables[stat.table_oid]
        evidence = {
            "live_rows": stat.live_rows,
            "seq_scan": stat.seq_scan,
            "seq_tup_read": stat.seq_tup_read,
            "idx_scan": stat.idx_scan,
            "index_scan_share": round(stat.index_share, 4),
            "rows_read_per_seq_scan": stat.seq_tup_read // max(stat.seq_scan, 1),
            "statements_source": facts.statements_source.detail,
        }
        used = ("none of its scans used an index" if stat.idx_scan == 0
                else "under 1% of its scans used an index" if stat.index_share < 0.005
                else f"only {stat.index_share:.0%} of its scans used an index")
        message = (f"{table.qualified} (~{stat.live_rows:,} live rows) was read by {stat.seq_scan:,} sequential scans "
                   f"({stat.seq_tup_read:,} rows) and {used}.")
        title = f"{table.name} is mostly read by sequential scans"
        if facts.hypopg.available and facts.statements:
            touching = [a for a in facts.advice if table.oid in a.tables]
            served = ("low initial cost", "existing indexes already lead")
            if touching and all(a.decision.startswith(served) for a in touching):
                return None  # its statements are served now: the cumulative counters are history
            evidence["statements"] = [a.to_evidence() for a in sorted(touching, key=lambda a: -a.statement.total_ms)[:5]]
            evidence["suggestion"] = None
            evidence["suggestion_note"] = ("no index saves enough for the statements that read it (the reasons are "
                                           "per statement)" if touching else
                                           "none of the statements examined reads it")
            message += " The planner found no index worth suggesting for the statements examined."
            return self.finding(scope, object=table.qualified, title=title, message=message, evidence=evidence)
        related = [s for s in facts.statements if s.shape is not None and statement_table(s.shape, snapshot) == table]
        evidence["statements"] = [{"query": s.query[:500], "calls": s.calls, "total_ms": round(s.total_ms, 1),
                                   "mean_ms": round(s.mean_ms, 2)} for s in sorted(related, key=lambda s: -s.total_ms)[:5]]
        suggestion = suggest(table, stat.live_rows, facts.statements, snapshot, facts.distinct)
        if suggestion is None and suggest(table, stat.live_rows, facts.statements, snapshot, facts.distinct,
                                          skip_covered=False) is not None:
            return None  # an index serves its statements now: the counters are history
        fix = None
        if suggestion is None:
            evidence["suggestion"] = None
            evidence["suggestion_note"] = (
                f"no suggestion: the statements are unknown ({facts.statements_source.detail})"
                if not facts.statements else
                "no suggestion: no single-table statement on this table with an indexable WHERE or ORDER BY, "
                "or existing indexes already lead with its columns")
            evidence["verification"] = "unverified / not available"
            message += " Which columns the scans filter on is unknown, so no index is suggested."
        else:
            name = name_for_new_index(snapshot, table, suggestion.columns, taken)
            evidence["suggestion"] = {
                "definition": f"CREATE INDEX {quote_ident(name)} ON {table.qualified} ({suggestion.columns_sql})",
                "ordering": suggestion.ordering, "for_statement": suggestion.statement.query[:500]}
            evidence["verification"] = {"status": "unverified", "note": f"unverified: {facts.hypopg.detail}"}
            message += (f" Suggested, unverified: ({', '.join(suggestion.columns)}) for its heaviest statement, read "
                        f"from its WHERE and ORDER BY; {facts.hypopg.detail}.")
            fix = Fix(
                summary=f"Create index {name} on ({', '.join(suggestion.columns)})",
                steps=create_index_steps(snapshot, table, name, suggestion.columns_sql),
                safety=FixSafety.SAFE,
                lock=CONCURRENT_BUILD_LOCK.format(table=table.qualified),
                inverse=_drop_new_index(table, name),
                notes="Unverified: no hypothetical index was tried (hypopg); check the plan with EXPLAIN after creating it.",
            )
        return self.finding(scope, object=table.qualified, title=title, message=message, evidence=evidence, fix=fix)


def _score(advice: list[Advice], recent: Counters | None) -> float:
    """Time the statements spend × the share of cost the index saves, weighed by the table's share
    of reads over the write window (not weighed without one)."""
    saved = sum(max(a.statement.total_ms, 1.0) * (a.saving or 0) for a in advice)
    if recent is None or recent.reads + recent.writes == 0:
        return saved
    return saved * recent.reads / (recent.reads + recent.writes)


def _drop_new_index(table: Table, name: str) -> tuple:
    return (sql(f"DROP INDEX {'' if table.partitioned else 'CONCURRENTLY '}{quote_ident(table.schema)}.{quote_ident(name)};",
                transactional=table.partitioned),)


async def _advise_all(session, hypopg_schema: str, snapshot: Catalog, observed: tuple[Statement, ...],
                      declared: tuple[Statement, ...], options: Options, scope: Scope) -> tuple[Advice, ...]:
    settings = _advisor.Settings(threshold=options.min_saving, min_cost=options.min_cost,
                                 statement_timeout_ms=5000, by_name=_advisor.tables_by_name(snapshot))
    # The statements the application declares (a pre-deploy gate's) first: they are few and asked for.
    work = [_advisor.Statement(s.query, 0, 0.0, 0.0, "expect.queries") for s in declared]
    work += [_advisor.Statement(s.query, s.calls, s.total_ms, s.mean_ms, "pg_stat_statements")
             for s in observed if OWN_MARKER not in s.query]
    advice = []
    async with session.acquire() as conn:
        # The budget is this check's own: it starts once the target's session is ours, not while this
        # check waits for it behind another check's statements.
        deadline = time.monotonic() + options.advise_seconds
        for statement in work:
            if time.monotonic() > deadline:
                why = f"the time for the planner (advise_seconds = {options.advise_seconds:g}) ran out"
                advice.append(Advice(statement, f"not examined: {why}"))
                scope.skipped(f"{statement.source} statement: {statement.query[:200]}", why)
                continue
            advice.append(await _advisor.advise(conn, hypopg_schema, snapshot, statement, settings))
            await asyncio.sleep(0)
    return tuple(advice)


async def _statements(session, ext, options: Options) -> tuple[Availability, tuple[Statement, ...]]:
    preload = ext["preload"]
    loaded = preload is not None and "pg_stat_statements" in [p.strip() for p in preload.split(",")]
    if ext["pgss_schema"] is None:
        why = ("the extension is not created in this database (CREATE EXTENSION pg_stat_statements)" if loaded else
               "pg_stat_statements is not in shared_preload_libraries (it needs a server restart) "
               "and not created in this database")
        return Availability(False, f"not available: {why}"), ()
    import asyncpg  # the driver only when a check runs: the catalog loads without it

    try:
        rows = await session.fetch(
            STATEMENTS_QUERY.format(schema=quote_ident(ext["pgss_schema"]), marker=STATEMENT_MARKER), options.statements)
    except asyncpg.PostgresError as exc:
        return Availability(False, f"not available: {exc}"), ()
    statements = tuple(Statement(r["query"], r["calls"], r["total_ms"], r["mean_ms"], r["rows"], parse(r["query"]))
                       for r in rows
                       if not is_own_statement(r["query"]))  # dbvitals' own catalog reads are no workload
    return Availability(True, f"pg_stat_statements ({len(rows)} heaviest statements read)"), statements


