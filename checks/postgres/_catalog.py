"""What several PostgreSQL checks share: identifier quoting, name → table resolution, and one
catalog snapshot (tables, columns, constraints, indexes) read once per run and reused.

The snapshot is read in one REPEATABLE READ, read-only transaction so that every check judges
the same schema, and it is a shared fact (CatalogSnapshot) that the checks needing it declare: a
large schema (thousands of tables and indexes) is read once per target and run, not once per check.

A table someone holds (or waits for) an ACCESS EXCLUSIVE lock on cannot be read: its size and
its indexes' definitions need a lock that would wait. Such tables are left out of the snapshot
and listed in `Catalog.locked` with the session holding the lock, so the other tables are still
judged and the locked one is reported (postgres.locked-relation) rather than failing every check.
"""

from __future__ import annotations

import asyncio
import functools
import re
import weakref
from collections import defaultdict
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from checks.contract import Fact, FactContext

# --- quoting --------------------------------------------------------------------------------------

# pg_get_keywords() where catcode <> 'U' (PostgreSQL 15, plus system_user from 16): words that
# must be quoted to be used as a name. Quoting more than needed is harmless; less is a syntax error.
_KEYWORDS = frozenset("""
all analyse analyze and any array as asc asymmetric authorization between bigint binary bit boolean both
case cast char character check coalesce collate collation column concurrently constraint create cross
current_catalog current_date current_role current_schema current_time current_timestamp current_user dec
decimal default deferrable desc distinct do else end except exists extract false fetch float for foreign
freeze from full grant greatest group grouping having ilike in initially inner inout int integer intersect
interval into is isnull join json_array json_arrayagg json_object json_objectagg json_scalar json_serialize
lateral leading least left like limit localtime localtimestamp merge_action national natural nchar none
normalize not notnull null nullif numeric offset on only or order out outer overlaps overlay placing
position precision primary real references returning right row select session_user setof similar smallint
some substring symmetric system_user table tablesample then time timestamp to trailing treat trim true
union unique user using values varchar variadic verbose when where window with xmlattributes xmlconcat
xmlelement xmlexists xmlforest xmlnamespaces xmlparse xmlpi xmlroot xmlserialize xmltable
""".split())
_PLAIN_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


@functools.lru_cache(maxsize=1 << 16)  # pure, and called for every name of a large schema by several checks
def quote_ident(name: str) -> str:
    """The name as SQL needs it: bare when PostgreSQL's own quote_ident() leaves it bare,
    otherwise in double quotes with embedded quotes doubled."""
    if "\x00" in name:
        raise ValueError("a PostgreSQL name cannot contain NUL")
    if _PLAIN_IDENTIFIER.match(name) and name not in _KEYWORDS:
        return name
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, name: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(name)}"


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


NAMEDATALEN = 64  # names longer than 63 bytes are silently truncated by the server


def fit_name(name: str) -> str:
    """Truncate to 63 bytes on a character boundary, as the server would."""
    encoded = name.encode()
    if len(encoded) < NAMEDATALEN:
        return name
    return encoded[: NAMEDATALEN - 1].decode(errors="ignore")


class TakenNames:
    """Names in use: a snapshot's (shared, looked into, never copied) and those chosen since."""

    def __init__(self, existing: Container[str]) -> None:
        self.existing = existing
        self.chosen: set[str] = set()

    def __contains__(self, name: object) -> bool:
        return name in self.existing or name in self.chosen

    def add(self, name: str) -> None:
        self.chosen.add(name)


