"""postgres.not-valid-constraint: CHECK and FOREIGN KEY constraints added NOT VALID and never
validated. New rows are checked; the rows already there are not, and the planner cannot trust them.
The fix (VALIDATE CONSTRAINT) fails on the first row that breaks the constraint, so those rows are
counted first: the fix is safe only when there are none."""

from __future__ import annotations

import time
from dataclasses import dataclass

from pydantic import Field

from checks.contract import Check, CheckOptions, Scope
from checks.model import Finding, Fix, FixAvailability, FixSafety, Severity
from checks.postgres._catalog import qualified, quote_ident
from checks.postgres._fixes import sql
from checks.postgres._preconditions import (
    Precondition,
    check_violations_sql,
    count_failing,
    orphans_sql,
    out_of_budget,
)

# A partition's copy of its parent's constraint is judged at the parent (coninhcount > 0 on the copy).
QUERY = """
SELECT con.oid, n.nspname AS schema, c.relname AS table_name, con.conname AS name, con.contype::text AS kind,
       pg_get_constraintdef(con.oid) AS definition,
       CASE WHEN con.confrelid <> 0 THEN con.confrelid::regclass::text END AS references,
       c.reltuples::float8 AS rows_estimate,
       ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(num, pos)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num ORDER BY k.pos) AS columns,
       ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(num, pos)
             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num ORDER BY k.pos) AS ref_columns,
       CASE WHEN con.contype = 'c' THEN pg_get_expr(con.conbin, con.conrelid) END AS expression
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT con.convalidated AND con.contype IN ('c', 'f')
  AND con.conparentid = 0 AND con.coninhcount = 0
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'
ORDER BY n.nspname, c.relname, con.conname
"""


@dataclass(frozen=True)
class NotValidConstraint:
    oid: int
    schema: str
    table_name: str
    name: str
    kind: str  # "c" check, "f" foreign key
    definition: str
    references: str | None
    rows_estimate: float
    columns: tuple[str, ...]
    ref_columns: tuple[str, ...]
    expression: str | None

    @property
    def table(self) -> str:
        return qualified(self.schema, self.table_name)

    @property
    def requirement(self) -> str:
        if self.kind == "f":
            return f"every row of {self.table} has its row in {self.references}"
        return f"every row of {self.table} satisfies {self.definition}"

    @property
    def failing_what(self) -> str:
        return f"row(s) point at no row of {self.references}" if self.kind == "f" else "row(s) break it"

    def failing_sql(self) -> str:
        if self.kind == "f":
            assert self.references is not None
            return orphans_sql(self.table, self.columns, self.references, self.ref_columns)
        assert self.expression is not None
        return check_violations_sql(self.table, self.expression)


class Options(CheckOptions):
    precondition_seconds: float = Field(
        default=5.0, gt=0, le=600,
        description="Time spent at most counting the rows that would make VALIDATE fail, over all constraints; "
                    "a constraint not counted in time gets a manual fix.")


@dataclass(frozen=True)
class Facts:
    constraints: tuple[NotValidConstraint, ...]
    preconditions: dict[int, Precondition]  # by constraint oid


class NotValidConstraintCheck(Check):
    id = "postgres.not-valid-constraint"
    engine = "postgres"
    title = "Constraint never validated (NOT VALID)"
    severity = Severity.MEDIUM
    fix_availability = FixAvailability.ALWAYS
    Options = Options
    rationale = (
        "ADD CONSTRAINT ... NOT VALID checks new rows only. Until VALIDATE CONSTRAINT runs, existing rows may "
        "break it, the planner cannot use a CHECK for constraint exclusion, and a restore of a dump may fail."
    )

    async def gather(self, session, scope: Scope) -> Facts:
        constraints = tuple(NotValidConstraint(**{**dict(r), "columns": tuple(r["columns"]),
                                                  "ref_columns": tuple(r["ref_columns"])})
                            for r in await session.fetch(QUERY))
        budget = scope.options.precondition_seconds
        deadline = time.monotonic() + budget
        preconditions: dict[int, Precondition] = {}
        for con in constraints:  # one set-based count per constraint, all within one budget
            left = deadline - time.monotonic()
            if left <= 0:
                preconditions[con.oid] = out_of_budget(con.requirement, con.failing_what, budget)
                continue
            preconditions[con.oid] = await count_failing(
                session, con.failing_sql(), requirement=con.requirement, failing_what=con.failing_what, timeout_s=left)
        return Facts(constraints, preconditions)

    def evaluate(self, facts: Facts, scope: Scope) -> list[Finding]:
        findings = []
        for con in facts.constraints:
            label = "foreign key" if con.kind == "f" else "check constraint"
            rows = f"about {int(con.rows_estimate):,} rows" if con.rows_estimate >= 0 else "rows never counted"
            lock = f"SHARE UPDATE EXCLUSIVE on {con.table} (reads and writes go on) while it scans {rows}"
            if con.references:
                lock += f"; ROW SHARE on {con.references}"
            precondition = facts.preconditions.get(con.oid) or Precondition(
                con.requirement, con.failing_what, None, unknown="not counted")
            validate = sql(f"ALTER TABLE {con.table} VALIDATE CONSTRAINT {quote_ident(con.name)};")
            if precondition.holds:
                fix = Fix(summary=f"Validate {con.name}", steps=(validate,), safety=FixSafety.SAFE, lock=lock,
                          notes=precondition.sentence())
            else:
                # VALIDATE would fail (or may): the rows come first, and what to do with them is a human's call.
                fix = Fix(
                    summary=f"Correct the rows that break {con.name}, then validate it (manual)",
                    steps=(sql(f"{con.failing_sql()};", "the rows VALIDATE would fail on: correct or delete them"),
                           validate),
                    safety=FixSafety.MANUAL, lock=lock, notes=precondition.sentence(),
                )
            findings.append(self.finding(
                scope, object=f"{con.table}.{quote_ident(con.name)}",
                title=f"{label} {con.name} on {con.table_name} is NOT VALID",
                message=(f"The {label} {quote_ident(con.name)} on {con.table} ({con.definition}) was never validated: "
                         f"rows written before it was added are not known to satisfy it. {precondition.sentence()}"),
                evidence={"constraint": con.name, "type": label, "definition": con.definition, "table": con.table,
                          "references": con.references, "rows_estimate": con.rows_estimate if con.rows_estimate >= 0 else None,
                          "precondition": precondition.evidence()},
                fix=fix,
            ))
        return findings
