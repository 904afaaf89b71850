"""postgres.invalid-index: indexes marked invalid (indisvalid = false), typically left by a
CREATE INDEX CONCURRENTLY or REINDEX CONCURRENTLY that failed or was cancelled. A unique one is
often invalid because of duplicates, and building it again fails on them: they are counted first."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from checks.actions.journal import Journal
from checks.contract import Check, Scope
from checks.model import Finding, Fix, FixAvailability, FixSafety, Severity
from checks.postgres._catalog import Catalog, CatalogSnapshot, Index, concurrent_definition
from checks.postgres._fixes import CONCURRENT_BUILD_LOCK, sql
from checks.postgres._preconditions import Precondition, count_failing, duplicates_sql, out_of_budget
from checks.postgres.executor import concurrent_build, name_parts
from checks.units import human_bytes


@dataclass(frozen=True)
class Build:
    """An index build a dbvitals fix journaled and never finished."""

    entry: str
    schema: str | None
    name: str
    started_at: str
    user: str
    state: str


@dataclass(frozen=True)
class Facts:
    catalog: Catalog
    builds: tuple[Build, ...] = ()
    journal_problem: str | None = None
    duplicates: dict[int, Precondition] = field(default_factory=dict)  # by index oid: unique ones only


# Each key as the index has it (a column or an expression), to group the table's rows by.
KEYS_QUERY = """
SELECT i.indexrelid::int8 AS oid,
       ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true) FROM generate_series(1, i.indnkeyatts) k ORDER BY k) AS keys
FROM pg_index i WHERE i.indexrelid = ANY($1::oid[])
"""
# Time spent counting duplicates at most, over all invalid unique indexes of a run.
DUPLICATES_BUDGET_S = 5.0


def _requirement(index: Index) -> str:
    return f"no two rows share a key of the unique index {index.name}"


async def count_duplicates(session: Any, catalog: Catalog, indexes: list[Index]) -> dict[int, Precondition]:
    if not indexes:
        return {}
    keys = {r["oid"]: tuple(r["keys"]) for r in await session.fetch(KEYS_QUERY, [i.oid for i in indexes])}
    deadline = time.monotonic() + DUPLICATES_BUDGET_S
    counted: dict[int, Precondition] = {}
    for index in indexes:  # one GROUP BY per invalid unique index
        left = deadline - time.monotonic()
        if left <= 0:
            counted[index.oid] = out_of_budget(_requirement(index), "duplicate keys", DUPLICATES_BUDGET_S)
            continue
        table = catalog.tables[index.table_oid].qualified
        counted[index.oid] = await count_failing(
            session, duplicates_sql(table, keys[index.oid], index.predicate),
            requirement=_requirement(index), failing_what="duplicate keys", timeout_s=left)
    return counted


def unfinished_builds(journal_path: Any, target: str, url: str) -> tuple[tuple[Build, ...], str | None]:
    """The index builds of this target's journal entries that did not finish (latest first)."""
    if journal_path is None:
        return (), None
    try:
        entries = Journal(journal_path).entries()
    except OSError as exc:
        return (), f"the fix journal {journal_path} could not be read ({exc.strerror or exc})"
    builds = []
    for entry in reversed(entries):
        if entry.target != target or entry.url != url or entry.outcome not in (None, "failed"):
            continue
        for step in entry.steps:
            build = concurrent_build(str(step.get("command", "")))
            if build and build.name:
                schema, _ = name_parts(build.table)
                builds.append(Build(entry.id, schema, build.name, entry.started_at, entry.user, entry.state))
    return tuple(builds), None


class InvalidIndex(Check):
    id = "postgres.invalid-index"
    needs = (CatalogSnapshot,)
    engine = "postgres"
    title = "Invalid index"
    severity = Severity.HIGH
    fix_availability = FixAvailability.ALWAYS
    rationale = (
        "The planner never uses an invalid index, yet writes may still maintain it: the query it was built for "
        "stays slow while inserts and updates pay for it. It also blocks re-running the same migration."
    )

    async def gather(self, session, scope: Scope) -> Facts:
        builds, problem = unfinished_builds(scope.journal, scope.target, scope.config.masked_url)
        catalog = await self.fact(CatalogSnapshot, session, scope)
        unique = [i for i in catalog.judged_indexes() if not i.valid and i.is_unique and i.kind == "i"]
        return Facts(catalog, builds, problem, await count_duplicates(session, catalog, unique))

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
            build = next((b for b in facts.builds if b.name == index.name and b.schema in (None, index.schema)), None)
            if build is not None:
                evidence["left_by"] = {"journal_entry": build.entry, "started_at": build.started_at,
                                       "user": build.user, "state": build.state}
                message += (f" It was left by dbvitals: journal entry {build.entry} (started {build.started_at} by "
                            f"{build.user}) was building it and did not finish. Running that fix again drops it and "
                            f"builds it anew; `dbvitals undo {build.entry}` drops it.")
            elif facts.journal_problem:
                evidence["left_by"] = f"unknown: {facts.journal_problem}"
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
            duplicates = facts.duplicates.get(index.oid)
            if index.is_unique and index.kind == "i" and duplicates is not None:
                evidence["precondition"] = duplicates.evidence()
                message += f" {duplicates.sentence()}"
                if not duplicates.holds:
                    fix = _duplicates_first(index, fix, duplicates)
            findings.append(self.finding(
                scope, object=index.qualified, title=f"{index.name} is invalid",
                message=message, evidence=evidence, fix=fix,
            ))
        return findings


def _duplicates_first(index: Index, rebuild: Fix, duplicates: Precondition) -> Fix:
    """The rebuild would fail again on the duplicates (or may): they come first, by hand."""
    listing = sql(f"{duplicates.query};", "the duplicated keys, each with how many rows hold it: keep one row of each")
    return Fix(summary=f"Remove the duplicate keys of {index.name}, then rebuild it (manual)",
               steps=(listing, *rebuild.steps), safety=FixSafety.MANUAL, lock=rebuild.lock, notes=duplicates.sentence())


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
