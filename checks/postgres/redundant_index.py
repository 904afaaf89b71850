"""postgres.redundant-index: a btree index whose key columns are a leading prefix of another's,
with the same predicate, so the longer index serves every query the shorter one does."""

from __future__ import annotations

from dataclasses import dataclass

from checks.engine import Check, Scope
from checks.model import Engine, Finding, FixAvailability, Severity
from checks.postgres._catalog import Catalog, Index, catalog, human_bytes
from checks.postgres._fixes import drop_index_fix
from checks.postgres.duplicate_index import duplicate_groups, keeper


@dataclass(frozen=True)
class Facts:
    catalog: Catalog


def covers(wider: Index, narrower: Index) -> bool:
    """Whether `wider` answers every lookup `narrower` can, so `narrower` adds only write cost."""
    if wider.oid == narrower.oid or wider.signature == narrower.signature:
        return False  # the same definition is postgres.duplicate-index's
    if wider.table_oid != narrower.table_oid or wider.method != narrower.method or wider.method != "btree":
        return False
    if not wider.valid or narrower.is_unique or narrower.is_exclusion:
        return False  # a unique index enforces something on its own columns
    if narrower.expressions is not None or wider.expressions is not None or wider.predicate != narrower.predicate:
        return False
    n = narrower.key_count
    if n > wider.key_count or wider.key_columns[:n] != narrower.key_columns:
        return False
    for attribute in ("opclasses", "collations", "options"):
        if getattr(wider, attribute)[:n] != getattr(narrower, attribute)[:n]:
            return False
    if not set(narrower.include_columns) <= set(wider.keys):
        return False
    if n == wider.key_count and not wider.is_unique and set(wider.include_columns) == set(narrower.include_columns):
        return wider.oid < narrower.oid  # equal up to INCLUDE order: keep the older one
    return True


def redundant_pairs(snapshot: Catalog) -> list[tuple[Index, Index]]:
    """(redundant, covering) pairs; each redundant index named once, against its widest cover."""
    pairs = []
    for table_oid in {i.table_oid for i in snapshot.judged_indexes()}:
        indexes = [i for i in snapshot.indexes_of(table_oid) if not i.attached]
        for narrower in indexes:
            covering = [w for w in indexes if covers(w, narrower)]
            if covering:
                pairs.append((narrower, max(covering, key=lambda w: (w.key_count, -w.oid))))
    return sorted(pairs, key=lambda p: p[0].oid)


class RedundantIndex(Check):
    id = "postgres.redundant-index"
    engine = Engine.POSTGRES
    title = "Redundant index (a prefix of another)"
    severity = Severity.LOW
    fix_availability = FixAvailability.SOMETIMES
    rationale = (
        "A btree on (a) is served by a btree on (a, b) with the same predicate: the shorter index only adds "
        "write amplification, disk and cache pressure."
    )

    async def gather(self, session, scope: Scope) -> Facts:
        return Facts(await catalog(session))

    def evaluate(self, facts: Facts, scope: Scope) -> list[Finding]:
        snapshot = facts.catalog
        protected = snapshot.protected_indexes()
        # An extra copy of a duplicated index is postgres.duplicate-index's; only the one kept is judged here.
        copies = {i.oid for g in duplicate_groups(snapshot) for i in g if i is not keeper(g, protected)}
        findings = []
        for narrower, wider in redundant_pairs(snapshot):
            if not narrower.valid or narrower.oid in copies:
                continue  # invalid ones are postgres.invalid-index's
            table = snapshot.tables[narrower.table_oid]
            evidence = {
                "index": {"definition": narrower.definition, "bytes": narrower.bytes, "size": human_bytes(narrower.bytes)},
                "covered_by": {"definition": wider.definition, "bytes": wider.bytes, "size": human_bytes(wider.bytes)},
            }
            message = f"{narrower.qualified} is a leading prefix of {wider.qualified} on {table.qualified}."
            fix = None
            if narrower.oid in protected:
                evidence["constraint"] = protected[narrower.oid]
                message += f" It {protected[narrower.oid]}, so it is not offered for dropping."
            else:
                fix = drop_index_fix(narrower, table, f"Drop {narrower.name} (covered by {wider.name})")
                message += (f" Dropping it frees {human_bytes(narrower.bytes)}; queries on its columns use "
                            f"{wider.name} ({human_bytes(wider.bytes)}), wider and so a little slower to scan.")
            findings.append(self.finding(
                scope, object=narrower.qualified, key=wider.name,
                title=f"{narrower.name} is covered by {wider.name}",
                message=message, evidence=evidence, fix=fix,
            ))
        return findings
