"""What the migration analysis reads on the live server: catalog and statistics only, through the
usual read-only dbvitals session (statement and lock timeouts, the marker). Nothing here writes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from checks.postgres.marker import STATEMENT_MARKER
from checks.postgres.migration.locks import FROM_PG_LOCKS, conflicts


@dataclass(frozen=True)
class Table:
    oid: int
    name: str  # as regclass prints it: schema-qualified when not on the search_path
    relkind: str
    reltuples: float  # -1: never analysed or vacuumed
    heap_bytes: int
    total_bytes: int  # with its indexes and TOAST


TABLE_QUERY = """
SELECT c.oid::int AS oid, c.oid::regclass::text AS name, c.relkind::text AS relkind,
       c.reltuples::float8 AS reltuples, pg_relation_size(c.oid) AS heap_bytes,
       pg_total_relation_size(c.oid) AS total_bytes
FROM pg_class c
WHERE c.oid = to_regclass(CASE WHEN $1::text IS NULL THEN format('%I', $2::text)
                               ELSE format('%I.%I', $1::text, $2::text) END)
"""

# The same, for many names at once (the names the migration writes, in one round trip).
TABLES_BY_NAME_QUERY = """
SELECT w.schema AS ref_schema, w.name AS ref_name, c.oid::int AS oid, c.oid::regclass::text AS name,
       c.relkind::text AS relkind, c.reltuples::float8 AS reltuples, pg_relation_size(c.oid) AS heap_bytes,
       pg_total_relation_size(c.oid) AS total_bytes
FROM unnest($1::text[], $2::text[]) AS w(schema, name)
JOIN pg_class c ON c.oid = to_regclass(CASE WHEN w.schema IS NULL THEN format('%I', w.name)
                                            ELSE format('%I.%I', w.schema, w.name) END)
"""

INDEX_TABLE_QUERY = """
SELECT i.indrelid::regclass::text AS table_name, n.nspname AS schema, t.relname AS relname
FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE i.indexrelid = to_regclass(CASE WHEN $1::text IS NULL THEN format('%I', $2::text)
                                      ELSE format('%I.%I', $1::text, $2::text) END)
"""

COLUMN_QUERY = """
SELECT a.atttypid::int AS typid, a.atttypmod AS typmod, format_type(a.atttypid, a.atttypmod) AS type
FROM pg_attribute a WHERE a.attrelid = $1 AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped
"""

# The most volatile function of that name (an overload is picked by argument types we do not
# resolve here): 'v' volatile, 's' stable, 'i' immutable.
VOLATILITY_QUERY = """
SELECT max(p.provolatile::text) FILTER (WHERE p.provolatile = 'v') AS v,
       max(p.provolatile::text) AS any
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE p.proname = $2 AND ($1::text IS NULL OR n.nspname = $1::text)
"""

NOT_NULL_CHECK_QUERY = """
SELECT conname FROM pg_constraint
WHERE conrelid = $1 AND contype = 'c' AND convalidated
  AND pg_get_constraintdef(oid) = format('CHECK ((%I IS NOT NULL))', $2::text)
LIMIT 1
"""

TYPE_QUERY = "SELECT to_regtype($1)::oid::int"
CAST_QUERY = "SELECT castmethod::text FROM pg_cast WHERE castsource = $1 AND casttarget = $2"

HOLDERS_QUERY = """
SELECT l.relation::int AS relation, l.pid, l.mode, l.granted, a.application_name, a.state,
       extract(epoch FROM now() - a.xact_start)::float8 AS xact_age_seconds, a.query
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'relation' AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.relation = ANY($1::oid[]) AND l.pid <> pg_backend_pid()
ORDER BY a.xact_start NULLS LAST, l.pid
"""


# Statements of the application's that use an object, as far as pg_stat_statements has seen:
# words matched whole (\m...\M), dbvitals's own statements left out.
STATEMENTS_SCHEMA_QUERY = """
SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname = 'pg_stat_statements'
"""
STATEMENTS_USING_QUERY = """
SELECT count(*)::int AS statements, coalesce(sum(calls), 0)::bigint AS calls,
       (array_agg(query ORDER BY calls DESC))[1] AS example