def new_index_name(
    table: str, columns: Iterable[str], taken: Iterable[str] | Container[str], suffix: str = "idx",
    reusable: Container[str] = (),
) -> str:
    """A name for an index we suggest, unused in the schema (`reusable` names count as free), at
    most 63 bytes. A set (or any container) of taken names is looked into, never copied: this
    runs once per finding, and a schema holds thousands of names."""
    used = taken if isinstance(taken, Container) and not isinstance(taken, (str, list, tuple)) else set(taken)
    base = "_".join([table, *columns])
    for attempt in range(1000):
        tail = f"_{suffix}" if attempt == 0 else f"_{suffix}{attempt}"
        room = NAMEDATALEN - 1 - len(tail.encode())
        candidate = base.encode()[:room].decode(errors="ignore") + tail
        if candidate not in used or candidate in reusable:
            return candidate
    raise RuntimeError("no free index name")  # pragma: no cover - a thousand collisions


# --- names that point at tables ---------------------------------------------------------------------

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_IRREGULAR_PLURALS = {"person": "people", "child": "children", "man": "men", "woman": "women",
                      "mouse": "mice", "goose": "geese", "datum": "data", "index": "indices"}


def snake(name: str) -> str:
    """authorId → author_id, OrderItemID → order_item_id, HTTPRequest → http_request."""
    return _CAMEL_BOUNDARY.sub("_", name).replace("-", "_").replace(" ", "_").lower()


def reference_stem(column: str) -> str | None:
    """The table a column's name points at, singular, snake case: transaction_id → transaction,
    authorId → author. None when the name does not end in an id suffix."""
    words = snake(column)
    if not words.endswith("_id"):
        return None
    stem = words[:-3].strip("_")
    return stem or None


def name_forms(stem: str) -> tuple[str, ...]:
    """The table names a singular stem may be spelt as: badge → badge, badges; category → categories."""
    head, _, last = stem.rpartition("_")
    prefix = f"{head}_" if head else ""
    plurals = {last, last + "s"}
    if last.endswith(("s", "x", "z", "ch", "sh")):
        plurals.add(last + "es")
    if len(last) > 1 and last.endswith("y") and last[-2] not in "aeiou":
        plurals.add(last[:-1] + "ies")
    if last in _IRREGULAR_PLURALS:
        plurals.add(_IRREGULAR_PLURALS[last])
    return tuple(sorted(prefix + p for p in plurals))


@dataclass(frozen=True)
class TableRef:
    oid: int
    schema: str
    name: str


@dataclass(frozen=True)
class Resolution:
    """How a column name was matched to a table, in words for the evidence."""

    table: TableRef | None
    how: str


def resolve_reference(
    column: str,
    from_schema: str,
    tables: Iterable[TableRef],
    search_path: tuple[str, ...],
) -> Resolution:
    """Match a column name such as `transaction_id` to exactly one table, or to none.

    Conservative on purpose: only the whole stem counts (`external_user_id` does not point at
    users), and two equally good candidates mean no answer.
    """
    stem = reference_stem(column)
    if stem is None:
        return Resolution(None, "the name does not end in _id / Id")
    forms = set(name_forms(stem))
    candidates = [t for t in tables if snake(t.name) in forms]
    if not candidates:
        return Resolution(None, f"no table named {' or '.join(sorted(forms))}")
    for scope_name, schemas in (("the column's own schema", (from_schema,)), ("search_path", search_path)):
        for schema in schemas:
            in_schema = [t for t in candidates if t.schema == schema]
            if len(in_schema) == 1:
                table = in_schema[0]
                return Resolution(
                    table,
                    f"column name {column!r} → stem {stem!r} → table {qualified(table.schema, table.name)} "
                    f"(found in {scope_name})",
                )
            if len(in_schema) > 1:
                names = ", ".join(qualified(t.schema, t.name) for t in in_schema)
                return Resolution(None, f"ambiguous: {names}")
    return Resolution(None, f"tables named {stem!r} exist only outside the column's schema and search_path")


# --- catalog snapshot -------------------------------------------------------------------------------

# User tables and materialized views (indexed like tables): no system schemas, no temporary
# tables, nothing an extension owns.
_USER_TABLES = """
SELECT c.oid
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm')
  AND c.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname !~ '^pg_(toast|temp_)'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
  AND c.oid <> ALL ($1::oid[])
"""

