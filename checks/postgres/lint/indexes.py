"""Index shapes pg-index-health's static checks advise against, one rule each."""

from __future__ import annotations

import re

from pydantic import Field

from checks.contract import CheckOptions
from checks.postgres._catalog import quote_ident
from checks.postgres.lint._rule import LintFacts, LintRule, Violation, lint_indexes
from checks.units import listed

# Null fractions of the columns indexes lead with (pg_stats, readable columns only).
NULLS_QUERY = """
SELECT c.oid AS table_oid, s.attname AS column_name, s.null_frac::float8 AS null_frac
FROM pg_stats s
JOIN pg_namespace n ON n.nspname = s.schemaname
JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.tablename
WHERE c.oid = ANY ($1::oid[]) AND s.inherited = (c.relkind = 'p')
"""


def _keys(snapshot, table, index):
    return [snapshot.columns[table.oid][n] for n in index.key_columns if n]


class BtreeOnArray(LintRule):
    id = "postgres.lint-btree-on-array"
    title = "btree index on an array column"
    rationale = ("A btree indexes the whole array as one value: it answers `col = ARRAY[...]` only, never "
                 "`@>` or `&&` (containment, overlap), which need GIN.")

    def violations(self, facts: LintFacts, options):
        snapshot = facts.catalog
        for table, index in lint_indexes(snapshot):
            arrays = [c.name for c in _keys(snapshot, table, index) if c.base_type.endswith("[]")]
            if index.method == "btree" and arrays:
                yield Violation(index.qualified, f"{index.name} is a btree on array {listed('column', arrays)}",
                                f"{index.qualified} on {table.qualified} is a btree over the array "
                                f"{listed('column', arrays)}: use GIN for containment and overlap queries.",
                                {"definition": index.definition, "array_columns": arrays})


class BooleanIndex(LintRule):
    id = "postgres.lint-boolean-index"
    title = "Index on a boolean column"
    rationale = ("A boolean has two values: an index keyed on it rarely narrows a search. A partial index "
                 "(WHERE flag) on the rare side does the job in a fraction of the size.")

    def violations(self, facts: LintFacts, options):
        snapshot = facts.catalog
        for table, index in lint_indexes(snapshot):
            flags = [c.name for c in _keys(snapshot, table, index) if c.base_type == "boolean"]
            if flags and not index.is_unique:
                yield Violation(index.qualified, f"{index.name} indexes boolean {listed('column', flags)}",
                                f"{index.qualified} on {table.qualified} is keyed on the boolean "
                                f"{listed('column', flags)}: a partial index WHERE on the rare value is smaller and as fast.",
                                {"definition": index.definition, "boolean_columns": flags})


class NullsOptions(CheckOptions):
    min_null_frac: float = Field(
        default=0.5, gt=0, le=1, description="Report an index whose leading column is at least this share NULL (pg_stats).")


class IndexNulls(LintRule):
    id = "postgres.lint-index-nulls"
    title = "Index mostly of NULLs"
    Options = NullsOptions
    rationale = ("A btree stores a row for NULL keys too: when most of the leading column is NULL and queries look "
                 "for values, a partial index WHERE col IS NOT NULL is a fraction of the size.")

    async def extra(self, session, snapshot):
        oids = sorted({t.oid for t, _ in lint_indexes(snapshot)})
        return {(r["table_oid"], r["column_name"]): r["null_frac"] for r in await session.fetch(NULLS_QUERY, oids)} if oids else {}

    def violations(self, facts: LintFacts, options):
        snapshot = facts.catalog
        for table, index in lint_indexes(snapshot):
            keys = _keys(snapshot, table, index)
            if index.method != "btree" or index.predicate is not None or not keys or index.key_columns[0] == 0:
                continue
            lead = keys[0]
            null_frac = (facts.extra or {}).get((table.oid, lead.name))
            if lead.not_null or null_frac is None or null_frac < options.min_null_frac:
                continue
            yield Violation(index.qualified, f"{index.name}: {null_frac:.0%} of {lead.name} is NULL",
                            f"{index.qualified} leads with {table.qualified}.{quote_ident(lead.name)}, NULL in "
                            f"{null_frac:.0%} of rows (pg_stats): a partial index WHERE {quote_ident(lead.name)} IS NOT "
                            "NULL is smaller, unless queries look for the NULLs.",
                            {"definition": index.definition, "column": lead.name, "null_frac": round(null_frac, 3)})


class UnnecessaryWhere(LintRule):
    id = "postgres.lint-unnecessary-where"
    title = "Index WHERE clause that filters nothing"
    rationale = "WHERE col IS NOT NULL on a NOT NULL column keeps every row: the predicate only stops the planner " \
                "from using the index for queries that do not repeat it."

    def violations(self, facts: LintFacts, options):
        snapshot = facts.catalog
        for table, index in lint_indexes(snapshot):
            if index.predicate is None:
                continue
            names = {c.name: c for c in snapshot.columns.get(table.oid, {}).values()}
            terms = re.split(r"\s+AND\s+", index.predicate.strip("()"), flags=re.I)
            pointless = []
            for term in terms:
                match = re.fullmatch(r'\(*("(?:[^"]|"")+"|\w+) IS NOT NULL\)*', term.strip())
                if match:
                    name = match[1][1:-1].replace('""', '"') if match[1].startswith('"') else match[1]
                    if name in names and names[name].not_null:
                        pointless.append(name)
            if pointless:
                yield Violation(index.qualified, f"{index.name}: WHERE on NOT NULL {listed('column', pointless)}",
                                f"{index.qualified} has WHERE {index.predicate}, but {', '.join(pointless)} "
                                "cannot be NULL: the clause keeps every row; drop it from the index definition.",
                                {"definition": index.definition, "not_null_columns": pointless})


class TimestampInTheMiddle(LintRule):
    id = "postgres.lint-timestamp-in-the-middle"
    title = "Timestamp before other columns in an index"
    rationale = ("Queries filter timestamps by range; a btree cannot use the columns after a range-scanned column "
                 "to narrow the scan. Put equality columns first and the timestamp last.")

    def violations(self, facts: LintFacts, options):
        snapshot = facts.catalog
        for table, index in lint_indexes(snapshot):
            if index.method != "btree" or index.key_count < 2:
                continue
            cols = snapshot.columns.get(table.oid, {})
            stamps = {c.name for c in cols.values() if c.base_type.startswith("timestamp")}
            early = []
            for num in index.key_columns[:-1]:
                if num and cols[num].name in stamps:
                    early.append(cols[num].name)
                elif not num and index.expressions and any(
                        re.search(rf"\b{re.escape(name)}\b", index.expressions) for name in stamps):
                    early.append(index.expressions)  # an expression over a timestamp, e.g. date_trunc('day', ts)
            if early:
                yield Violation(index.qualified, f"{index.name} has {', '.join(dict.fromkeys(early))} before its last column",
                                f"{index.qualified} on {table.qualified} puts the timestamp "
                                f"{', '.join(dict.fromkeys(early))} before other columns: a range on it leaves the "
                                "columns after it unused for narrowing. Put it last.",
                                {"definition": index.definition, "timestamp_columns": list(dict.fromkeys(early))})
