"""postgres.intersected-fk: foreign keys of one table to the same table whose column sets overlap
without being the same constraint — (a) and (a, b), or (a, b) and (b, a). One usually makes the
other pointless, or they disagree about what the reference is."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

from checks.contract import Check, Scope
from checks.model import Finding, Severity
from checks.postgres._catalog import Catalog, CatalogSnapshot, quote_ident
from checks.postgres.duplicate_fk import describe, judged_foreign_keys


@dataclass(frozen=True)
class Facts:
    catalog: Catalog


def intersected_pairs(snapshot: Catalog) -> list[tuple]:
    by_table: dict[tuple[int, int], list] = {}
    for fk in judged_foreign_keys(snapshot):
        by_table.setdefault((fk.table_oid, fk.ref_table_oid), []).append(fk)
    pairs = []
    for fks in by_table.values():
        for a, b in combinations(sorted(fks, key=lambda c: c.name), 2):
            if (a.columns, a.ref_columns) != (b.columns, b.ref_columns) and set(a.columns) & set(b.columns):
                pairs.append((a, b))
    return pairs


class IntersectedFk(Check):
    id = "postgres.intersected-fk"
    needs = (CatalogSnapshot,)
    engine = "postgres"
    title = "Foreign keys with overlapping columns"
    severity = Severity.LOW
    rationale = (
        "Two foreign keys from one table to another sharing columns — (a) and (a, b), or the same columns in "
        "another order — are checked twice on every write; usually one is left over from a migration."
    )

    async def gather(self, session, scope: Scope) -> Facts:
        return Facts(await self.fact(CatalogSnapshot, session, scope))

    def evaluate(self, facts: Facts, scope: Scope) -> list[Finding]:
        snapshot = facts.catalog
        findings = []
        for a, b in intersected_pairs(snapshot):
            table = snapshot.tables[a.table_oid]
            shared = snapshot.column_names(table.oid, [n for n in a.columns if n in set(b.columns)])
            findings.append(self.finding(
                scope, object=f"{table.qualified}.{quote_ident(a.name)}", key=b.name,
                title=f"{a.name} and {b.name} overlap",
                message=(f"{describe(snapshot, a)} and {describe(snapshot, b)} share {', '.join(shared)}. Keep the one "
                         "that expresses the reference and drop the other, or say why both are needed."),
                evidence={"foreign_keys": [describe(snapshot, a), describe(snapshot, b)], "shared_columns": list(shared)},
            ))
        return findings