# Relations of this database someone holds or waits for an ACCESS EXCLUSIVE lock on, but us: reading
# the size or index definitions of such a table would queue behind that lock (a waiter too, since
# a later request queues behind a conflicting one). `table_oid` is the table an index belongs to.
LOCKS_QUERY = """
SELECT l.relation::int8 AS oid, coalesce(i.indrelid, l.relation)::int8 AS table_oid,
       quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS relation, c.relkind::text AS kind,
       l.granted, l.pid, a.application_name, a.usename AS user_name, a.state,
       left(a.query, 300) AS query,
       extract(epoch FROM now() - coalesce(a.xact_start, a.query_start))::float8 AS age_s,
       CASE WHEN l.pid IS NOT NULL AND NOT l.granted THEN pg_blocking_pids(l.pid) END AS blocked_by
FROM pg_locks l
JOIN pg_class c ON c.oid = l.relation
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_index i ON i.indexrelid = l.relation
LEFT JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock'
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.pid IS DISTINCT FROM pg_backend_pid()
  AND c.relkind IN ('r', 'p', 'i', 'I')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname !~ '^pg_(toast|temp_)'
ORDER BY l.granted DESC, relation, l.pid
"""

TABLES_QUERY = f"""
WITH user_tables AS ({_USER_TABLES})
SELECT c.oid, n.nspname AS schema, c.relname AS name, c.relkind::text AS kind, c.relispartition AS is_partition,
       CASE WHEN c.relispartition THEN (SELECT i.inhparent FROM pg_inherits i WHERE i.inhrelid = c.oid) END AS parent,
       c.reltuples::float8 AS rows_estimate, pg_relation_size(c.oid) AS bytes,
       c.relreplident::text AS replica_identity,
       has_table_privilege(c.oid, 'SELECT') AS readable
FROM user_tables u
JOIN pg_class c ON c.oid = u.oid
JOIN pg_namespace n ON n.oid = c.relnamespace
"""

COLUMNS_QUERY = f"""
WITH user_tables AS ({_USER_TABLES})
SELECT a.attrelid AS table_oid, a.attnum AS num, a.attname AS name,
       format_type(a.atttypid, a.atttypmod) AS type,
       format_type(CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END,
                   CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END) AS base_type,
       a.attnotnull AS not_null
FROM user_tables u
JOIN pg_attribute a ON a.attrelid = u.oid
JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attnum > 0 AND NOT a.attisdropped
"""

CONSTRAINTS_QUERY = f"""
WITH user_tables AS ({_USER_TABLES})
SELECT con.oid, con.conname AS name, con.contype::text AS kind, con.conrelid AS table_oid,
       con.confrelid AS ref_table_oid, con.conkey AS columns, con.confkey AS ref_columns,
       con.conindid AS index_oid, con.conparentid <> 0 AS inherited, con.convalidated AS validated
FROM pg_constraint con
JOIN user_tables u ON u.oid = con.conrelid
WHERE con.contype IN ('p', 'u', 'x', 'f')
  AND con.confrelid <> ALL ($1::oid[])
"""

INDEXES_QUERY = f"""
WITH user_tables AS ({_USER_TABLES})
SELECT i.indexrelid AS oid, i.indrelid AS table_oid, n.nspname AS schema, ic.relname AS name,
       ic.relkind::text AS kind, ic.relispartition AS attached, am.amname AS method,
       i.indkey::int2[] AS keys, i.indnkeyatts AS key_count,
       i.indisunique AS is_unique, i.indisprimary AS is_primary, i.indisexclusion AS is_exclusion,
       i.indisvalid AS valid, i.indisready AS ready,
       pg_get_expr(i.indpred, i.indrelid) AS predicate, pg_get_expr(i.indexprs, i.indrelid) AS expressions,
       i.indclass::oid[] AS opclasses, i.indcollation::oid[] AS collations, i.indoption::int2[] AS options,
       pg_get_indexdef(i.indexrelid) AS definition, pg_relation_size(i.indexrelid) AS bytes
FROM user_tables u
JOIN pg_index i ON i.indrelid = u.oid
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = ic.relnamespace
JOIN pg_am am ON am.oid = ic.relam
"""

