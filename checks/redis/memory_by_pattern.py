"""redis.memory-by-pattern: which key patterns hold the memory, and how long their keys live.

Read from the keyspace pass redis.ttl-coverage shares: per pattern, MEMORY USAGE on a sample
of its keys (the page script measures one key in `sample_every`, small patterns are measured
from their reservoir of 16 keys; collections with `MEMORY USAGE ... SAMPLES`), extrapolated to
all its keys with a 95 % error from the sample's spread; and a histogram of its keys' remaining
TTLs (<= 1 h, <= 1 day, <= 1 week, more, none), counted on every key. The counts say whether
they are exact: SCAN may return a key twice while the table is resized.

An inventory, not a problem: one finding of severity info, the top patterns by memory.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from checks.contract import Check, CheckOptions, Scope
from checks.model import Engine, Finding, FixAvailability, Severity
from checks.redis._keyspace import KeyspaceFact
from checks.redis._scan import KeyspaceScan
from checks.units import human_bytes


class MemoryByPatternOptions(CheckOptions):
    top: int = Field(default=15, ge=1, le=500, description="Patterns listed, by estimated memory, largest first.")


class MemoryByPattern(Check):
    id: ClassVar[str] = "redis.memory-by-pattern"
    engine: ClassVar[Engine] = "redis"
    title: ClassVar[str] = "Which key patterns hold the memory"
    severity: ClassVar[Severity] = Severity.INFO
    rationale: ClassVar[str] = (
        "When memory grows, the first question is which keys hold it. INFO gives one total; this splits it "
        "by key pattern over the whole keyspace (samplers read 10,000 keys), with the error of each estimate "
        "and how long each pattern's keys have left to live."
    )
    fix_availability: ClassVar[FixAvailability] = FixAvailability.NEVER
    Options = MemoryByPatternOptions

    needs = (KeyspaceFact,)

    async def gather(self, session: Any, scope: Scope) -> KeyspaceScan:
        return (await self.fact(KeyspaceFact, session, scope)).said_to(scope)

    def evaluate(self, facts: KeyspaceScan, scope: Scope) -> list[Finding]:
        options: MemoryByPatternOptions = scope.options
        rows: list[dict[str, Any]] = []
        for database in facts.databases:
            for stats in database.patterns.values():
                estimate = stats.memory_estimate(database.extrapolation)
                rows.append({
                    "pattern": stats.pattern,
                    "db": database.db,
                    "keys": round(stats.keys * database.extrapolation),
                    "type": stats.main_type,
                    "memory_bytes": estimate[0] if estimate else None,
                    "memory_error_bytes": estimate[1] if estimate else None,
                    "memory_sampled_keys": stats.memory_sampled_keys,
                    "ttl_histogram": stats.ttl_histogram,
                })
        if not rows:
            return []
        measured = sum(r["memory_bytes"] or 0 for r in rows)
        rows.sort(key=lambda r: (-(r["memory_bytes"] or 0), -r["keys"], r["pattern"]))
        top = rows[: options.top]
        for row in top:
            row["memory_share"] = round(row["memory_bytes"] / measured, 4) if measured and row["memory_bytes"] else None
        lead = "; ".join(_row_text(row) for row in top[:3])
        counts = facts.counts_note()
        return [self.finding(
            scope,
            object=facts.source,
            title=f"Memory by key pattern: the top {len(top)} of {len(rows):,} patterns",
            message=(
                f"About {human_bytes(measured)} in {facts.keys_total:,} keys, largest first: {lead}. "
                f"Key counts are {counts.split(':')[0]}; memory is extrapolated from sampled keys (± at 95 %)."
            ),
            evidence={
                "patterns": top,
                "patterns_total": len(rows),
                "memory_estimated_bytes": measured,
                "memory_samples": f"MEMORY USAGE ... SAMPLES on one key in {facts.sample_every} and at least 16 per "
                                  "pattern" if facts.sample_every else "MEMORY USAGE on up to 16 keys per pattern",
                "scan": facts.summary(),
            },
            key="top",
        )]


def _row_text(row: dict[str, Any]) -> str:
    memory = human_bytes(row["memory_bytes"]) if row["memory_bytes"] is not None else "not measured"
    error = f" ± {human_bytes(row['memory_error_bytes'])}" if row.get("memory_error_bytes") else ""
    share = f" ({row['memory_share']:.0%})" if row.get("memory_share") else ""
    without = row["ttl_histogram"]["none"]
    ttl = "no TTL" if without == sum(row["ttl_histogram"].values()) else f"{without:,} without TTL" if without else "all with a TTL"
    keys = "1 key" if row["keys"] == 1 else f"{row['keys']:,} keys"
    return f"{row['pattern']} {memory}{error}{share}, {keys}, {ttl}"
