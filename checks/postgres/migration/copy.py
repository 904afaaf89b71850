"""The part of the target's schema a migration needs, read from the live catalog (read-only) and
written out as DDL for the scratch database: no data.

Copied: every user schema, extension, enum and domain type and function (few, and a migration's
statements and column defaults may name any of them); the views it names; the tables it names or
those views read (with their partition family) as they are: columns, defaults, constraints,
indexes, sequences, triggers; and their foreign-key neighbours in both directions with what a
foreign key needs of them: key and foreign-key columns, keys, plain unique indexes, foreign keys
between copied tables. Every schema check judges a table by its own definition and its foreign
keys, so the findings a migration adds can only appear on the tables it names or, through their
foreign keys, on the neighbours; the rest of a neighbour is the same before and after, and
leaving it out changes no difference.
Copying the whole schema instead (pg_dump --schema-only and a restore) takes seconds per thousand
tables; this copy grows with the migration, not the database.
Not copied: other views, policies, comments, grants, tables the migration does not reach."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pglast import ast

from checks.postgres.migration.catalog import quote_ident
from checks.postgres.migration.parse import Statement, walk

# The user's schemas: not the system's own, nor temporary ones.
_USER_NAMESPACE = ("n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') "
                   "AND n.nspname NOT LIKE 'pg_temp_%' AND n.nspname NOT LIKE 'pg_toast_temp_%'")
# Not owned by an extension: an extension's objects come with CREATE EXTENSION.
_NOT_EXTENSION = ("NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = {catalog}::regclass AND d.objid = {oid} "
                  "AND d.deptype = 'e')")


def named_relations(statements: list[Statement]) -> list[str]:
    """Every relation the migration names, as regclass input (quoted), in order of appearance:
    RangeVars anywhere in a statement (FROM, REFERENCES, ON, ALTER TABLE...) and the objects of
    DROP (index, table, view, sequence)."""
    names: dict[str, None] = {}
    for statement in statements:
        for node in walk(statement.node):
            if isinstance(node, ast.RangeVar) and node.relname:
                names[_regclass_text(node.schemaname, node.relname)] = None
            elif isinstance(node, ast.DropStmt):
                for obj in node.objects or ():
                    parts = [getattr(p, "sval", None) for p in obj] if isinstance(obj, (list, tuple)) else []
                    words = [p for p in parts if isinstance(p, str)]
                    if words and len(words) == len(parts) <= 2:
                        names[_regclass_text(words[0] if len(words) == 2 else None, words[-1])] = None
    return list(names)


def _regclass_text(schema: str | None, name: str) -> str:
    quoted = '"' + name.replace('"', '""') + '"'
    return quoted if not schema else '"' + schema.replace('"', '""') + '".' + quoted


# The tables named (an index or a sequence stands for its table) with their partition family,
# then their foreign-key neighbours in both directions (a partition's keys are its parent's).
# `named` tells the two apart.
TABLES_QUERY = """
WITH RECURSIVE named AS (
  SELECT CASE c.relkind WHEN 'i' THEN i.indrelid WHEN 'I' THEN i.indrelid
                        WHEN 'S' THEN coalesce(d.refobjid, c.oid) ELSE c.oid END AS oid
  FROM unnest($1::text[]) AS w(name)
  JOIN pg_class c ON c.oid = to_regclass(w.name)
  LEFT JOIN pg_index i ON i.indexrelid = c.oid
  LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i')
                       AND d.refclassid = 'pg_class'::regclass
), viewed AS (  -- a named view stands for the tables it reads (they are copied whole)
  SELECT oid FROM named
  UNION SELECT d.refobjid FROM named v JOIN pg_rewrite rw ON rw.ev_class = v.oid
  JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid
                  AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> v.oid
), named_up AS (
  SELECT oid FROM viewed
  UNION SELECT i.inhparent FROM pg_inherits i JOIN named_up f ON i.inhrelid = f.oid
), named_all AS (
  SELECT oid FROM named_up
  UNION SELECT i.inhrelid FROM pg_inherits i JOIN named_all w ON i.inhparent = w.oid
), whole AS (
  SELECT oid FROM named_all
  UNION SELECT confrelid FROM pg_constraint WHERE contype = 'f' AND conrelid IN (SELECT oid FROM named_all)
  UNION SELECT conrelid FROM pg_constraint WHERE contype = 'f' AND confrelid IN (SELECT oid FROM named_all)
)
SELECT c.oid::int AS oid, c.relkind::text AS relkind, n.nspname AS schema, c.relname AS name,
       c.relpersistence::text AS persistence, c.relispartition AS is_partition,
       c.oid IN (SELECT oid FROM named_all) AS named,
       CASE WHEN c.relispartition THEN (SELECT inhparent::regclass::text FROM pg_inherits WHERE inhrelid = c.oid)
       END AS parent,
       CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END AS bound,
       CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END AS partition_key
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid IN (SELECT oid FROM whole) AND c.relkind IN ('r', 'p')
  AND (c.oid IN (SELECT oid FROM named_all) OR NOT c.relispartition)
