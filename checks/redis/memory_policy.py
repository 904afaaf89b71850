"""redis.memory-policy: maxmemory and its eviction policy against the role, fragmentation, headroom.

Read from INFO memory / keyspace / stats and CONFIG GET activedefrag.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field

from checks.engine import Check, CheckOptions, Scope
from checks.model import Engine, Finding, Fix, FixAvailability, FixSafety, FixStep, Severity
from checks.redis._config import config_values
from checks.redis._scan import keyspace_counts
from checks.redis.big_keys import human_bytes

ALLKEYS_FOR = {"volatile-lru": "allkeys-lru", "volatile-lfu": "allkeys-lfu", "volatile-random": "allkeys-random",
               "volatile-ttl": "allkeys-lru"}
CONFIG_NOTE = "CONFIG SET changes the running server only: run CONFIG REWRITE (or edit redis.conf) to keep it after a restart."


class MemoryPolicyOptions(CheckOptions):
    volatile_share: float = Field(
        default=0.5, gt=0, le=1, description="noeviction is a finding when at least this share of keys has a TTL.",
    )
    few_volatile_share: float = Field(
        default=0.1, ge=0, lt=1, description="A volatile-* policy is a finding when fewer than this share of keys has a TTL.",
    )
    min_keys: int = Field(default=100, ge=1, description="Key-share rules need at least this many keys.")
    fragmentation_ratio: float = Field(default=1.5, gt=1, description="RSS / used memory above which fragmentation is a finding.")
    fragmentation_min_bytes: int = Field(
        default=100 * 1024 * 1024, ge=0, description="…and only when the wasted bytes pass this (small instances always look fragmented).",
    )
    near_maxmemory: float = Field(default=0.9, gt=0, le=1, description="Used memory / maxmemory above which headroom is a finding.")


@dataclass(frozen=True)
class MemoryFacts:
    maxmemory: int
    policy: str
    used_memory: int
    used_memory_rss: int
    fragmentation_ratio: float | None
    fragmentation_bytes: int | None
    allocator: str
    activedefrag: str | None  # None: CONFIG not allowed
    keys: int
    expires: int
    evicted_keys: int
    total_system_memory: int | None


class MemoryPolicy(Check):
    id: ClassVar[str] = "redis.memory-policy"
    engine: ClassVar[Engine] = Engine.REDIS
    title: ClassVar[str] = "maxmemory and the eviction policy fit the role and the keys"
    severity: ClassVar[Severity] = Severity.HIGH
    rationale: ClassVar[str] = (
        "Without maxmemory a cache grows until the OS kills it; with noeviction a full Redis refuses every "
        "write (OOM) even when most keys are disposable; a volatile-* policy evicts only keys with a TTL, so "
        "with few of them it behaves like noeviction. Fragmentation wastes RAM the dataset never uses."
    )
    fix_availability: ClassVar[FixAvailability] = FixAvailability.SOMETIMES
    Options = MemoryPolicyOptions

    async def gather(self, session: Any, scope: Scope) -> MemoryFacts:
        client = session.client
        memory = await client.info("memory")
        stats = await client.info("stats")
        counts = keyspace_counts(await client.info("keyspace"))
        activedefrag = (await config_values(client, "activedefrag"))["activedefrag"]
        return MemoryFacts(
            maxmemory=int(memory.get("maxmemory", 0)),
            policy=str(memory.get("maxmemory_policy", "noeviction")),
            used_memory=int(memory.get("used_memory", 0)),
            used_memory_rss=int(memory.get("used_memory_rss", 0)),
            fragmentation_ratio=_float(memory.get("mem_fragmentation_ratio")),
            fragmentation_bytes=_int(memory.get("mem_fragmentation_bytes")),
            allocator=str(memory.get("mem_allocator", "")),
            activedefrag=activedefrag,
            keys=sum(k for k, _ in counts.values()),
            expires=sum(e for _, e in counts.values()),
            evicted_keys=int(stats.get("evicted_keys", 0)),
            total_system_memory=_int(memory.get("total_system_memory")),
        )

    def evaluate(self, facts: MemoryFacts, scope: Scope) -> list[Finding]:
        options: MemoryPolicyOptions = scope.options
        role = getattr(scope.config, "role", None)
        share = facts.expires / facts.keys if facts.keys else 0.0
        evidence = {
            "maxmemory": facts.maxmemory,
            "maxmemory_policy": facts.policy,
            "used_memory": facts.used_memory,
            "used_memory_human": human_bytes(facts.used_memory),
            "keys": facts.keys,
            "keys_with_ttl": facts.expires,
            "ttl_share": round(share, 4),
            "evicted_keys": facts.evicted_keys,
            "role": role,
        }
        findings = []
        if facts.maxmemory == 0 and role == "cache":
            findings.append(self._no_maxmemory(scope, facts, evidence))
        enough_keys = facts.keys >= options.min_keys
        if facts.maxmemory and facts.policy == "noeviction" and role != "store" and enough_keys and share >= options.volatile_share:
            new_policy = "allkeys-lru" if role == "cache" else "volatile-lru"
            findings.append(self.finding(
                scope,
                object="maxmemory-policy",
                title="noeviction with mostly expiring keys",
                message=(
                    f"maxmemory-policy is noeviction, yet {share:.0%} of the {facts.keys:,} keys have a TTL: they are "
                    "disposable, but when memory reaches maxmemory Redis will refuse every write with OOM instead of "
                    f"evicting them. {new_policy} evicts them instead."
                ),
                evidence=evidence,
                severity=Severity.MEDIUM,
                fix=_policy_fix(facts.policy, new_policy, FixSafety.UNSAFE),
                key="noeviction",
            ))
        if facts.maxmemory and facts.policy.startswith("volatile-") and enough_keys and share < options.few_volatile_share:
            target = ALLKEYS_FOR.get(facts.policy, "allkeys-lru")
            findings.append(self.finding(
                scope,
                object="maxmemory-policy",
                title=f"{facts.policy} with few keys to evict",
                message=(
                    f"{facts.policy} evicts only keys that have a TTL, and only {facts.expires:,} of {facts.keys:,} "
                    f"({share:.1%}) have one: once they are gone, a full Redis refuses writes with OOM as if the "
                    "policy were noeviction. "
                    + (f"For a cache, {target} can evict any key." if role == "cache" else
                       "Give the disposable keys a TTL (see redis.ttl-coverage), or switch to an allkeys-* policy "
                       "if every key can be rebuilt.")
                ),
                evidence=evidence,
                severity=Severity.HIGH,
                fix=_policy_fix(facts.policy, target, FixSafety.UNSAFE if role == "cache" else FixSafety.MANUAL),
                key="volatile",
            ))
        findings += self._fragmentation(scope, facts, options)
        if facts.maxmemory and facts.used_memory >= facts.maxmemory * options.near_maxmemory:
            finding = self._near_maxmemory(scope, facts, options, evidence, role, share)
            if finding is not None:
                findings.append(finding)
        return findings

    def _no_maxmemory(self, scope: Scope, facts: MemoryFacts, evidence: dict[str, Any]) -> Finding:
        basis = facts.total_system_memory or 0
        suggested = max(int(basis * 0.75) if basis else facts.used_memory * 2, 256 * 1024 * 1024)
        steps = [FixStep(language="redis", command=["CONFIG", "SET", "maxmemory", str(suggested)],
                         description=f"maxmemory {human_bytes(suggested)}: adjust to the memory this host can spare")]
        inverse = [FixStep(language="redis", command=["CONFIG", "SET", "maxmemory", "0"])]
        if facts.policy in ("noeviction",) or facts.policy.startswith("volatile-"):
            steps.append(FixStep(language="redis", command=["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]))
            inverse.append(FixStep(language="redis", command=["CONFIG", "SET", "maxmemory-policy", facts.policy]))
        return self.finding(
            scope,
            object="maxmemory",
            title="Cache without maxmemory",
            message=(
                f"This target's role is cache, but maxmemory is 0 (unlimited, using {human_bytes(facts.used_memory)} now): "
                "it grows until the OS runs out of memory and kills Redis, instead of evicting old entries."
            ),
            evidence={**evidence, "total_system_memory": facts.total_system_memory, "suggested_maxmemory": suggested},
            severity=Severity.HIGH,
            fix=Fix(
                summary=f"Set maxmemory (suggested {human_bytes(suggested)}) and an allkeys eviction policy",
                steps=tuple(steps),
                safety=FixSafety.MANUAL,
                lock="No lock; once full, Redis evicts keys to stay under the limit.",
                inverse=tuple(inverse),
                notes="The size is a suggestion (75% of the host's memory when known): choose it for this host. " + CONFIG_NOTE,
            ),
            key="maxmemory",
        )

    def _fragmentation(self, scope: Scope, facts: MemoryFacts, options: MemoryPolicyOptions) -> list[Finding]:
        ratio, wasted = facts.fragmentation_ratio, facts.fragmentation_bytes
        if wasted is None and ratio is not None:
            wasted = facts.used_memory_rss - facts.used_memory
        if ratio is None or wasted is None or ratio < options.fragmentation_ratio or wasted < options.fragmentation_min_bytes:
            return []
        fix = None
        if facts.allocator.startswith("jemalloc") and facts.activedefrag == "no":
            fix = Fix(
                summary="Turn on active defragmentation",
                steps=(FixStep(language="redis", command=["CONFIG", "SET", "activedefrag", "yes"]),),
                safety=FixSafety.UNSAFE,
                lock="No lock; defragmentation uses some CPU in the background (active-defrag-cycle-min/max).",
                inverse=(FixStep(language="redis", command=["CONFIG", "SET", "activedefrag", "no"]),),
                notes=CONFIG_NOTE,
            )
        return [self.finding(
            scope,
            object="fragmentation",
            title="High memory fragmentation",
            message=(
                f"Redis holds {human_bytes(facts.used_memory_rss)} of RAM for {human_bytes(facts.used_memory)} of data "
                f"(ratio {ratio:.2f}): {human_bytes(wasted)} wasted, typically after many deletes or expiries of "
                "varied sizes." + (" Active defragmentation is off." if facts.activedefrag == "no" else "")
            ),
            evidence={
                "mem_fragmentation_ratio": ratio,
                "fragmentation_bytes": wasted,
                "used_memory": facts.used_memory,
                "used_memory_rss": facts.used_memory_rss,
                "mem_allocator": facts.allocator,
                "activedefrag": facts.activedefrag,
            },
            severity=Severity.MEDIUM,
            fix=fix,
            key="fragmentation",
        )]

    def _near_maxmemory(
        self, scope: Scope, facts: MemoryFacts, options: MemoryPolicyOptions, evidence: dict[str, Any], role: str | None,
        share: float,
    ) -> Finding | None:
        evicts_anything = facts.policy.startswith("allkeys-")
        if role == "cache" and evicts_anything:
            return None  # a full cache that evicts is doing its job
        refuses = facts.policy == "noeviction" or (facts.policy.startswith("volatile-") and share < options.few_volatile_share)
        used = facts.used_memory / facts.maxmemory
        consequence = (
            "the next writes will fail with OOM" if refuses else
            "Redis is evicting keys" + (" from a data store" if role == "store" else "")
        )
        return self.finding(
            scope,
            object="maxmemory",
            title="Used memory near maxmemory",
            message=(
                f"Redis uses {human_bytes(facts.used_memory)} of its {human_bytes(facts.maxmemory)} maxmemory ({used:.0%}) "
                f"with policy {facts.policy}: {consequence}."
            ),
            evidence={**evidence, "used_share": round(used, 4), "threshold": options.near_maxmemory},
            severity=Severity.HIGH if refuses or role == "store" else Severity.MEDIUM,
            key="headroom",
        )


def _policy_fix(current: str, new: str, safety: FixSafety) -> Fix:
    return Fix(
        summary=f"CONFIG SET maxmemory-policy {new}",
        steps=(FixStep(language="redis", command=["CONFIG", "SET", "maxmemory-policy", new]),),
        safety=safety,
        lock=f"No lock; under memory pressure Redis then evicts keys by {new} instead of by {current}.",
        inverse=(FixStep(language="redis", command=["CONFIG", "SET", "maxmemory-policy", current]),),
        notes=CONFIG_NOTE,
    )


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None

