"""postgres.redundant-index: an index another one makes unnecessary (pg-index-health's
"intersected indexes", narrowed to the cases where dropping one is safe to suggest):

- a btree whose key columns are a leading prefix of another btree's, with the same predicate;
- a hash index on a column that leads a btree with the same predicate (the btree answers equality too);
- a unique index whose leading columns are the primary key's: its uniqueness follows from the key's,
  and lookups by the key use the primary key.

A partition's index attached from its parent counts as a cover, never as the redundant one."""

from __future__ import annotations

from dataclasses import dataclass

from checks.contract import Check, Scope
from checks.model import Finding, FixAvailability, Severity
from checks.postgres._catalog import Catalog, CatalogSnapshot, Index
from checks.postgres._fixes import drop_index_fix
from checks.postgres.duplicate_index import duplicate_groups, keeper
from checks.units import human_bytes


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


def hash_covered(btree: Index, hashed: Index) -> bool:
    """A hash index answers only `col = value`; a btree led by the same column (same collation) answers it too."""
    return (hashed.method == "hash" and btree.method == "btree" and btree.valid and btree.table_oid == hashed.table_oid
            and hashed.expressions is None and btree.expressions is None and btree.predicate == hashed.predicate
            and hashed.key_count == 1 and btree.key_columns[:1] == hashed.key_columns
            and btree.collations[:1] == hashed.collations[:1])


def implied_by_primary_key(primary: Index, unique: Index) -> bool:
    """A unique btree on the primary key's columns plus others: unique because the key is."""
    n = primary.key_count
    return (primary.is_primary and primary.valid and unique.is_unique and not unique.is_primary
            and not unique.is_exclusion and unique.method == "btree" and unique.valid
            and unique.table_oid == primary.table_oid and unique.predicate is None and unique.expressions is None
            and 0 not in primary.key_columns and unique.key_count > n
            and set(unique.key_columns[:n]) == set(primary.key_columns))


REASONS = {
    "prefix": "is a leading prefix of",
    "hash": "is a hash index on the column that leads",
    "primary_key": "is unique on the primary key's columns and more, so its uniqueness follows from",
}


def redundant_pairs(snapshot: Catalog) -> list[tuple[Index, Index, str]]:
    """(redundant, covering, reason) triples; each redundant index named once, against its widest cover."""
    pairs = []
    for table_oid in {i.table_oid for i in snapshot.judged_indexes()}:
        indexes = snapshot.indexes_of(table_oid)
        for narrower in indexes:
            if narrower.attached:
                continue  # judged at the parent
            covering = [w for w in indexes if covers(w, narrower)]
            if covering:
                pairs.append((narrower, max(covering, key=lambda w: (w.key_count, -w.oid)), "prefix"))
                continue
            hashing = [w for w in indexes if hash_covered(w, narrower)]
            if hashing:
                pairs.append((narrower, min(hashing, key=lambda w: (w.key_count, w.oid)), "hash"))
                continue
            primary = next((w for w in indexes if implied_by_primary_key(w, narrower)), None)
            if primary is not None:
                pairs.append((narrower, primary, "primary_key"))
    return sorted(pairs, key=lambda p: p[0].oid)


class RedundantIndex(Check):
    id = "postgres.redundant-index"
    needs = (CatalogSnapshot,)
    engine = "postgres"
    title = "Redundant index (covered by another)"
    severity = Severity.LOW
    fix_availability = FixAvailability.SOMETIMES
    rationale = (
        "A btree on (a) is served by a btree on (a, b) with the same predicate, a hash on (a) by a btree led by a, "
        "and a unique (id, b) by the primary key on id: the covered index only adds write amplification, disk and "
        "cache pressure."
    )

    async def gather(self, session, scope: Scope) -> Facts:
        return Facts(await self.fact(CatalogSnapshot, session, scope))

    def evaluate(self, facts: Facts, scope: Scope) -> list[Finding]:
        snapshot = facts.catalog
        protected = snapshot.protected_indexes()
        # An extra copy of a duplicated index is postgres.duplicate-index's; only the one kept is judged here.
        copies = {i.oid for g in duplicate_groups(snapshot) for i in g if i is not keeper(g, protected)}
        findings = []
        for narrower, wider, reason in redundant_pairs(snapshot):
            if not narrower.valid or narrower.oid in copies:
                continue  # invalid ones are postgres.invalid-index's
            table = snapshot.tables[narrower.table_oid]
            evidence = {
                "index": {"definition": narrower.definition, "bytes": narrower.bytes, "size": human_bytes(narrower.bytes)},
                "covered_by": {"definition": wider.definition, "bytes": wider.bytes, "size": human_bytes(wider.bytes)},
                "reason": reason,
            }
            message = f"{narrower.qualified} {REASONS[reason]} {wider.qualified} on {table.qualified}."
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