ORDER BY c.relispartition, c.oid
"""

COLUMNS_QUERY = """
SELECT a.attrelid::int AS table_oid, a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull AS not_null, a.attidentity::text AS identity, a.attgenerated::text AS generated,
       pg_get_expr(d.adbin, d.adrelid) AS default,
       CASE WHEN a.attcollation <> t.typcollation AND a.attcollation <> 0
            THEN (SELECT format('%I.%I', cn.nspname, co.collname) FROM pg_collation co
                  JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = a.attcollation) END AS collation
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
  AND (a.attrelid = ANY($2::oid[])
       OR EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conrelid = a.attrelid AND c.contype IN ('p', 'u', 'f')
                    AND a.attnum = ANY(c.conkey))
       OR EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisunique
                    AND i.indexprs IS NULL AND i.indpred IS NULL AND a.attnum = ANY(i.indkey)))
ORDER BY a.attrelid, a.attnum
"""

# Constraints defined on the table itself (a partition's inherited ones come from its parent):
# all of a named table's; of a neighbour, its keys (foreign keys point at them) and foreign keys;
# foreign keys only between copied tables. Keys first: foreign keys reference them.
CONSTRAINTS_QUERY = """
SELECT c.conrelid::int AS table_oid, c.conname AS name, c.contype::text AS type,
       pg_get_constraintdef(c.oid) AS definition, c.confrelid::int AS references
FROM pg_constraint c
WHERE c.conrelid = ANY($1::oid[]) AND c.conislocal
  AND c.contype IN ('p', 'u', 'f', 'x', 'c') AND (c.contype IN ('p', 'u', 'f') OR c.conrelid = ANY($2::oid[]))
  AND (c.contype <> 'f' OR c.confrelid = ANY($1::oid[]))
ORDER BY CASE c.contype WHEN 'p' THEN 0 WHEN 'u' THEN 1 WHEN 'x' THEN 2 WHEN 'c' THEN 3 ELSE 4 END, c.oid
"""

# Indexes not made by a constraint, and not a partition's copy of its parent's index: all of a
# named table's, a neighbour's plain unique ones (a foreign key may point at one).
INDEXES_QUERY = """
SELECT i.indrelid::int AS table_oid, pg_get_indexdef(i.indexrelid) AS definition
FROM pg_index i
WHERE i.indrelid = ANY($1::oid[])
  AND (i.indrelid = ANY($2::oid[]) OR i.indisunique AND i.indexprs IS NULL AND i.indpred IS NULL)
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.contype IN ('p', 'u', 'x'))
  AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid)
ORDER BY i.indexrelid
"""

# Sequences a copied column's default calls (serial and shared ones), and which column owns them.
SEQUENCES_QUERY = """
SELECT DISTINCT s.oid::int AS oid, format('%I.%I', n.nspname, s.relname) AS name,
       format_type(q.seqtypid, NULL) AS type, q.seqincrement AS increment, q.seqmin AS min, q.seqmax AS max,
       q.seqstart AS start, q.seqcycle AS cycle,
       (SELECT format('%s.%I', o.refobjid::regclass, a.attname) FROM pg_depend o
          JOIN pg_attribute a ON a.attrelid = o.refobjid AND a.attnum = o.refobjsubid
         WHERE o.classid = 'pg_class'::regclass AND o.objid = s.oid AND o.deptype = 'a'
           AND o.refobjid = ANY($1::oid[])) AS owned_by
