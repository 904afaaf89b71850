"""What the migration analysis reads on the live server: catalog and statistics only, through the
usual read-only dbvitals session (statement and lock timeouts, the marker). Nothing here writes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
SELECT l.pid, l.mode, l.granted, a.application_name, a.state,
       extract(epoch FROM now() - a.xact_start)::float8 AS xact_age_seconds, a.query
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'relation' AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.relation = $1 AND l.pid <> pg_backend_pid()
ORDER BY a.xact_start NULLS LAST, l.pid
"""


class Catalog:
    """Cached catalog reads for one analysis."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self._tables: dict[tuple[str | None, str], Table | None] = {}

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

    async def holders(self, table: Table, mode: str) -> list[dict[str, Any]]:
        """Sessions holding (or already waiting for) a lock on the table that conflicts with
        `mode`: the statement would queue behind every one of them."""
        rows = await self.session.fetch(HOLDERS_QUERY, table.oid)
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