FROM {view}
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND strpos(query, $1) = 0 AND query ~* $2 AND ($3::text IS NULL OR query ~* $3)
"""


@dataclass(frozen=True)
class Usage:
    statements: int
    calls: int
    example: str


class Catalog:
    """Cached catalog reads for one analysis."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self._tables: dict[tuple[str | None, str], Table | None] = {}
        self._locks: dict[int, list[Any]] = {}  # pg_locks rows by table oid, read with the table

    async def prefetch(self, refs: list[tuple[str | None, str]]) -> None:
        """The tables of these (schema, name) references and the sessions locking them, in two
        round trips rather than two per statement: the locks are read at the start of the run."""
        wanted = [ref for ref in dict.fromkeys(refs) if ref not in self._tables]
        if not wanted:
            return
        found: dict[tuple[str | None, str], Table] = {}
        for row in await self.session.fetch(TABLES_BY_NAME_QUERY, [s for s, _ in wanted], [n for _, n in wanted]):
            fields = dict(row)
            ref = (fields.pop("ref_schema"), fields.pop("ref_name"))
            found[ref] = Table(**fields)
        for ref in wanted:
            self._tables[ref] = found.get(ref)
        oids = sorted({t.oid for t in found.values()})
        for oid in oids:
            self._locks[oid] = []
        for row in await self.session.fetch(HOLDERS_QUERY, oids):
            self._locks[row["relation"]].append(row)

    async def table(self, schema: str | None, name: str) -> Table | None:
        key = (schema, name)
        if key not in self._tables:
            row = await self.session.fetchrow(TABLE_QUERY, schema, name)
            self._tables[key] = Table(**dict(row)) if row else None
        return self._tables[key]

    async def index_table(self, schema: str | None, name: str) -> tuple[str, str] | None:
        row = await self.session.fetchrow(INDEX_TABLE_QUERY, schema, name)
        return (row["schema"], row["relname"]) if row else None

    async def column(self, table: Table, column: str) -> dict[str, Any] | None:
        row = await self.session.fetchrow(COLUMN_QUERY, table.oid, column)
        return dict(row) if row else None

    async def volatility(self, schema: str | None, function: str) -> str | None:
        """'v', 's' or 'i'; None when no such function exists."""
        row = await self.session.fetchrow(VOLATILITY_QUERY, schema, function)
        if row is None or row["any"] is None:
            return None
        return "v" if row["v"] else str(row["any"])

    async def not_null_check(self, table: Table, column: str) -> str | None:
        return await self.session.fetchval(NOT_NULL_CHECK_QUERY, table.oid, column)

    async def type_oid(self, name: str) -> int | None:
        return await self.session.fetchval(TYPE_QUERY, name)

    async def cast_method(self, source: int, target: int) -> str | None:
        return await self.session.fetchval(CAST_QUERY, source, target)

    async def foreign_key(self, table: Table, name: str) -> tuple[list[str], Table, list[str]] | None:
        """A foreign key of the table by name: its columns, the referenced table and keys."""
        row = await self.session.fetchrow(FOREIGN_KEY_QUERY, table.oid, name)
        if row is None:
            return None
        parent = await self.session.fetchrow(PARENT_QUERY, row["parent"])
        if parent is None:
            return None
        return list(row["columns"]), Table(**dict(parent)), list(row["keys"])

    async def usage(self, words: list[str]) -> Usage | None:
        """How the application uses the words (a table's name, a column's), as far as
        pg_stat_statements shows; None when it cannot be read (not installed or not loaded)."""
        schema = await self.session.fetchval(STATEMENTS_SCHEMA_QUERY)
        if schema is None:
            return None
        patterns = [r"\m" + re.escape(w) + r"\M" for w in words] + [None]
        try:
            row = await self.session.fetchrow(STATEMENTS_USING_QUERY.format(view=f"{quote_ident(schema)}.pg_stat_statements"),
                                              STATEMENT_MARKER, patterns[0], patterns[1])
        except Exception:  # the extension is installed but not preloaded: nothing to read
            return None
        return Usage(row["statements"], row["calls"], row["example"] or "")

    async def holders(self, table: Table, mode: str) -> list[dict[str, Any]]:
        """Sessions holding (or already waiting for) a lock on the table that conflicts with
        `mode`: the statement would queue behind every one of them."""
        rows = self._locks.get(table.oid)
        if rows is None:
            rows = await self.session.fetch(HOLDERS_QUERY, [table.oid])
        found: dict[int, dict[str, Any]] = {}
        for row in rows:
            held = FROM_PG_LOCKS.get(row["mode"])
            if held is None or not conflicts(mode, held) or row["pid"] in found:
                continue
            age = row["xact_age_seconds"]
            found[row["pid"]] = {
                "pid": row["pid"],
                "application": row["application_name"] or "",
                "state": row["state"] or "",
                "xact_age_seconds": round(age, 1) if age is not None else None,
                "query": row["query"] or "",
                "mode": held,
                "granted": row["granted"],
            }
        return list(found.values())


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# Data preconditions: counted up to a bound (LIMIT), on the session's statement timeout. A
# table's name comes from regclass (already quoted); column names are quoted here.
PRECONDITION_LIMIT = 1000


