"""postgres.no-primary-key: tables without a primary key. A partitioned table without one is
reported, and so is each of its partitions that has none of its own (pg-index-health reports the
default partition too): rows there are as unaddressable as anywhere else."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field

from checks.contract import Check, CheckOptions, Scope
from checks.model import Finding, Fix, FixAvailability, FixSafety, Severity
from checks.postgres._catalog import Catalog, CatalogSnapshot, Index, Table, quote_ident
from checks.postgres._fixes import alter_type_lock, sql
from checks.units import human_bytes


class Options(CheckOptions):
    min_rows: int = Field(default=0, ge=0, description="Ignore tables with fewer estimated rows than this.")


@dataclass(frozen=True)
class Facts:
    catalog: Catalog


def promotable_index(snapshot: Catalog, table: Table) -> Index | None:
    """A valid, unique, non-partial btree on plain NOT NULL columns: it can become the primary key
    without a table scan (ADD PRIMARY KEY USING INDEX)."""
    columns = snapshot.columns.get(table.oid, {})
    for index in sorted(snapshot.indexes_of(table.oid), key=lambda i: (i.key_count, i.oid)):
        if (index.is_unique and index.valid and index.method == "btree" and index.predicate is None
                and index.expressions is None and not index.include_columns
                and all(n and columns[n].not_null for n in index.key_columns)):
            return index
    return None


class NoPrimaryKey(Check):
    id = "postgres.no-primary-key"
    needs = (CatalogSnapshot,)
    engine = "postgres"
    title = "Table without a primary key"
    severity = Severity.MEDIUM
    fix_availability = FixAvailability.ALWAYS
    Options = Options
    rationale = (
        "Without a primary key rows cannot be addressed reliably: duplicates creep in, logical replication "
        "cannot replicate updates and deletes (replica identity), and ORMs and tools misbehave."
    )

    async def gather(self, session, scope: Scope) -> Facts:
        return Facts(await self.fact(CatalogSnapshot, session, scope))

    def evaluate(self, facts: Facts, scope: Scope) -> list[Finding]:
        snapshot = facts.catalog
        findings = []
        for table in snapshot.judged_tables():
            if snapshot.primary_key(table.oid) is not None or (table.rows or 0) < scope.options.min_rows:
                continue
            candidate = promotable_index(snapshot, table)
            evidence = {
                "rows_estimate": table.rows,
                "bytes": table.bytes,
                "size": human_bytes(table.bytes),
                "replica_identity": {"d": "default (primary key: none)", "n": "nothing", "f": "full",
                                     "i": "index"}.get(table.replica_identity, table.replica_identity),
                "unique_indexes": [i.definition for i in snapshot.indexes_of(table.oid) if i.is_unique],
                "partitioned": table.partitioned,
            }
            if table.partitioned:
                evidence["partitions"] = len(snapshot.partitions.get(table.oid, ()))
            findings.append(self.finding(
                scope, object=table.qualified, title=f"{table.name} has no primary key",
                message=f"{table.qualified} ({human_bytes(table.bytes)}, ~{table.rows or 0:,} rows) has no primary key"
                        + (f"; its unique index {candidate.name} on NOT NULL columns can become one." if candidate else "."),
                evidence=evidence, fix=_fix(snapshot, table, candidate),
            ))
            if table.partitioned:
                findings.extend(self._partitions(scope, snapshot, table, table))
        return findings

    def _partitions(self, scope: Scope, snapshot: Catalog, top: Table, parent: Table) -> list[Finding]:
        """The partitions under `top` (itself without a primary key) that have none of their own."""
        found = []
        for oid in snapshot.partitions.get(parent.oid, ()):
            part = snapshot.tables[oid]
            if snapshot.primary_key(oid) is not None:
                continue
            if part.partitioned:
                found.extend(self._partitions(scope, snapshot, top, part))
                continue
            found.append(self.finding(
                scope, object=part.qualified, severity=Severity.LOW,
                title=f"{part.name} (a partition of {top.name}) has no primary key",
                message=f"{part.qualified} ({human_bytes(part.bytes)}, ~{part.rows or 0:,} rows) is a partition of "
                        f"{top.qualified}, which has no primary key, and has none of its own.",
                evidence={"rows_estimate": part.rows, "bytes": part.bytes, "size": human_bytes(part.bytes),
                          "partition_of": top.qualified},
                fix=Fix(summary=f"Give {top.name} a primary key (its partitions get it)", steps=(),
                        safety=FixSafety.MANUAL,
                        notes=f"A primary key on {top.qualified} that includes the partition key columns is created "
                              f"on every partition, this one included; see the finding on {top.qualified}."),
            ))
        return found


def _fix(snapshot: Catalog, table: Table, candidate: Index | None) -> Fix:
    constraint = quote_ident(f"{table.name}_pkey")
    if candidate is not None and not table.partitioned:
        return Fix(
            summary=f"Promote {candidate.name} to the primary key",
            steps=(sql(f"ALTER TABLE {table.qualified} ADD CONSTRAINT {constraint} PRIMARY KEY USING INDEX "
                       f"{quote_ident(candidate.name)};"),),
            safety=FixSafety.UNSAFE,
            lock=f"ACCESS EXCLUSIVE on {table.qualified}, briefly: no scan, the columns are already NOT NULL",
            inverse=(sql(f"ALTER TABLE {table.qualified} DROP CONSTRAINT {constraint};"),
                     sql(candidate.definition.replace("CREATE UNIQUE INDEX ", "CREATE UNIQUE INDEX CONCURRENTLY ", 1) + ";",
                         transactional=False)),
            notes="The index is renamed to the constraint's name.",
        )
    taken = {c.name for c in snapshot.columns.get(table.oid, {}).values()}
    column = next(n for n in ("id", f"{table.name}_id", f"{table.name}_pk") if n not in taken)
    notes = ("A partitioned table's primary key must include the partition key columns; choose the key by hand."
             if table.partitioned else
             "Prefer a natural key if the data has one; otherwise this adds a bigint identity column.")
    return Fix(
        summary=f"Add a primary key to {table.name}",
        steps=(sql(f"ALTER TABLE {table.qualified} ADD COLUMN {quote_ident(column)} bigint GENERATED ALWAYS AS IDENTITY "
                   "PRIMARY KEY;"),),
        safety=FixSafety.MANUAL,
        lock=alter_type_lock(table),
        notes=notes,
    )