SEARCH_PATH_QUERY = "SELECT current_schemas(false)::text[] AS schemas"
# The queries that leave out the locked tables ($1).
_TAKE_LOCKED = frozenset({"tables", "columns", "constraints", "indexes"})

SNAPSHOT_QUERIES = {
    "tables": TABLES_QUERY,
    "columns": COLUMNS_QUERY,
    "constraints": CONSTRAINTS_QUERY,
    "indexes": INDEXES_QUERY,
    "search_path": SEARCH_PATH_QUERY,
}


@dataclass(frozen=True)
class Column:
    table_oid: int
    num: int
    name: str
    type: str
    base_type: str  # a domain's underlying type, so a domain over bigint matches bigint
    not_null: bool


@dataclass(frozen=True)
class Table:
    oid: int
    schema: str
    name: str
    kind: str  # "r" plain, "p" partitioned, "m" materialized view
    is_partition: bool
    parent: int | None
    rows_estimate: float  # reltuples: -1 when never analysed (PostgreSQL 14+)
    bytes: int
    replica_identity: str
    readable: bool  # whether this role may SELECT from it (counting rows needs it)

    @cached_property
    def qualified(self) -> str:
        return qualified(self.schema, self.name)

    @property
    def partitioned(self) -> bool:
        return self.kind == "p"

    @property
    def materialized_view(self) -> bool:
        return self.kind == "m"

    @property
    def rows(self) -> int | None:
        return None if self.rows_estimate < 0 else int(self.rows_estimate)


@dataclass(frozen=True)
class Constraint:
    oid: int
    name: str
    kind: str  # "p" primary key, "u" unique, "x" exclusion, "f" foreign key
    table_oid: int
    ref_table_oid: int
    columns: tuple[int, ...]
    ref_columns: tuple[int, ...]
    index_oid: int
    inherited: bool  # a partition's copy of its parent's constraint
    validated: bool


@dataclass(frozen=True)
class Index:
    oid: int
    table_oid: int
    schema: str
    name: str
    kind: str  # "i" an index, "I" a partitioned index
    attached: bool  # a partition's index attached to its parent's partitioned index
    method: str
    keys: tuple[int, ...]  # attnums; 0 marks an expression
    key_count: int  # the rest of `keys` are INCLUDE columns
    is_unique: bool
    is_primary: bool
    is_exclusion: bool
    valid: bool
    ready: bool
    predicate: str | None
    expressions: str | None
    opclasses: tuple[int, ...]
    collations: tuple[int, ...]
    options: tuple[int, ...]
    definition: str
    bytes: int

    @cached_property
    def qualified(self) -> str:
        return qualified(self.schema, self.name)

    @property
    def key_columns(self) -> tuple[int, ...]:
        return self.keys[: self.key_count]

    @property
    def include_columns(self) -> tuple[int, ...]:
        return self.keys[self.key_count:]

    @cached_property
    def signature(self) -> tuple[Any, ...]:
        """Everything that makes two indexes interchangeable for reads and for constraints."""
        return (self.table_oid, self.method, self.keys, self.key_count, self.is_unique, self.is_exclusion,
                self.predicate, self.expressions, self.opclasses, self.collations, self.options)


