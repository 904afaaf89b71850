"""The planner-driven index advisor behind postgres.missing-index.

For one statement: its generic plan (PREPARE, `plan_cache_mode = force_generic_plan`, EXPLAIN
EXECUTE with NULL parameters and partition pruning off, so a partitioned table is planned whole
rather than pruned to nothing by the NULLs), the columns every scan filters on, every join
condition and every sort key name — across all the relations the plan touches, so views, CTEs that
are inlined, ordinals and aliases need no parsing of ours — then hypothetical indexes (hypopg) on
each column, and on pairs and filter-then-sort lists, and the plan again. The indexes the planner
picks, with the cost before and after, are the advice; when it picks none, or saves too little, the
reason says so (as dexter's reasons do).

Everything happens in one read-only transaction that is rolled back, on a connection whose
prepared statement is deallocated and hypothetical indexes reset (`hypopg_reset()`) before it
returns to the pool. Nothing is executed: EXPLAIN without ANALYZE only plans.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import permutations
from typing import Any

from checks.postgres._catalog import Catalog, Table, quote_ident

PROBE = "dbvitals_advisor_probe"
MAX_FILTER_COLUMNS = 4  # per table: pairs of these, in both orders (dexter limits its candidates too)
MAX_SORT_COLUMNS = 3
MAX_HYPOTHETICAL = 48  # per statement

_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_QUALIFIED = re.compile(rf"({_IDENT})\.({_IDENT})")
_FILTER_KEYS = ("Filter", "Index Cond", "Recheck Cond", "Join Filter", "Hash Cond", "Merge Cond", "TID Cond")
# ORDER BY a position in a SELECT * list: which column that is depends on the table's column
# order, which a migration may change; dexter suggests nothing for it, and neither do we.
_ORDINAL_OVER_STAR = re.compile(r"^\s*select\s+(?:(?:\w+|\"[^\"]+\")\.)?\*.*\border\s+by\s+\d", re.I | re.S)
_PREPARABLE = re.compile(r"^\s*(?:/\*.*?\*/\s*)*(select|with|update|delete|insert|values|table)\b", re.I | re.S)


@dataclass(frozen=True)
class Statement:
    query: str
    calls: int
    total_ms: float
    mean_ms: float
    source: str  # "pg_stat_statements" or "expect.queries"


@dataclass(frozen=True)
class Proposal:
    # The table to index: a partitioned table's root when the statement reads it whole, the
    # partition itself when the statement names that partition (dexter's events_0).
    table_oid: int
    columns: tuple[str, ...]

    def columns_sql(self) -> str:
        return ", ".join(quote_ident(c) for c in self.columns)


@dataclass(frozen=True)
class Advice:
    """What the planner said about one statement."""

    statement: Statement
    decision: str  # "index" or why not, in words (dexter's reasons, and ours)
    cost_before: float | None = None
    cost_after: float | None = None
    proposals: tuple[Proposal, ...] = ()
    tables: tuple[int, ...] = ()  # user tables the plan reads (roots)
    tried: int = 0  # hypothetical indexes tried

    @property
    def saving(self) -> float | None:
        if not self.cost_before or self.cost_after is None:
            return None
        return max(0.0, 1 - self.cost_after / self.cost_before)

    def to_evidence(self) -> dict[str, Any]:
        return {
            "query": self.statement.query[:500], "source": self.statement.source, "calls": self.statement.calls,
            "total_ms": round(self.statement.total_ms, 1), "decision": self.decision,
            "cost_before": self.cost_before, "cost_after": self.cost_after,
            "saving": None if self.saving is None else round(self.saving, 4), "hypothetical_indexes_tried": self.tried,
        }


@dataclass
class Candidates:
    """Columns of one table the plan filters, joins or sorts on, in the order met."""

    filters: list[str] = field(default_factory=list)
    sorts: list[str] = field(default_factory=list)
    equalities: set[str] = field(default_factory=set)  # filter columns compared with `=`

    def add(self, into: list[str], column: str) -> None:
        if column not in into:
            into.append(column)


def unquote(identifier: str) -> str:
    if identifier.startswith('"'):
        return identifier[1:-1].replace('""', '"')
    return identifier


def plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from plan_nodes(child)


def _leaves(snapshot: Catalog, oid: int) -> set[int]:
    parts = snapshot.partitions.get(oid, ())
    return {oid} if not parts else {leaf for p in parts for leaf in _leaves(snapshot, p)}


def owner_of(snapshot: Catalog, oid: int, scanned: set[int]) -> int:
    """The table an index for a scan of `oid` belongs on: its highest ancestor whose partitions
    the plan scans all of (partition pruning is off, so a statement on a partitioned table scans
    every partition), else `oid` itself: a statement that names one partition gets its index
    there, as dexter expects."""
    table = snapshot.tables[oid]
    while (table.parent is not None and table.parent in snapshot.tables
           and _leaves(snapshot, table.parent) <= scanned):
        table = snapshot.tables[table.parent]
    return table.oid


def tables_by_name(snapshot: Catalog) -> dict[tuple[str, str], Table]:
    """(schema, name) → table, built once per run by the caller and handed to `candidates`."""
    return {(t.schema, t.name): t for t in snapshot.tables.values()}


def candidates(plan: dict[str, Any], snapshot: Catalog,
               by_name: dict[tuple[str, str], Table]) -> tuple[dict[int, Candidates], list[str]]:
    """Per table (root oid): the columns the plan filters, joins and sorts on; and the relations
    the plan reads that are not user tables here (foreign tables, catalogs), by name."""
    scans: list[tuple[str, int]] = []
    outside: list[str] = []
    for node in plan_nodes(plan):
        if "Relation Name" in node:
            table = by_name.get((node.get("Schema", ""), node["Relation Name"]))
            if table is None:
                outside.append(f"{node.get('Schema', '?')}.{node['Relation Name']} ({node['Node Type']})")
                continue
            scans.append((node.get("Alias", node["Relation Name"]), table.oid))
    scanned = {oid for _, oid in scans}
    aliases: dict[str, set[int]] = {}
    for alias, oid in scans:
        aliases.setdefault(alias, set()).add(owner_of(snapshot, oid, scanned))
    found: dict[int, Candidates] = {}

    def note(text: str, sort: bool) -> None:
        for alias, column in _QUALIFIED.findall(text):
            for oid in aliases.get(unquote(alias), ()):
                name = unquote(column)
                if any(c.name == name for c in snapshot.columns.get(oid, {}).values()):
                    entry = found.setdefault(oid, Candidates())
                    entry.add(entry.sorts if sort else entry.filters, name)
                    if not sort and re.search(rf"\({re.escape(alias)}\.{re.escape(column)} = ", text):
                        entry.equalities.add(name)

    for node in plan_nodes(plan):
        for key in _FILTER_KEYS:
            if isinstance(node.get(key), str):
                note(node[key], sort=False)
        for key in ("Sort Key", "Presorted Key"):
            for item in node.get(key, ()) or ():
                note(item, sort=True)
    return found, outside


def proposals_to_try(found: dict[int, Candidates]) -> tuple[list[Proposal], list[Proposal]]:
    """Single columns first; then ordered pairs of filter columns, filter-then-sort, and the sort list."""
    singles: list[Proposal] = []
    multi: list[Proposal] = []
    for oid, cand in found.items():
        filters = cand.filters[:MAX_FILTER_COLUMNS]
        sorts = cand.sorts[:MAX_SORT_COLUMNS]
        for column in [*filters, *(s for s in sorts if s not in filters)]:
            singles.append(Proposal(oid, (column,)))
        # Two columns both compared with `=` serve the statement in either order: only the order
        # the statement names them is tried (dexter's (user_id, blog_id) for
        # `user_id = 1 AND blog_id = 2`), so the choice does not hang on the planner's tie-break.
        wider: list[tuple[str, ...]] = [
            (a, b) for a, b in permutations(filters, 2)
            if not (a in cand.equalities and b in cand.equalities and filters.index(a) > filters.index(b))]
        for column in filters:
            tail = tuple(s for s in sorts if s != column)
            if tail:
                wider.append((column, *tail))
        if len(sorts) > 1:
            wider.append(tuple(sorts))
        for columns in dict.fromkeys(wider):
            multi.append(Proposal(oid, columns))
    room = max(0, MAX_HYPOTHETICAL - len(singles))
    return singles[:MAX_HYPOTHETICAL], multi[:room]


def total_cost(plan: dict[str, Any]) -> float:
    cost = float(plan["Total Cost"])
    return cost if math.isfinite(cost) else float("inf")


def used_indexes(plan: dict[str, Any]) -> set[str]:
    return {node["Index Name"] for node in plan_nodes(plan) if "Index Name" in node}


def covered_by_existing(snapshot: Catalog, proposal: Proposal) -> bool:
    """Whether a valid, non-partial index on the table already leads with these columns."""
    wanted = proposal.columns
    for index in snapshot.indexes_of(proposal.table_oid):
        if not index.valid or index.predicate is not None or index.attached or index.method != "btree":
            continue
        names = snapshot.column_names(proposal.table_oid, index.key_columns)
        if tuple(names[: len(wanted)]) == wanted:
            return True
    return False


@dataclass(frozen=True)
class Settings:
    threshold: float  # the share of the cost an index must save
    min_cost: float  # below this initial cost a statement is cheap enough (pg_stat_statements only)
    statement_timeout_ms: int
    by_name: dict[tuple[str, str], Table]


def preparable(query: str) -> bool:
    return bool(_PREPARABLE.match(query))


async def advise(conn: Any, hypopg_schema: str, snapshot: Catalog, statement: Statement, settings: Settings) -> Advice:
    """The planner's advice for one statement (see the module's docstring)."""
    if not preparable(statement.query):
        return Advice(statement, "not a statement the planner can plan alone (only SELECT, INSERT, UPDATE, DELETE)")
    hypo = quote_ident(hypopg_schema)
    import asyncpg  # the driver only when a check runs: the catalog loads without it

    try:
        async with conn.transaction(readonly=True):
            # One statement each, so that each carries the dbvitals marker.
            await conn.execute(f"SET LOCAL statement_timeout = {int(settings.statement_timeout_ms)}")
            await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            await conn.execute("SET LOCAL enable_partition_pruning = off")
            return await _advise(conn, hypo, snapshot, statement, settings)
    except _Unplannable as exc:
        return Advice(statement, str(exc))
    except asyncpg.PostgresError as exc:
        return Advice(statement, f"the planner could not be asked: {type(exc).__name__}: {str(exc)[:200]}")
    finally:
        await _quietly(conn, f"DEALLOCATE {PROBE}")  # left behind only when the transaction failed
        await _quietly(conn, f"SELECT {hypo}.hypopg_reset()")


async def _quietly(conn: Any, command: str) -> None:
    import asyncpg

    try:
        await conn.execute(command)
    except asyncpg.PostgresError:  # nothing to clean, or the connection is going away anyway
        pass


class _Unplannable(Exception):
    """A statement the planner cannot take, with the reason as its message."""


async def _explain(conn: Any, query: str, count: int | None = None) -> tuple[dict[str, Any], int]:
    # Prepared afresh each time: a prepared statement keeps its generic plan, and a hypothetical
    # index does not invalidate it.
    import asyncpg

    try:
        await conn.execute(f"PREPARE {PROBE} AS {query}")
    except asyncpg.PostgresSyntaxError as exc:
        raise _Unplannable(f"could not parse the statement: {exc}") from None
    except asyncpg.UndefinedTableError as exc:
        raise _Unplannable(f"tables not present in this database: {exc}") from None
    except asyncpg.PostgresError as exc:
        if "could not determine data type of parameter" in str(exc):
            raise _Unplannable(f"the parameter types cannot be inferred ({exc})") from None
        raise
    # On an error the transaction is aborted: advise() deallocates after the rollback.
    if count is None:
        count = len(await conn.fetchval(
            "SELECT parameter_types FROM pg_prepared_statements WHERE name = $1", PROBE) or ())
    params = f"({', '.join(['NULL'] * count)})" if count else ""  # a generic plan does not look at them
    explained = await conn.fetchval(f"EXPLAIN (VERBOSE, FORMAT JSON) EXECUTE {PROBE}{params}")
    await conn.execute(f"DEALLOCATE {PROBE}")
    plan = json.loads(explained) if isinstance(explained, str) else explained
    return plan[0]["Plan"], count


async def _advise(conn: Any, hypo: str, snapshot: Catalog, statement: Statement, settings: Settings) -> Advice:
    plan, count = await _explain(conn, statement.query)
    before = total_cost(plan)
    found, outside = candidates(plan, snapshot, settings.by_name)
    ordinal_over_star = bool(_ORDINAL_OVER_STAR.search(statement.query))
    if ordinal_over_star:
        found = {oid: Candidates(c.filters, [], c.equalities) for oid, c in found.items() if c.filters}
    tables = tuple(sorted(found))
    if not found and ordinal_over_star:
        return Advice(statement, "no candidate columns: it sorts by a position in SELECT *, which names no column "
                      "(the column depends on the table's column order)", before)
    if not found:
        if not any("Relation Name" in node for node in plan_nodes(plan)):
            return Advice(statement, "no tables: the statement reads no table", before)
        if outside:
            return Advice(statement, "no candidate tables for indexes: it reads only " + ", ".join(outside[:5])
                          + " (foreign tables and catalogs are not indexed here)", before)
        return Advice(statement, "no candidate columns: the plan filters, joins and sorts on no column of a table",
                      before, tables=tables)
    if statement.source == "pg_stat_statements" and before < settings.min_cost:
        return Advice(statement, f"low initial cost: planner cost {before:,.1f} is under min_cost {settings.min_cost:g}",
                      before, tables=tables)
    # A declared statement on tables never analysed (a freshly migrated gate database) is planned with
    # the planner's default size guesses: there any saving the planner finds counts.
    unanalysed = statement.source == "expect.queries" and all(snapshot.tables[o].rows is None for o in found)
    threshold = 0.0 if unanalysed else settings.threshold
    singles, multi = (
        [p for p in group if not covered_by_existing(snapshot, p)] for group in proposals_to_try(found))
    if not singles and not multi:
        return Advice(statement, "existing indexes already lead with every candidate column"
                      + _using(plan), before, tables=tables)
    names: dict[str, Proposal] = {}

    async def create(proposals: Iterable[Proposal]) -> None:
        for proposal in proposals:
            table = snapshot.tables[proposal.table_oid]
            row = await conn.fetchrow(f"SELECT indexname FROM {hypo}.hypopg_create_index($1)",
                                      f"CREATE INDEX ON {table.qualified} ({proposal.columns_sql()})")
            names[str(row["indexname"])] = proposal

    await create(singles)
    first, _ = await _explain(conn, statement.query, count)
    chosen = first
    if multi:
        await create(multi)
        second, _ = await _explain(conn, statement.query, count)
        # A wider index only when it saves a further `threshold` over the single columns and the
        # single-column plan is not already cheap (narrow indexes are cheaper to keep). When the
        # single-column plan needs several indexes on one table: a bitmap AND gets the best of them
        # alone, partitions choosing differently get one wider index that does as well.
        several = _several_per_table([names[n] for n in used_indexes(first) if n in names])
        if total_cost(first) >= settings.min_cost and total_cost(second) <= total_cost(first) * (1 - settings.threshold):
            chosen = second
        elif several and any(node.get("Node Type") == "BitmapAnd" for node in plan_nodes(first)):
            # Two single-column indexes combined on one relation, and no wider one that halves the
            # cost: the best of them alone (dexter's third pass), rather than a wider index the
            # planner barely prefers (`user_id = 1 AND blog_id < 10` → (blog_id)).
            used = [names[n] for n in sorted(used_indexes(first)) if n in names]
            crowded = {p.table_oid for p in used if sum(q.table_oid == p.table_oid for q in used) > 1}
            others = [p for p in used if p.table_oid not in crowded]  # other tables keep theirs
            alone = []
            for proposal in (p for p in used if p.table_oid in crowded):
                await conn.execute(f"SELECT {hypo}.hypopg_reset()")
                await create([proposal, *others])
                alone.append((await _explain(conn, statement.query, count))[0])
            chosen = min(alone, key=total_cost)
        elif several and total_cost(second) <= total_cost(first):
            # Partitions picking different single-column indexes: one wider index serves them all.
            chosen = second
    after = total_cost(chosen)
    tried = len(names)
    used = [names[n] for n in sorted(used_indexes(chosen)) if n in names]
    if not used:
        return Advice(statement, f"the planner uses none of the {tried} hypothetical indexes tried" + _using(plan),
                      before, after, tables=tables, tried=tried)
    if after > before * (1 - threshold) or after >= before:
        return Advice(statement, f"need {settings.threshold:.0%} cost savings to suggest an index "
                      f"(planner cost {before:,.1f} → {after:,.1f})", before, after, tables=tables, tried=tried)
    fresh = tuple(dict.fromkeys(used))
    decision = "index" + ("; its tables were never analysed, so any saving counts (the costs are the planner's "
                          "default guesses)" if unanalysed else "")
    return Advice(statement, decision, before, after, fresh, tables, tried)


def _using(plan: dict[str, Any]) -> str:
    existing = sorted(used_indexes(plan))
    return f"; it already uses {', '.join(existing[:3])}" if existing else ""


def _several_per_table(proposals: list[Proposal]) -> bool:
    tables = [p.table_oid for p in set(proposals)]
    return len(tables) != len(set(tables))


def consolidate(advice: Iterable[Advice]) -> dict[Proposal, list[Advice]]:
    """One index per column list; a proposal that is a leading prefix of another on the same table
    is served by the wider one, so its statements move there."""
    serving: dict[Proposal, list[Advice]] = {}
    for item in advice:
        for proposal in item.proposals:
            serving.setdefault(proposal, []).append(item)
    for narrow in sorted(serving, key=lambda p: len(p.columns)):
        wider = [w for w in serving if w.table_oid == narrow.table_oid and len(w.columns) > len(narrow.columns)
                 and w.columns[: len(narrow.columns)] == narrow.columns]
        if wider:
            target = max(wider, key=lambda w: (len(serving[w]), -len(w.columns)))
            serving[target].extend(a for a in serving.pop(narrow) if a not in serving[target])
    return serving
