"""redis.fragmentation: RAM held beyond the data, and whether active defragmentation can win it back.

Read from INFO memory (mem_fragmentation_ratio/bytes: RSS against used memory, which counts
more than the allocator's waste; allocator_frag_ratio/bytes: the allocator's own waste, what
active defragmentation can reclaim) and CONFIG GET activedefrag. A ratio under 1 means part of
Redis's memory is swapped out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field

from checks.contract import Check, CheckOptions, Scope
from checks.model import Engine, Finding, Fix, FixAvailability, FixSafety, FixStep, Severity
from checks.redis._config import config_values
from checks.units import human_bytes, int_or_none

CONFIG_NOTE = "CONFIG SET changes the running server only: run CONFIG REWRITE (or edit redis.conf) to keep it."


class FragmentationOptions(CheckOptions):
    ratio: float = Field(default=1.5, gt=1, description="RSS / used memory above which fragmentation is a finding.")
    min_bytes: int = Field(
        default=100 * 1024 * 1024, ge=0,
        description="...and only when this many bytes are wasted (small instances always look fragmented).",
    )
    allocator_ratio: float = Field(
        default=1.2, gt=1, description="allocator_frag_ratio above which active defragmentation would help.",
    )
    swap_min_bytes: int = Field(
        default=64 * 1024 * 1024, ge=0, description="A ratio under 1 (swapped out) is a finding from this much used memory.",
    )


@dataclass(frozen=True)
class FragmentationFacts:
    used_memory: int
    used_memory_rss: int
    ratio: float | None
    wasted: int | None  # mem_fragmentation_bytes
    allocator_ratio: float | None
    allocator_wasted: int | None
    allocator: str
    activedefrag: str | None  # None: CONFIG refused
    defrag_running: int | None


class Fragmentation(Check):
    id: ClassVar[str] = "redis.fragmentation"
    engine: ClassVar[Engine] = "redis"
    title: ClassVar[str] = "Redis holds little RAM beyond its data, and none of it is swapped"
    severity: ClassVar[Severity] = Severity.MEDIUM
    rationale: ClassVar[str] = (
        "After many deletes or expiries of values of varied sizes, the allocator keeps pages that are mostly "
        "empty: RSS stays high while the data shrank, and the host runs out of RAM first. jemalloc builds can "
        "defragment actively. A fragmentation ratio under 1 is worse: part of Redis is in swap, and every "
        "access to it is a disk read."
    )
    fix_availability: ClassVar[FixAvailability] = FixAvailability.SOMETIMES
    Options = FragmentationOptions

    async def gather(self, session: Any, scope: Scope) -> FragmentationFacts:
        memory = await session.client.info("memory")
        activedefrag = (await config_values(session.client, "activedefrag"))["activedefrag"]
        return FragmentationFacts(
            used_memory=int(memory.get("used_memory", 0)),
            used_memory_rss=int(memory.get("used_memory_rss", 0)),
            ratio=_float(memory.get("mem_fragmentation_ratio")),
            wasted=int_or_none(memory.get("mem_fragmentation_bytes")),
            allocator_ratio=_float(memory.get("allocator_frag_ratio")),
            allocator_wasted=int_or_none(memory.get("allocator_frag_bytes")),
            allocator=str(memory.get("mem_allocator", "")),
            activedefrag=activedefrag,
            defrag_running=int_or_none(memory.get("active_defrag_running")),
        )

    def evaluate(self, facts: FragmentationFacts, scope: Scope) -> list[Finding]:
        options: FragmentationOptions = scope.options
        evidence = {
            "mem_fragmentation_ratio": facts.ratio,
            "mem_fragmentation_bytes": facts.wasted,
            "allocator_frag_ratio": facts.allocator_ratio,
            "allocator_frag_bytes": facts.allocator_wasted,
            "used_memory": facts.used_memory,
            "used_memory_rss": facts.used_memory_rss,
            "mem_allocator": facts.allocator,
            "activedefrag": facts.activedefrag,
            "active_defrag_running": facts.defrag_running,
        }
        ratio = facts.ratio
        wasted = facts.wasted if facts.wasted is not None else facts.used_memory_rss - facts.used_memory
        if ratio is not None and ratio < 1 and facts.used_memory >= options.swap_min_bytes:
            return [self.finding(
                scope,
                object="memory",
                title="Part of Redis's memory is swapped out",
                message=(
                    f"Redis uses {human_bytes(facts.used_memory)} but only {human_bytes(facts.used_memory_rss)} of it "
                    f"is in RAM (fragmentation ratio {ratio:.2f}): the rest is in swap, and reading it is a disk access "
                    "on the event loop. Give the host more RAM, lower maxmemory, or disable swap for Redis."
                ),
                evidence=evidence,
                severity=Severity.HIGH,
                key="swap",
            )]
        if ratio is None or ratio < options.ratio or wasted < options.min_bytes:
            return []
        defrag_helps = facts.allocator_ratio is not None and facts.allocator_ratio >= options.allocator_ratio
        fix = None
        if facts.allocator.startswith("jemalloc") and facts.activedefrag == "no" and defrag_helps:
            fix = Fix(
                summary="Turn on active defragmentation",
                steps=(FixStep(language="redis", command=["CONFIG", "SET", "activedefrag", "yes"]),),
                safety=FixSafety.UNSAFE,
                lock="No lock; defragmentation uses some CPU in the background (active-defrag-cycle-min/max).",
                inverse=(FixStep(language="redis", command=["CONFIG", "SET", "activedefrag", "no"]),),
                notes=("Builds linked against a system jemalloc (some distribution packages) refuse it: there, "
                       "MEMORY PURGE returns freed pages to the OS, and a restart (a failover) compacts. " + CONFIG_NOTE),
            )
        if defrag_helps:
            where = (f" The allocator itself wastes {human_bytes(facts.allocator_wasted)} (ratio "
                     f"{facts.allocator_ratio:.2f}): what active defragmentation reclaims.")
            where += (" It is off." if facts.activedefrag == "no" else
                      " It is on." if facts.activedefrag == "yes" else "")
        elif facts.allocator_ratio is not None:
            where = (f" The allocator's own ratio is {facts.allocator_ratio:.2f}: most of the gap is RSS overhead "
                     "(pages freed but not returned, copy-on-write after a fork), which defragmentation does not reclaim.")
        else:
            where = ""
        return [self.finding(
            scope,
            object="fragmentation",
            title="High memory fragmentation",
            message=(
                f"Redis holds {human_bytes(facts.used_memory_rss)} of RAM for {human_bytes(facts.used_memory)} of data "
                f"(ratio {ratio:.2f}): {human_bytes(wasted)} wasted, typically after many deletes or expiries of "
                f"varied sizes.{where}"
            ),
            evidence=evidence,
            severity=Severity.MEDIUM,
            fix=fix,
            key="fragmentation",
        )]


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None