@dataclass(frozen=True)
class RelationLock:
    """An ACCESS EXCLUSIVE lock, held or awaited, that kept a table out of the snapshot."""

    oid: int
    table_oid: int  # the locked table, or the table of the locked index
    relation: str  # qualified, quoted
    kind: str  # relkind: r, p table; i, I index
    granted: bool  # held; False: waiting for it (and queueing everyone else behind it)
    pid: int | None  # None for a prepared transaction
    application: str | None
    user: str | None
    state: str | None
    query: str | None
    age_s: float | None  # of the session's transaction (or its query)
    blocked_by: tuple[int, ...] = ()  # for a waiter: the sessions it waits for


@dataclass(frozen=True, eq=False)  # compared by identity: lookups are cached per snapshot
class Catalog:
    tables: Mapping[int, Table]
    columns: Mapping[int, Mapping[int, Column]]  # table oid → attnum → column
    constraints: tuple[Constraint, ...]
    indexes: tuple[Index, ...]
    search_path: tuple[str, ...]
    partitions: Mapping[int, tuple[int, ...]] = field(default_factory=dict)  # parent → direct partitions
    locked: tuple[RelationLock, ...] = ()  # left out of this snapshot: see the module's docstring

    def column(self, table_oid: int, num: int) -> Column:
        return self.columns[table_oid][num]

    def column_names(self, table_oid: int, nums: Iterable[int]) -> tuple[str, ...]:
        return tuple(self.columns[table_oid][n].name if n else "(expression)" for n in nums)

    def primary_key(self, table_oid: int) -> Constraint | None:
        return next((c for c in self.constraints_of(table_oid) if c.kind == "p"), None)

    def constraints_of(self, table_oid: int) -> tuple[Constraint, ...]:
        return self._by_table.get(table_oid, ())

    def indexes_of(self, table_oid: int) -> tuple[Index, ...]:
        return self._indexes_by_table.get(table_oid, ())

    @property
    def foreign_keys(self) -> tuple[Constraint, ...]:
        return self._foreign_keys_by_ref.get(None, ())

    def referencing(self, table_oid: int) -> tuple[Constraint, ...]:
        """Foreign keys that point at this table (looked up, not searched: used per finding)."""
        return self._foreign_keys_by_ref.get(table_oid, ())

    def protected_indexes(self) -> dict[int, str]:
        """Indexes that must never be offered for dropping, with the reason: they back a primary
        key, unique or exclusion constraint, or a foreign key relies on them."""
        reasons: dict[int, str] = {}
        for con in self.constraints:
            if con.kind in ("p", "u", "x") and con.index_oid:
                label = {"p": "primary key", "u": "unique constraint", "x": "exclusion constraint"}[con.kind]
                reasons[con.index_oid] = f"backs the {label} {quote_ident(con.name)}"
        for con in self.constraints:
            if con.kind == "f" and con.index_oid and con.index_oid not in reasons:
                reasons[con.index_oid] = f"the foreign key {quote_ident(con.name)} relies on it"
        return reasons

    def judged_tables(self) -> list[Table]:
        """Tables judged on their own: partitions are judged at their parent. Materialized views
        are not tables here (no keys, no constraints); the index checks judge them by their indexes."""
        return [t for t in self.tables.values() if not t.is_partition and not t.materialized_view]

    def judged_indexes(self) -> list[Index]:
        """Indexes judged on their own: a partition's attached index is judged at its parent."""
        return [i for i in self.indexes if not i.attached and i.table_oid in self.tables]

    def names_in_schema(self, schema: str) -> frozenset[str]:
        """Index and table names of a schema (index names share the table namespace)."""
        return _names_by_schema(self).get(schema, frozenset())

    def relation_names(self) -> frozenset[str]:
        """Index and table names of every schema."""
        return _names_by_schema(self)[None]

    def leaves(self, table_oid: int) -> list[int]:
        out: list[int] = []
        for child in self.partitions.get(table_oid, ()):
            out.extend(self.leaves(child) if self.partitions.get(child) else [child])
        return out

    @property
    def _by_table(self) -> dict[int, tuple[Constraint, ...]]:
        return _group(self, "constraints", lambda c: c.table_oid)

    @property
    def _indexes_by_table(self) -> dict[int, tuple[Index, ...]]:
        return _group(self, "indexes", lambda i: i.table_oid)

    @property
    def _foreign_keys_by_ref(self) -> dict[int | None, tuple[Constraint, ...]]:
        """Foreign keys by the table they point at; under None, all of them."""
        cache = _GROUPS.setdefault(self, {})
        if "foreign keys" not in cache:
            grouped: dict[int | None, list[Constraint]] = defaultdict(list)
            for con in self.constraints:
                if con.kind == "f":
                    grouped[con.ref_table_oid].append(con)
                    grouped[None].append(con)
            cache["foreign keys"] = {k: tuple(v) for k, v in grouped.items()}
        return cache["foreign keys"]