FROM pg_attrdef ad
JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid AND d.refclassid = 'pg_class'::regclass
JOIN pg_class s ON s.oid = d.refobjid AND s.relkind = 'S'
JOIN pg_namespace n ON n.oid = s.relnamespace
JOIN pg_sequence q ON q.seqrelid = s.oid
WHERE ad.adrelid = ANY($1::oid[])
ORDER BY 1
"""

# The triggers of the tables copied whole (their functions are copied): a migration may drop or
# replace one.
TRIGGERS_QUERY = """
SELECT pg_get_triggerdef(t.oid) AS definition FROM pg_trigger t
WHERE t.tgrelid = ANY($1::oid[]) AND NOT t.tgisinternal
  AND NOT (SELECT c.relispartition FROM pg_class c WHERE c.oid = t.tgrelid)  -- a partition's come from its parent
ORDER BY t.oid
"""

# The views and materialized views the migration names, after the tables they read.
VIEWS_QUERY = """
SELECT format('%I.%I', n.nspname, c.relname) AS name, c.relkind::text AS kind,
       pg_get_viewdef(c.oid) AS definition
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid IN (SELECT to_regclass(w) FROM unnest($1::text[]) AS w) AND c.relkind IN ('v', 'm')
ORDER BY c.oid
"""

SCHEMAS_QUERY = f"""
SELECT n.nspname AS name FROM pg_namespace n
WHERE {_USER_NAMESPACE} AND {_NOT_EXTENSION.format(catalog="'pg_namespace'", oid="n.oid")}
ORDER BY n.oid
"""

EXTENSIONS_QUERY = """
SELECT e.extname AS name, n.nspname AS schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname <> 'plpgsql' ORDER BY e.oid
"""

# Enums and domains of the user's schemas (not an extension's), in creation order.
TYPES_QUERY = f"""
SELECT t.oid::int AS oid, format('%I.%I', n.nspname, t.typname) AS name, t.typtype::text AS kind,
       (SELECT array_agg(quote_literal(e.enumlabel) ORDER BY e.enumsortorder) FROM pg_enum e
         WHERE e.enumtypid = t.oid) AS labels,
       CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END AS base,
       t.typnotnull AS not_null, t.typdefault AS "default",
       (SELECT array_agg(pg_get_constraintdef(c.oid) ORDER BY c.oid) FROM pg_constraint c
         WHERE c.contypid = t.oid) AS checks
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE t.typtype IN ('e', 'd') AND {_USER_NAMESPACE}
  AND {_NOT_EXTENSION.format(catalog="'pg_type'", oid="t.oid")}
ORDER BY t.oid
"""

FUNCTIONS_QUERY = f"""
SELECT pg_get_functiondef(p.oid) AS definition
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE p.prokind IN ('f', 'p') AND {_USER_NAMESPACE}
  AND {_NOT_EXTENSION.format(catalog="'pg_proc'", oid="p.oid")}
