"""postgres.duplicate-index: two indexes with the same definition on the same table."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from checks.contract import Check, Scope
from checks.model import Finding, FixAvailability, Severity
from checks.postgres._catalog import Catalog, CatalogSnapshot, Index
from checks.postgres._fixes import drop_index_fix
from checks.units import human_bytes


@dataclass(frozen=True)
class Facts:
    catalog: Catalog


def duplicate_groups(snapshot: Catalog) -> list[list[Index]]:
    """Indexes alike in every respect that matters to reads and constraints: table, method, key
    and INCLUDE columns, uniqueness, operator classes, collations, sort options, expressions and predicate.

    A partition's indexes attached from its parent take part, so an index created on the partition
    by hand that repeats the attached one is found; a group of attached indexes only is judged at the parent."""
    groups: dict[tuple, list[Index]] = defaultdict(list)
    for index in snapshot.indexes:
        if index.valid and index.table_oid in snapshot.tables:
            groups[index.signature].append(index)
    return [sorted(g, key=lambda i: i.oid) for g in groups.values()
            if len(g) > 1 and sum(not i.attached for i in g) >= (1 if any(i.attached for i in g) else 2)]


def keeper(group: list[Index], protected: dict[int, str]) -> Index:
    """The index to keep: one attached from the parent (it cannot be dropped alone), else one a
    constraint needs, else the oldest."""
    return next((i for i in group if i.attached), None) or next((i for i in group if i.oid in protected), group[0])


class DuplicateIndex(Check):
    id = "postgres.duplicate-index"
    needs = (CatalogSnapshot,)
    engine = "postgres"
    title = "Duplicate index"
    severity = Severity.MEDIUM
    fix_availability = FixAvailability.SOMETIMES
    rationale = (
        "An identical second index serves no query the first does not, yet every insert and update writes both, "
        "and both take disk, memory and vacuum time."
    )

    async def gather(self, session, scope: Scope) -> Facts:
        return Facts(await self.fact(CatalogSnapshot, session, scope))

    def evaluate(self, facts: Facts, scope: Scope) -> list[Finding]:
        snapshot = facts.catalog
        protected = snapshot.protected_indexes()
        findings = []
        for group in duplicate_groups(snapshot):
            kept = keeper(group, protected)
            table = snapshot.tables[kept.table_oid]
            for index in group:
                if index is kept or index.attached:
                    continue
                evidence = {
                    "index": {"definition": index.definition, "bytes": index.bytes, "size": human_bytes(index.bytes)},
                    "duplicate_of": {"definition": kept.definition, "bytes": kept.bytes, "size": human_bytes(kept.bytes)},
                }
                fix = None
                message = f"{index.qualified} has the same definition as {kept.qualified} on {table.qualified}."
                if kept.attached:
                    message += " The latter is attached from the parent table's partitioned index."
                    evidence["duplicate_of"]["attached_from_parent"] = True
                if index.oid in protected:
                    # Both are needed by constraints: dropping one means dropping a constraint, never offered here.
                    evidence["constraints"] = {index.name: protected[index.oid], kept.name: protected.get(kept.oid)}
                    message += " Both back constraints: removing one means dropping a constraint; review it by hand."
                else:
                    fix = drop_index_fix(index, table, f"Drop {index.name} (same as {kept.name})")
                    message += f" Dropping it frees {human_bytes(index.bytes)}."
                findings.append(self.finding(
                    scope, object=index.qualified, key=kept.name,
                    title=f"{index.name} duplicates {kept.name}",
                    message=message, evidence=evidence, fix=fix,
                ))
        return findings