# Per catalog: each lookup by its name, keyed and valued as its accessor returns it.
_GROUPS: weakref.WeakKeyDictionary[Any, dict[str, dict[Any, Any]]] = weakref.WeakKeyDictionary()


def _group(catalog: Catalog, attribute: str, key: Any) -> dict[int, tuple[Any, ...]]:
    """Lookups computed once per snapshot (the dataclass is frozen, so not cached on it)."""
    cache = _GROUPS.setdefault(catalog, {})
    if attribute not in cache:
        grouped: dict[int, list[Any]] = defaultdict(list)
        for item in getattr(catalog, attribute):
            grouped[key(item)].append(item)
        cache[attribute] = {k: tuple(v) for k, v in grouped.items()}
    return cache[attribute]


def _names_by_schema(catalog: Catalog) -> dict[str | None, frozenset[str]]:
    cache = _GROUPS.setdefault(catalog, {})
    if "names" not in cache:
        names: dict[str | None, set[str]] = defaultdict(set)
        items: tuple[Index | Table, ...] = (*catalog.indexes, *catalog.tables.values())
        for item in items:
            names[item.schema].add(item.name)
            names[None].add(item.name)
        cache["names"] = {k: frozenset(v) for k, v in names.items()}
    return cache["names"]


def build_catalog(rows: Mapping[str, list[Mapping[str, Any]]]) -> Catalog:
    """Typed, immutable facts from the snapshot queries' rows."""
    tables = {r["oid"]: Table(
        oid=r["oid"], schema=r["schema"], name=r["name"], kind=r["kind"], is_partition=r["is_partition"],
        parent=r["parent"], rows_estimate=float(r["rows_estimate"]), bytes=int(r["bytes"] or 0),
        replica_identity=r["replica_identity"], readable=bool(r["readable"]),
    ) for r in rows["tables"]}
    columns: dict[int, dict[int, Column]] = defaultdict(dict)
    for r in rows["columns"]:
        columns[r["table_oid"]][r["num"]] = Column(
            table_oid=r["table_oid"], num=r["num"], name=r["name"], type=r["type"], base_type=r["base_type"],
            not_null=r["not_null"])
    constraints = tuple(Constraint(
        oid=r["oid"], name=r["name"], kind=r["kind"], table_oid=r["table_oid"], ref_table_oid=r["ref_table_oid"],
        columns=tuple(r["columns"] or ()), ref_columns=tuple(r["ref_columns"] or ()), index_oid=r["index_oid"],
        inherited=r["inherited"], validated=r["validated"],
    ) for r in rows["constraints"])
    indexes = tuple(Index(
        oid=r["oid"], table_oid=r["table_oid"], schema=r["schema"], name=r["name"], kind=r["kind"],
        attached=r["attached"], method=r["method"], keys=tuple(r["keys"]), key_count=r["key_count"],
        is_unique=r["is_unique"], is_primary=r["is_primary"], is_exclusion=r["is_exclusion"], valid=r["valid"],
        ready=r["ready"], predicate=r["predicate"], expressions=r["expressions"],
        opclasses=tuple(r["opclasses"]), collations=tuple(r["collations"]), options=tuple(r["options"]),
        definition=r["definition"], bytes=int(r["bytes"] or 0),
    ) for r in rows["indexes"])
    partitions: dict[int, list[int]] = defaultdict(list)
    for table in tables.values():
        if table.parent is not None:
            partitions[table.parent].append(table.oid)
    search_path = tuple(rows["search_path"][0]["schemas"]) if rows["search_path"] else ()
    locked = tuple(RelationLock(
        oid=r["oid"], table_oid=r["table_oid"], relation=r["relation"], kind=r["kind"], granted=r["granted"],
        pid=r["pid"], application=r["application_name"], user=r["user_name"], state=r["state"], query=r["query"],
        age_s=r["age_s"], blocked_by=tuple(r["blocked_by"] or ()),
    ) for r in rows.get("locks", ()))
    return Catalog(
        tables=tables, columns={k: dict(v) for k, v in columns.items()}, constraints=constraints,
        indexes=indexes, search_path=search_path, partitions={k: tuple(sorted(v)) for k, v in partitions.items()},
        locked=locked,
    )


