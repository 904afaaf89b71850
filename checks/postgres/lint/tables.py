"""Table shapes: every column nullable, and names the server would truncate."""

from __future__ import annotations

from checks.postgres._catalog import NAMEDATALEN
from checks.postgres.lint._rule import LintFacts, LintRule, Violation, lint_tables


class AllNullable(LintRule):
    id = "postgres.lint-all-nullable"
    title = "Every column but the key is nullable"
    rationale = ("When no column is NOT NULL, nothing stops half-written rows; and the planner, the application "
                 "and the next engineer cannot rely on any value being there.")

    def violations(self, facts: LintFacts, options):
        snapshot = facts.catalog
        for table in lint_tables(snapshot):
            pk = snapshot.primary_key(table.oid)
            others = [c for n, c in snapshot.columns.get(table.oid, {}).items() if not pk or n not in pk.columns]
            if len(others) >= 2 and not any(c.not_null for c in others):
                # Counted against the whole table: "all 2 columns" of a 3-column table misleads.
                every = len(snapshot.columns.get(table.oid, {}))
                what = (f"all {every} columns are" if len(others) == every
                        else f"{len(others)} of its {every} columns, all but the key, are")
                yield Violation(table.qualified, f"{table.name}: {what} nullable",
                                f"Every column of {table.qualified} besides its key may be NULL: declare NOT NULL "
                                "what is always there.", {"columns": [c.name for c in others]})


class NameOverflow(LintRule):
    id = "postgres.lint-name-overflow"
    title = "Name at the 63-byte limit (probably truncated)"
    rationale = ("PostgreSQL silently cuts names to 63 bytes: a name that long was most likely truncated, so a "
                 "migration that names it in full finds nothing, and two long names may collide.")

    def violations(self, facts: LintFacts, options):
        snapshot = facts.catalog
        limit = NAMEDATALEN - 1
        names = [("table", t.qualified, t.name) for t in lint_tables(snapshot)]
        names += [("column", f"{t.qualified}.{c.name}", c.name)
                  for t in lint_tables(snapshot) for c in snapshot.columns.get(t.oid, {}).values()]
        names += [("index", i.qualified, i.name) for i in snapshot.judged_indexes()]
        names += [("constraint", f"{snapshot.tables[c.table_oid].qualified}.{c.name}", c.name)
                  for c in snapshot.constraints  # a key's or unique constraint's name is its index's, reported above
                  if not c.inherited and c.kind not in ("p", "u", "x") and c.table_oid in snapshot.tables]
        for kind, where, name in names:
            if len(name.encode()) >= limit:
                short = name if len(name) <= 40 else name[:39] + "…"
                yield Violation(where, f"{kind} {short}: a {len(name.encode())}-byte name, probably truncated",
                                f"The {kind} {where} has a {len(name.encode())}-byte name, at the limit: it was "
                                "probably truncated from a longer one.", {"kind": kind, "name": name}, key=kind)
