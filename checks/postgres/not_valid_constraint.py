"""postgres.not-valid-constraint: CHECK and FOREIGN KEY constraints added NOT VALID and never
validated. New rows are checked; the rows already there are not, and the planner cannot trust them."""

from __future__ import annotations

from dataclasses import dataclass

from checks.contract import Check, Scope
from checks.model import Finding, Fix, FixAvailability, FixSafety, Severity
from checks.postgres._catalog import qualified, quote_ident
from checks.postgres._fixes import sql

# A partition's copy of its parent's constraint is judged at the parent (coninhcount > 0 on the copy).
QUERY = """
SELECT con.oid, n.nspname AS schema, c.relname AS table_name, con.conname AS name, con.contype::text AS kind,
       pg_get_constraintdef(con.oid) AS definition,
       CASE WHEN con.confrelid <> 0 THEN con.confrelid::regclass::text END AS references,
       c.reltuples::float8 AS rows_estimate
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

    @property
    def table(self) -> str:
        return qualified(self.schema, self.table_name)


@dataclass(frozen=True)
class Facts:
    constraints: tuple[NotValidConstraint, ...]


class NotValidConstraintCheck(Check):
    id = "postgres.not-valid-constraint"
    engine = "postgres"
    title = "Constraint never validated (NOT VALID)"
    severity = Severity.MEDIUM
    fix_availability = FixAvailability.ALWAYS
    rationale = (
        "ADD CONSTRAINT ... NOT VALID checks new rows only. Until VALIDATE CONSTRAINT runs, existing rows may "
        "break it, the planner cannot use a CHECK for constraint exclusion, and a restore of a dump may fail."
    )

    async def gather(self, session, scope: Scope) -> Facts:
        return Facts(tuple(NotValidConstraint(**dict(r)) for r in await session.fetch(QUERY)))

    def evaluate(self, facts: Facts, scope: Scope) -> list[Finding]:
        findings = []
        for con in facts.constraints:
            label = "foreign key" if con.kind == "f" else "check constraint"
            rows = f"about {int(con.rows_estimate):,} rows" if con.rows_estimate >= 0 else "rows never counted"
            lock = f"SHARE UPDATE EXCLUSIVE on {con.table} (reads and writes go on) while it scans {rows}"
            if con.references:
                lock += f"; ROW SHARE on {con.references}"
            findings.append(self.finding(
                scope, object=f"{con.table}.{quote_ident(con.name)}",
                title=f"{label} {con.name} on {con.table_name} is NOT VALID",
                message=(f"The {label} {quote_ident(con.name)} on {con.table} ({con.definition}) was never validated: "
                         "rows written before it was added are not known to satisfy it."),
                evidence={"constraint": con.name, "type": label, "definition": con.definition, "table": con.table,
                          "references": con.references, "rows_estimate": con.rows_estimate if con.rows_estimate >= 0 else None},
                fix=Fix(
                    summary=f"Validate {con.name}",
                    steps=(sql(f"ALTER TABLE {con.table} VALIDATE CONSTRAINT {quote_ident(con.name)};"),),
                    safety=FixSafety.SAFE,
                    lock=lock,
                    notes="If a row breaks it, VALIDATE fails and changes nothing: the error names the constraint; "
                          "find and correct those rows first.",
                ),
            ))
        return findings
