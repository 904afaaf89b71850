"""postgres.duplicate-fk: two foreign keys on the same columns pointing at the same columns of the
same table. Each is checked on every write to either table, and each asks for the same index."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from checks.contract import Check, Scope
from checks.model import Finding, Fix, FixAvailability, FixSafety, Severity
from checks.postgres._catalog import Catalog, CatalogSnapshot, Constraint, quote_ident
from checks.postgres._fixes import sql

# Only the definitions of the constraints found, for the evidence and the inverse.
DEFINITIONS_QUERY = "SELECT oid, pg_get_constraintdef(oid) AS definition FROM pg_constraint WHERE oid = ANY ($1::oid[])"


@dataclass(frozen=True)
class Facts:
    catalog: Catalog
    definitions: dict[int, str]


def judged_foreign_keys(snapshot: Catalog) -> list[Constraint]:
    """Foreign keys judged on their own: a partition's copy of its parent's is judged at the parent."""
    return [fk for fk in snapshot.foreign_keys
            if not fk.inherited and fk.table_oid in snapshot.tables and not snapshot.tables[fk.table_oid].is_partition]


def duplicate_fk_groups(snapshot: Catalog) -> list[list[Constraint]]:
    groups: dict[tuple, list[Constraint]] = defaultdict(list)
    for fk in judged_foreign_keys(snapshot):
        groups[(fk.table_oid, fk.columns, fk.ref_table_oid, fk.ref_columns)].append(fk)
    return [sorted(g, key=lambda c: c.oid) for g in groups.values() if len(g) > 1]


def describe(snapshot: Catalog, fk: Constraint) -> str:
    table, ref = snapshot.tables[fk.table_oid], snapshot.tables[fk.ref_table_oid]
    return (f"{quote_ident(fk.name)} {table.qualified}({', '.join(snapshot.column_names(table.oid, fk.columns))}) → "
            f"{ref.qualified}({', '.join(snapshot.column_names(ref.oid, fk.ref_columns))})")


class DuplicateFk(Check):
    id = "postgres.duplicate-fk"
    needs = (CatalogSnapshot,)
    engine = "postgres"
    title = "Duplicated foreign key"
    severity = Severity.MEDIUM
    fix_availability = FixAvailability.ALWAYS
    rationale = (
        "A second foreign key on the same columns to the same key enforces nothing new: every insert and update "
        "checks both, every delete on the referenced table fires both, and tools propose an index for each."
    )

    async def gather(self, session, scope: Scope) -> Facts:
        snapshot = await self.fact(CatalogSnapshot, session, scope)
        wanted = [fk.oid for group in duplicate_fk_groups(snapshot) for fk in group]
        rows = await session.fetch(DEFINITIONS_QUERY, wanted) if wanted else []
        return Facts(snapshot, {r["oid"]: r["definition"] for r in rows})

    def evaluate(self, facts: Facts, scope: Scope) -> list[Finding]:
        snapshot = facts.catalog
        findings = []
        for kept, *extras in duplicate_fk_groups(snapshot):
            table = snapshot.tables[kept.table_oid]
            for extra in extras:
                definition = facts.definitions.get(extra.oid)
                findings.append(self.finding(
                    scope, object=f"{table.qualified}.{quote_ident(extra.name)}", key=kept.name,
                    title=f"{extra.name} duplicates {kept.name}",
                    message=(f"Foreign key {describe(snapshot, extra)} repeats {quote_ident(kept.name)}: the same "
                             "columns to the same key. Dropping it changes nothing that is enforced."),
                    evidence={"constraint": facts.definitions.get(extra.oid), "duplicate_of": facts.definitions.get(kept.oid),
                              "names": [extra.name, kept.name]},
                    fix=Fix(
                        summary=f"Drop the foreign key {extra.name} (same as {kept.name})",
                        steps=(sql(f"ALTER TABLE {table.qualified} DROP CONSTRAINT {quote_ident(extra.name)};"),),
                        safety=FixSafety.UNSAFE,
                        lock=(f"ACCESS EXCLUSIVE on {table.qualified} and SHARE ROW EXCLUSIVE on "
                              f"{snapshot.tables[extra.ref_table_oid].qualified}, for a moment (no scan)"),
                        inverse=(sql(f"ALTER TABLE {table.qualified} ADD CONSTRAINT {quote_ident(extra.name)} "
                                     f"{definition} NOT VALID;"),
                                 sql(f"ALTER TABLE {table.qualified} VALIDATE CONSTRAINT {quote_ident(extra.name)};"))
                        if definition else (),
                    ),
                ))
        return findings