class Preconditions:
    """Would the statement fail on the data as it is now? Each count stops at PRECONDITION_LIMIT;
    a count the statement timeout cut short is reported as not known, never as zero."""

    def __init__(self, session: Any) -> None:
        self.session = session

    async def _count(self, inner: str) -> int:
        return int(await self.session.fetchval(f"SELECT count(*) FROM ({inner} LIMIT {PRECONDITION_LIMIT}) s"))

    async def rows(self, table: Table) -> int:
        return int(await self.session.fetchval(f"SELECT count(*) FROM (SELECT 1 FROM {table.name} LIMIT 1) s"))

    async def nulls(self, table: Table, column: str) -> int:
        return await self._count(f"SELECT 1 FROM {table.name} WHERE {quote_ident(column)} IS NULL")

    async def duplicates(self, table: Table, columns: list[str]) -> int:
        cols = ", ".join(quote_ident(c) for c in columns)
        not_null = " AND ".join(f"{quote_ident(c)} IS NOT NULL" for c in columns)
        return await self._count(
            f"SELECT 1 FROM {table.name} WHERE {not_null} GROUP BY {cols} HAVING count(*) > 1")

    async def orphans(self, table: Table, columns: list[str], parent: Table, keys: list[str]) -> int:
        present = " AND ".join(f"c.{quote_ident(c)} IS NOT NULL" for c in columns)
        match = " AND ".join(f"p.{quote_ident(k)} = c.{quote_ident(c)}" for c, k in zip(columns, keys, strict=True))
        return await self._count(
            f"SELECT 1 FROM {table.name} c WHERE {present} AND NOT EXISTS (SELECT 1 FROM {parent.name} p "
            f"WHERE {match})")

    async def primary_key(self, table: Table) -> list[str]:
        rows = await self.session.fetch(
            "SELECT a.attname FROM pg_constraint c CROSS JOIN unnest(c.conkey) WITH ORDINALITY k(attnum, n) "
            "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum "
            "WHERE c.conrelid = $1 AND c.contype = 'p' ORDER BY k.n", table.oid)
        return [r["attname"] for r in rows]


FOREIGN_KEY_QUERY = """
SELECT (SELECT array_agg(a.attname ORDER BY k.n) FROM unnest(c.conkey) WITH ORDINALITY k(attnum, n)
          JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum) AS columns,
       (SELECT array_agg(a.attname ORDER BY k.n) FROM unnest(c.confkey) WITH ORDINALITY k(attnum, n)
          JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum) AS keys,
       c.confrelid::int AS parent
FROM pg_constraint c WHERE c.conrelid = $1 AND c.conname = $2 AND c.contype = 'f'
"""

PARENT_QUERY = TABLE_QUERY.replace(
    "WHERE c.oid = to_regclass(CASE WHEN $1::text IS NULL THEN format('%I', $2::text)\n"
    "                               ELSE format('%I.%I', $1::text, $2::text) END)", "WHERE c.oid = $1")
