"""postgres.invalid-index: indexes marked invalid (indisvalid = false), typically left by a
CREATE INDEX CONCURRENTLY or REINDEX CONCURRENTLY that failed or was cancelled."""

from __future__ import annotations

from dataclasses import dataclass

from checks.engine import Check, Scope
from checks.model import Engine, Finding, Fix, FixAvailability, FixSafety, Severity
from checks.postgres._catalog import Catalog, CatalogSnapshot, Index, concurrent_definition, human_bytes
from checks.postgres._fixes import CONCURRENT_BUILD_LOCK, sql


@dataclass(frozen=True)
class Facts:
    catalog: Catalog


class InvalidIndex(Check):
    id = "postgres.invalid-index"
    needs = (CatalogSnapshot,)
    engine = Engine.POSTGRES
    title = "Invalid index"
    severity = Severity.HIGH
    fix_availability = FixAvailability.ALWAYS
    rationale = (
        "The planner never uses an invalid index, yet writes may still maintain it: the query it was built for "
        "stays slow while inserts and updates pay for it. It also blocks re-running the same migration."
    )

    async def gather(self, session, scope: Scope) -> Facts:
        return Facts(await self.fact(CatalogSnapshot, session, scope))

    def evaluate(self, facts: Facts, scope: Scope) -> list[Finding]:
        snapshot = facts.catalog
        protected = snapshot.protected_indexes()
        findings = []
        for index in snapshot.judged_indexes():
            if index.valid:
                continue
            table = snapshot.tables[index.table_oid]
            state = "being built or dropped (not ready for writes)" if not index.ready else "ready for writes but not for reads"
            evidence = {"definition": index.definition, "indisvalid": False, "indisready": index.ready,
                        "bytes": index.bytes, "size": human_bytes(index.bytes)}
            message = f"{index.qualified} on {table.qualified} is invalid ({state}): no query can use it."
            if index.kind == "I":
                evidence["partitions"] = [snapshot.tables[o].qualified for o in snapshot.partitions.get(table.oid, ())]
                message += " A partitioned index stays invalid until every partition has an index attached to it."
                fix = Fix(
                    summary=f"Attach an index on every partition to {index.name}",
                    steps=(sql(f"SELECT c.oid::regclass AS partition FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                               f"WHERE i.inhparent = {table.oid} AND NOT EXISTS (SELECT 1 FROM pg_inherits x JOIN pg_index ix "
                               f"ON ix.indexrelid = x.inhrelid WHERE x.inhparent = {index.oid} AND ix.indrelid = c.oid);",
                               "the partitions lacking an attached index"),),
                    safety=FixSafety.MANUAL,
                    lock=CONCURRENT_BUILD_LOCK.format(table="each partition"),
                    notes=f"For each partition listed: CREATE INDEX CONCURRENTLY on it with {index.name}'s columns, then "
                          f"ALTER INDEX {index.qualified} ATTACH PARTITION <that index>.",
                )
            elif index.oid in protected:
                evidence["constraint"] = protected[index.oid]
                fix = Fix(
                    summary=f"Rebuild {index.name} in place",
                    steps=(sql(f"REINDEX INDEX CONCURRENTLY {index.qualified};", transactional=False),),
                    safety=FixSafety.SAFE,
                    lock=CONCURRENT_BUILD_LOCK.format(table=table.qualified),
                    notes=f"It {protected[index.oid]}, so it is rebuilt rather than dropped.",
                )
            else:
                fix = _drop_and_rebuild(index, table.qualified)
            findings.append(self.finding(
                scope, object=index.qualified, title=f"{index.name} is invalid",
                message=message, evidence=evidence, fix=fix,
            ))
        return findings


def _drop_and_rebuild(index: Index, table: str) -> Fix:
    unique = index.is_unique
    return Fix(
        summary=f"Drop {index.name} and build it again, concurrently",
        steps=(
            sql(f"DROP INDEX CONCURRENTLY {index.qualified};", transactional=False),
            sql(concurrent_definition(index.definition) + ";", transactional=False),
        ),
        # A unique build fails again if duplicates caused the first failure; meanwhile nothing enforces it.
        safety=FixSafety.UNSAFE if unique else FixSafety.SAFE,
        lock=CONCURRENT_BUILD_LOCK.format(table=table),
        notes=("Unique: between the drop and the rebuild nothing enforces uniqueness, and the rebuild fails "
               "again if duplicate values caused the first failure — look for them first.") if unique else None,
    )
