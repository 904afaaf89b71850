"""redis.memory-policy: maxmemory and its eviction policy against the role, the keys that must
stay, and headroom (fragmentation is redis.fragmentation's).

Read from INFO memory / keyspace / stats, and the keyspace pass that
redis.ttl-coverage shares: which patterns hold keys without a TTL, and how much memory is in
keys with and without one. Keys without a TTL must stay unless their name says cache or a
`disposable` pattern covers them; declared persistent ones always stay. While any must stay,
the advice is a volatile-* policy (evicts only keys with a TTL); allkeys-* only when every key
is disposable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field

from checks.contract import Check, CheckOptions, Scope
from checks.model import Engine, Finding, Fix, FixAvailability, FixSafety, FixStep, Severity
from checks.redis._keyspace import KeyspaceFact
from checks.redis._patterns import EPHEMERAL_WORDS, first_matching, literal_words
from checks.redis._scan import KeyspaceScan, keyspace_counts
from checks.units import human_bytes, int_or_none

ALLKEYS_FOR = {"volatile-lru": "allkeys-lru", "volatile-lfu": "allkeys-lfu", "volatile-random": "allkeys-random",
               "volatile-ttl": "allkeys-lru"}
VOLATILE_FOR = {"allkeys-lru": "volatile-lru", "allkeys-lfu": "volatile-lfu", "allkeys-random": "volatile-random",
                "noeviction": "volatile-lru"}
CACHE_WORDS = {word for word, kind in EPHEMERAL_WORDS.items() if kind == "cache"}
MUST_STAY_LISTED = 10
CONFIG_NOTE = "CONFIG SET changes the running server only: run CONFIG REWRITE (or edit redis.conf) to keep it after a restart."


class MemoryPolicyOptions(CheckOptions):
    volatile_share: float = Field(
        default=0.5, gt=0, le=1, description="noeviction is a finding when at least this share of keys has a TTL.",
    )
    few_volatile_share: float = Field(
        default=0.1, ge=0, lt=1, description="A volatile-* policy is a finding when fewer than this share of keys has a TTL.",
    )
    min_keys: int = Field(default=100, ge=1, description="Key-share rules need at least this many keys.")
    near_maxmemory: float = Field(default=0.9, gt=0, le=1, description="Used memory / maxmemory above which headroom is a finding.")
    use_keyspace: bool = Field(
        default=True,
        description="Read the keyspace pass (shared with redis.ttl-coverage) to know which keys without a TTL must stay.",
    )
    disposable: list[str] = Field(
        default_factory=list,
        description="Patterns of keys without a TTL that may be evicted (rebuilt from elsewhere), besides names saying cache.",
    )


@dataclass(frozen=True)
class MemoryFacts:
    maxmemory: int
    policy: str
    used_memory: int
    keys: int
    expires: int
    evicted_keys: int
    total_system_memory: int | None
    keyspace: KeyspaceScan | None = None  # None: not read (use_keyspace off, or the pass failed)
    keyspace_error: str | None = None


@dataclass(frozen=True)
class MustStay:
    pattern: str
    db: int
    keys_without_ttl: int
    memory_bytes: int | None  # estimated, of its keys without a TTL
    why: str


@dataclass(frozen=True)
class Retention:
    """What an eviction policy would take: memory in keys with and without a TTL, and the
    patterns whose keys without a TTL must stay."""

    memory_with_ttl: int
    memory_without_ttl: int
    must_stay: list[MustStay]
    disposable_without_ttl: int  # keys without a TTL that may go (cache names, `disposable`)

    def evidence(self) -> dict[str, Any]:
        total = self.memory_with_ttl + self.memory_without_ttl
        return {
            "memory_with_ttl_bytes": self.memory_with_ttl,
            "memory_without_ttl_bytes": self.memory_without_ttl,
            "memory_without_ttl_share": round(self.memory_without_ttl / total, 4) if total else None,
            "must_stay_patterns": [
                {"pattern": m.pattern, "db": m.db, "keys_without_ttl": m.keys_without_ttl,
                 "memory_bytes": m.memory_bytes, "why": m.why}
                for m in self.must_stay[:MUST_STAY_LISTED]
            ],
            "must_stay_patterns_total": len(self.must_stay),
            "disposable_keys_without_ttl": self.disposable_without_ttl,
        }

    def must_stay_text(self) -> str:
        names = ", ".join(m.pattern for m in self.must_stay[:4])
        more = f" and {len(self.must_stay) - 4} more patterns" if len(self.must_stay) > 4 else ""
        total = self.memory_with_ttl + self.memory_without_ttl
        share = f" ({self.memory_without_ttl / total:.0%} of the keyspace's memory)" if total else ""
        return f"{names}{more}: keys without a TTL{share} that must stay"


def retention(scan: KeyspaceScan, persistent: list[str], disposable: list[str]) -> Retention:
    with_ttl = without_ttl = disposable_keys = 0
    must_stay: list[MustStay] = []
    for database in scan.databases:
        for stats in database.patterns.values():
            estimate = stats.memory_estimate(database.extrapolation)
            memory = estimate[0] if estimate else None
            share = stats.with_ttl / stats.keys if stats.keys else 0.0
            if memory is not None:
                with_ttl += round(memory * share)
                without_ttl += round(memory * (1 - share))
            if not stats.without_ttl:
                continue
            example = stats.examples[0] if stats.examples else None
            declared = first_matching(persistent, stats.pattern, example)
            if declared is not None:
                why = f'declared persistent ("{declared}")'
            elif first_matching(disposable, stats.pattern, example) is not None or set(
                    literal_words(stats.pattern)) & CACHE_WORDS:
                disposable_keys += stats.without_ttl
                continue
            else:
                why = "no TTL, and not named as a cache"
            must_stay.append(MustStay(stats.pattern, database.db, round(stats.without_ttl * database.extrapolation),
                                      round(memory * (1 - share)) if memory is not None else None, why))
    # Declared first, then by memory: the keys an operator would least like to lose lead the list.
    must_stay.sort(key=lambda m: (not m.why.startswith("declared"), -(m.memory_bytes or 0), -m.keys_without_ttl))
    return Retention(with_ttl, without_ttl, must_stay, disposable_keys)


class MemoryPolicy(Check):
    id: ClassVar[str] = "redis.memory-policy"
    engine: ClassVar[Engine] = "redis"
    title: ClassVar[str] = "maxmemory and the eviction policy fit the role and the keys"
    severity: ClassVar[Severity] = Severity.HIGH
    rationale: ClassVar[str] = (
        "Without maxmemory a cache grows until the OS kills it; with noeviction a full Redis refuses every "
        "write (OOM) even when most keys are disposable; a volatile-* policy evicts only keys with a TTL, so "
        "with few of them it behaves like noeviction. Fragmentation wastes RAM the dataset never uses."
    )
    fix_availability: ClassVar[FixAvailability] = FixAvailability.SOMETIMES
    Options = MemoryPolicyOptions
    needs = (KeyspaceFact,)  # read only with use_keyspace

    async def gather(self, session: Any, scope: Scope) -> MemoryFacts:
        client = session.client
        memory = await client.info("memory")
        stats = await client.info("stats")
        counts = keyspace_counts(await client.info("keyspace"))
        options: MemoryPolicyOptions = scope.options
        keyspace, keyspace_error = None, None
        if options.use_keyspace:
            try:
                keyspace = (await self.fact(KeyspaceFact, session, scope)).said_to(scope)
            except Exception as exc:  # the policy can still be judged from INFO keyspace: say what is missing
                keyspace_error = f"{type(exc).__name__}: {exc}"
        return MemoryFacts(
            maxmemory=int(memory.get("maxmemory", 0)),
            policy=str(memory.get("maxmemory_policy", "noeviction")),
            used_memory=int(memory.get("used_memory", 0)),
            keys=sum(k for k, _ in counts.values()),
            expires=sum(e for _, e in counts.values()),
            evicted_keys=int(stats.get("evicted_keys", 0)),
            total_system_memory=int_or_none(memory.get("total_system_memory")),
            keyspace=keyspace,
            keyspace_error=keyspace_error,
        )

    def evaluate(self, facts: MemoryFacts, scope: Scope) -> list[Finding]:
        options: MemoryPolicyOptions = scope.options
        role = getattr(scope.config, "role", None)
        share = facts.expires / facts.keys if facts.keys else 0.0
        kept: Retention | None = None
        if facts.keyspace is not None:
            persistent = [p.pattern for p in scope.config.expect.persistent]
            kept = retention(facts.keyspace, persistent, options.disposable)
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
        if kept is not None and facts.keyspace is not None:  # kept is read from the keyspace
            evidence |= kept.evidence()
            evidence["scan"] = facts.keyspace.summary()
        elif facts.keyspace_error or options.use_keyspace:
            evidence["keyspace_not_read"] = facts.keyspace_error or "no keyspace pass"
        must_stay = bool(kept and kept.must_stay)
        # The safe policy while keys without a TTL must stay evicts only keys with one.
        safe_policy = VOLATILE_FOR.get(facts.policy, "volatile-lru") if must_stay else None
        findings = []
        if facts.maxmemory == 0 and role == "cache":
            findings.append(self._no_maxmemory(scope, facts, evidence, kept))
        enough_keys = facts.keys >= options.min_keys
        if facts.maxmemory and facts.policy.startswith("allkeys-") and must_stay:
            assert kept is not None and safe_policy is not None
            findings.append(self.finding(
                scope,
                object="maxmemory-policy",
                title=f"{facts.policy} can evict keys that must stay",
                message=(
                    f"maxmemory-policy {facts.policy} evicts any key once memory reaches maxmemory, including "
                    f"{kept.must_stay_text()}. {safe_policy} evicts only keys with a TTL and leaves them alone; "
                    "if they are in fact rebuildable, list them in the `disposable` option."
                ),
                evidence=evidence,
                severity=Severity.MEDIUM if role == "cache" else Severity.HIGH,
                fix=_policy_fix(facts.policy, safe_policy, FixSafety.UNSAFE, extra=(
                    "With a volatile policy, keys without a TTL are never evicted: if they alone fill maxmemory, "
                    "writes fail with OOM instead; give the disposable ones a TTL (redis.ttl-coverage).")),
                key="allkeys-must-stay",
            ))
        if facts.maxmemory and facts.policy == "noeviction" and role != "store" and enough_keys and share >= options.volatile_share:
            new_policy = safe_policy or ("allkeys-lru" if role == "cache" and kept is not None else "volatile-lru")
            reason = (f" — not allkeys-*: {kept.must_stay_text()}" if must_stay and kept else
                      " (every key without a TTL is disposable)" if new_policy.startswith("allkeys") else "")
            findings.append(self.finding(
                scope,
                object="maxmemory-policy",
                title="noeviction with mostly expiring keys",
                message=(
                    f"maxmemory-policy is noeviction, yet {share:.0%} of the {facts.keys:,} keys have a TTL: they are "
                    "disposable, but when memory reaches maxmemory Redis will refuse every write with OOM instead of "
                    f"evicting them. {new_policy} evicts them instead{reason}."
                ),
                evidence=evidence,
                severity=Severity.MEDIUM,
                fix=_policy_fix(facts.policy, new_policy, FixSafety.UNSAFE),
                key="noeviction",
            ))
        if facts.maxmemory and facts.policy.startswith("volatile-") and enough_keys and share < options.few_volatile_share:
            target = ALLKEYS_FOR.get(facts.policy, "allkeys-lru")
            if must_stay and kept is not None:
                advice = (f"Do not switch to {target}: {kept.must_stay_text()}. Give the disposable keys a TTL "
                          "(see redis.ttl-coverage) so that this policy has something to evict.")
                fix = None
            else:
                advice = (f"For a cache, {target} can evict any key." if role == "cache" else
                          "Give the disposable keys a TTL (see redis.ttl-coverage), or switch to an allkeys-* policy "
                          "if every key can be rebuilt.")
                fix = _policy_fix(facts.policy, target,
                                  FixSafety.UNSAFE if role == "cache" and kept is not None else FixSafety.MANUAL)
            findings.append(self.finding(
                scope,
                object="maxmemory-policy",
                title=f"{facts.policy} with few keys to evict",
                message=(
                    f"{facts.policy} evicts only keys that have a TTL, and only {facts.expires:,} of {facts.keys:,} "
                    f"({share:.1%}) have one: once they are gone, a full Redis refuses writes with OOM as if the "
                    "policy were noeviction. " + advice
                ),
                evidence=evidence,
                severity=Severity.HIGH,
                fix=fix,
                key="volatile",
            ))
        if facts.maxmemory and facts.used_memory >= facts.maxmemory * options.near_maxmemory:
            finding = self._near_maxmemory(scope, facts, options, evidence, role, share)
            if finding is not None:
                findings.append(finding)
        return findings

    def _no_maxmemory(self, scope: Scope, facts: MemoryFacts, evidence: dict[str, Any], kept: Retention | None) -> Finding:
        basis = facts.total_system_memory or 0
        suggested = max(int(basis * 0.75) if basis else facts.used_memory * 2, 256 * 1024 * 1024)
        steps = [FixStep(language="redis", command=["CONFIG", "SET", "maxmemory", str(suggested)],
                         description=f"maxmemory {human_bytes(suggested)}: adjust to the memory this host can spare")]
        inverse = [FixStep(language="redis", command=["CONFIG", "SET", "maxmemory", "0"])]
        # allkeys-lru only when the keyspace shows every key without a TTL is disposable.
        disposable = kept is not None and not kept.must_stay
        policy = (ALLKEYS_FOR.get(facts.policy, "allkeys-lru") if disposable else VOLATILE_FOR.get(facts.policy, facts.policy))
        if policy != facts.policy:
            steps.append(FixStep(language="redis", command=["CONFIG", "SET", "maxmemory-policy", policy]))
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
                summary=f"Set maxmemory (suggested {human_bytes(suggested)}) and the {policy} eviction policy",
                steps=tuple(steps),
                safety=FixSafety.MANUAL,
                lock="No lock; once full, Redis evicts keys to stay under the limit.",
                inverse=tuple(inverse),
                notes=("The size is a suggestion (75% of the host's memory when known): choose it for this host. "
                       + (f"{policy}: {kept.must_stay_text()}. " if kept is not None and kept.must_stay else
                          f"{policy}: the keyspace was not read, so keys without a TTL are kept. " if kept is None else
                          f"{policy}: every key without a TTL is disposable. ")
                       + CONFIG_NOTE),
            ),
            key="maxmemory",
        )

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


def _policy_fix(current: str, new: str, safety: FixSafety, extra: str = "") -> Fix:
    return Fix(
        summary=f"CONFIG SET maxmemory-policy {new}",
        steps=(FixStep(language="redis", command=["CONFIG", "SET", "maxmemory-policy", new]),),
        safety=safety,
        lock=f"No lock; under memory pressure Redis then evicts keys by {new} instead of by {current}.",
        inverse=(FixStep(language="redis", command=["CONFIG", "SET", "maxmemory-policy", current]),),
        notes=(extra + " " if extra else "") + CONFIG_NOTE,
    )