# A lock taken between reading pg_locks and reading a table makes the snapshot wait (up to the
# session's lock_timeout) and fail; reading the locks again then sees it.
SNAPSHOT_ATTEMPTS = 3


async def read_catalog(session: Any, timeout_s: float | None = None) -> Catalog:
    """The snapshot; `timeout_s` bounds each of its statements instead of the session's own
    (per-query) timeout: on tens of thousands of indexes, pg_get_indexdef alone takes seconds."""
    import asyncpg

    async with session.acquire() as conn:
        for attempt in range(1, SNAPSHOT_ATTEMPTS + 1):
            try:
                rows = await _read_rows(conn, timeout_s)
                break
            except asyncpg.LockNotAvailableError:
                if attempt == SNAPSHOT_ATTEMPTS:
                    raise
    # Off the event loop: typing 40,000 indexes takes a while, and other checks' replies wait.
    return await asyncio.to_thread(build_catalog, rows)


async def _read_rows(conn: Any, timeout_s: float | None = None) -> dict[str, list[Any]]:
    rows: dict[str, list[Any]] = {}
    client_timeout = None if timeout_s is None else timeout_s + 1
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        if timeout_s is not None:
            await conn.execute(f"SET LOCAL statement_timeout = {int(timeout_s * 1000)}")
        rows["locks"] = list(await conn.fetch(LOCKS_QUERY, timeout=client_timeout))
        skipped = sorted({r["table_oid"] for r in rows["locks"]})
        for name, query in SNAPSHOT_QUERIES.items():
            args = (skipped,) if name in _TAKE_LOCKED else ()
            rows[name] = list(await conn.fetch(query, *args, timeout=client_timeout))
    return rows


class CatalogSnapshot(Fact[Catalog]):
    """The schema as one REPEATABLE READ snapshot: every check of a run judges the same one."""

    id = "postgres.catalog"
    engine = "postgres"
    description = "Tables, columns, constraints and indexes, read once per target and run."

    async def compute(self, session: Any, context: FactContext) -> Catalog:
        # Each reader waits at most its check_timeout; the snapshot may take that long too.
        return await read_catalog(session, context.config.check_timeout)


# --- shared judgement helpers -------------------------------------------------------------------------

INTEGER_WIDTH = {"smallint": 2, "integer": 4, "bigint": 8}
INTEGER_MAX = {"smallint": 2**15 - 1, "integer": 2**31 - 1, "bigint": 2**63 - 1}


def concurrent_definition(definition: str) -> str:
    """pg_get_indexdef's CREATE [UNIQUE] INDEX ... rewritten to build CONCURRENTLY."""
    return re.sub(r"^CREATE (UNIQUE )?INDEX ", lambda m: f"CREATE {m[1] or ''}INDEX CONCURRENTLY ", definition, count=1)
