"""postgres.unused-index: indexes never scanned since the statistics began, with how long that is."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pydantic import Field

from checks.config import Duration, duration
from checks.contract import Check, CheckOptions, Scope
from checks.model import Finding, FixAvailability, Severity
from checks.postgres._catalog import Catalog, CatalogSnapshot
from checks.postgres._fixes import drop_index_fix
from checks.units import human_bytes

# A partition's index counts toward its parent's partitioned index: partitions are not judged one by one.
QUERY = """
SELECT coalesce(pg_partition_root(s.indexrelid)::oid, s.indexrelid) AS index_oid,
       sum(s.idx_scan)::bigint AS scans
FROM pg_stat_user_indexes s
GROUP BY 1
"""

HISTORY_QUERY = """
SELECT (SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()) AS stats_reset,
       pg_postmaster_start_time() AS server_started,
       now() AS now,
       pg_is_in_recovery() AS replica
"""


class Options(CheckOptions):
    min_history: Duration = Field(
        default=duration("7d"), description="Report only when the statistics cover at least this long (a week covers weekly jobs).")
    min_bytes: int = Field(default=0, ge=0, description="Ignore indexes smaller than this many bytes.")


@dataclass(frozen=True)
class History:
    stats_reset: dt.datetime | None
    server_started: dt.datetime
    now: dt.datetime
    replica: bool

    @property
    def since(self) -> dt.datetime:
        """When the counters started. A reset sets stats_reset; a crash discards the counters and
        leaves it empty, so without it the counters reach back at least to the server's start."""
        return self.stats_reset or self.server_started

    @property
    def covered(self) -> dt.timedelta:
        return self.now - self.since

    @property
    def source(self) -> str:
        return ("pg_stat_database.stats_reset" if self.stats_reset else
                "pg_postmaster_start_time() (statistics never reset; they may reach further back)")


@dataclass(frozen=True)
class Facts:
    catalog: Catalog
    scans: dict[int, int]
    history: History


class UnusedIndex(Check):
    id = "postgres.unused-index"
    needs = (CatalogSnapshot,)
    engine = "postgres"
    title = "Index never used"
    severity = Severity.LOW
    fix_availability = FixAvailability.SOMETIMES
    Options = Options
    rationale = (
        "An index no query has scanned still costs on every write, in disk and cache. Constraint-backing and "
        "unique indexes (they enforce rules), and indexes that serve a foreign key (deletes on the referenced "
        "table need them), are never reported."
    )

    async def gather(self, session, scope: Scope) -> Facts:
        snapshot = await self.fact(CatalogSnapshot, session, scope)
        rows = await session.fetch(QUERY)
        history = await session.fetchrow(HISTORY_QUERY)
        return Facts(snapshot, {r["index_oid"]: r["scans"] for r in rows}, History(**dict(history)))

    def evaluate(self, facts: Facts, scope: Scope) -> list[Finding]:
        snapshot, history, options = facts.catalog, facts.history, scope.options
        if history.covered < options.min_history:
            return []
        protected = snapshot.protected_indexes()
        fk_columns = {(fk.table_oid, frozenset(fk.columns)) for fk in snapshot.foreign_keys}
        findings = []
        for index in snapshot.judged_indexes():
            scans = facts.scans.get(index.oid)
            if scans is None or scans > 0 or not index.valid or index.is_unique or index.oid in protected:
                continue
            if index.bytes < options.min_bytes or _serves_foreign_key(index, fk_columns):
                continue
            table = snapshot.tables[index.table_oid]
            days = history.covered.total_seconds() / 86400
            findings.append(self.finding(
                scope, object=index.qualified,
                title=f"{index.name} was never scanned in {span(history.covered)}",
                message=(f"{index.qualified} on {table.qualified} ({human_bytes(index.bytes)}) has idx_scan = 0 since "
                         f"{history.since:%Y-%m-%d %H:%M %Z} ({span(history.covered)}). Counters are per server: "
                         "reads on replicas are counted there, not here."),
                evidence={
                    "definition": index.definition,
                    "bytes": index.bytes,
                    "size": human_bytes(index.bytes),
                    "idx_scan": scans,
                    "counted_since": history.since.isoformat(),
                    "counted_since_source": history.source,
                    "days_covered": round(days, 1),
                    "server_is_replica": history.replica,
                    "note": "an index created after that time has had less history than this",
                },
                fix=drop_index_fix(index, table, f"Drop {index.name}"),
            ))
        return findings


def span(delta: dt.timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.0f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.0f} hours"
    return f"{seconds / 60:.0f} minutes"


def _serves_foreign_key(index, fk_columns: set[tuple[int, frozenset[int]]]) -> bool:
    for width in range(1, index.key_count + 1):
        if (index.table_oid, frozenset(index.key_columns[:width])) in fk_columns:
            return True
    return False