ORDER BY p.oid
"""


@dataclass
class SchemaCopy:
    """DDL for the scratch database: extensions apart (one may be unavailable there)."""

    extensions: list[tuple[str, str]] = field(default_factory=list)
    ddl: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)  # the copied tables, schema-qualified


async def read_copy(session: Any, statements: list[Statement]) -> SchemaCopy:
    """Read the part of the target's schema the migration needs: a fixed number of catalog
    queries however many tables, each under the session's statement timeout."""
    copy = SchemaCopy()
    copy.extensions = [(r["name"], r["schema"]) for r in await session.fetch(EXTENSIONS_QUERY)]
    for row in await session.fetch(SCHEMAS_QUERY):
        copy.ddl.append(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(row['name'])};")
    for row in await session.fetch(TYPES_QUERY):
        if row["kind"] == "e":
            copy.ddl.append(f"CREATE TYPE {row['name']} AS ENUM ({', '.join(row['labels'] or ())});")
        else:
            parts = [f"CREATE DOMAIN {row['name']} AS {row['base']}"]
            if row["default"] is not None:
                parts.append(f"DEFAULT {row['default']}")
            if row["not_null"]:
                parts.append("NOT NULL")
            parts += list(row["checks"] or ())
            copy.ddl.append(" ".join(parts) + ";")
    for row in await session.fetch(FUNCTIONS_QUERY):
        copy.ddl.append(row["definition"].rstrip().rstrip(";") + ";")
    relations = named_relations(statements)
    tables = await session.fetch(TABLES_QUERY, relations)
    oids = [t["oid"] for t in tables]
    named = [t["oid"] for t in tables if t["named"]]
    columns: dict[int, list[Any]] = {}
    for row in await session.fetch(COLUMNS_QUERY, oids, named):
        columns.setdefault(row["table_oid"], []).append(row)
    sequences = await session.fetch(SEQUENCES_QUERY, named)
    for s in sequences:
        copy.ddl.append(
            f"CREATE SEQUENCE IF NOT EXISTS {s['name']} AS {s['type']} INCREMENT {s['increment']} MINVALUE {s['min']} "
            f"MAXVALUE {s['max']} START {s['start']}{' CYCLE' if s['cycle'] else ''};")
    names = {t["oid"]: f"{quote_ident(t['schema'])}.{quote_ident(t['name'])}" for t in tables}
    for t in tables:
        copy.ddl.append(_create_table(t, names[t["oid"]], columns.get(t["oid"], [])))
        copy.tables.append(names[t["oid"]])
    for c in await session.fetch(CONSTRAINTS_QUERY, oids, named):
        copy.ddl.append(f"ALTER TABLE {names[c['table_oid']]} ADD CONSTRAINT {quote_ident(c['name'])} "
                        f"{c['definition']};")
    for i in await session.fetch(INDEXES_QUERY, oids, named):
        copy.ddl.append(i["definition"] + ";")
    for s in sequences:
        if s["owned_by"]:
            copy.ddl.append(f"ALTER SEQUENCE {s['name']} OWNED BY {s['owned_by']};")
    for trigger in await session.fetch(TRIGGERS_QUERY, named):
        copy.ddl.append(trigger["definition"] + ";")
    for v in await session.fetch(VIEWS_QUERY, relations):
        query = v["definition"].strip().rstrip(";")
        copy.ddl.append(f"CREATE MATERIALIZED VIEW {v['name']} AS {query} WITH NO DATA;" if v["kind"] == "m"
                        else f"CREATE VIEW {v['name']} AS {query};")
    return copy


def _create_table(table: Any, name: str, columns: list[Any]) -> str:
    """A named table as it is; a neighbour with its key and foreign-key columns alone, as a plain
    table (what a foreign key needs of it; the rest is the same before and after)."""
    unlogged = "UNLOGGED " if table["persistence"] == "u" else ""
    if not table["named"]:
        return f"CREATE TABLE {name} ({', '.join(_column(c, bare=True) for c in columns)});"
    if table["is_partition"]:
        # Columns, NOT NULL and defaults come from the parent.
        return f"CREATE {unlogged}TABLE {name} PARTITION OF {table['parent']} {table['bound']};"
    body = ", ".join(_column(c) for c in columns)
    partitioned = f" PARTITION BY {table['partition_key']}" if table["relkind"] == "p" else ""
    return f"CREATE {unlogged}TABLE {name} ({body}){partitioned};"


def _column(c: Any, *, bare: bool = False) -> str:
    parts = [quote_ident(c["name"]), c["type"]]
    if c["collation"]:
        parts.append(f"COLLATE {c['collation']}")
    if bare:
        pass  # a neighbour's defaults, identity and generation are the same before and after
    elif c["identity"] in ("a", "d"):
        parts.append("GENERATED " + ("ALWAYS" if c["identity"] == "a" else "BY DEFAULT") + " AS IDENTITY")
    elif c["generated"] == "s":
        parts.append(f"GENERATED ALWAYS AS ({c['default']}) STORED")
    elif c["default"] is not None:
        parts.append(f"DEFAULT {c['default']}")
    if c["not_null"]:
        parts.append("NOT NULL")
    return " ".join(parts)
