"""redis.hot-keys: the keys read most often, by the server's own LFU counter.

Under an LFU maxmemory-policy the keyspace pass reads OBJECT FREQ on every key (in its page
script, before any length read could bump the counter) and keeps the hottest per database.
Under any other policy Redis does not count accesses, and the finding says what to enable.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from checks.contract import Check, CheckOptions, Scope
from checks.model import Engine, Finding, FixAvailability, Severity
from checks.redis._keyspace import KeyspaceFact
from checks.redis._scan import HOT_KEYS_KEPT, KeyspaceScan


class HotKeysOptions(CheckOptions):
    min_freq: int = Field(
        default=50, ge=1, le=255,
        description="OBJECT FREQ at or above which a key is hot (a log counter: with lfu-log-factor 10, 50 is ~10k hits).",
    )
    listed: int = Field(default=10, ge=1, le=20, description="Hot keys listed, hottest first.")
    explain_when_off: bool = Field(
        default=True, description="Under a non-LFU policy, say (as info) that hot keys cannot be found and what to enable.",
    )


class HotKeys(Check):
    id: ClassVar[str] = "redis.hot-keys"
    engine: ClassVar[Engine] = "redis"
    title: ClassVar[str] = "No single key takes a large share of the reads"
    severity: ClassVar[Severity] = Severity.LOW
    rationale: ClassVar[str] = (
        "One key read by every request pins its load on one thread (and, in a cluster, one shard): it caps "
        "throughput however many nodes there are, and a big hot key also saturates the network. Redis counts "
        "accesses per key only under an LFU policy; there, OBJECT FREQ names the hot keys."
    )
    fix_availability: ClassVar[FixAvailability] = FixAvailability.NEVER
    Options = HotKeysOptions

    needs = (KeyspaceFact,)

    async def gather(self, session: Any, scope: Scope) -> KeyspaceScan:
        return (await self.fact(KeyspaceFact, session, scope)).said_to(scope)

    def evaluate(self, facts: KeyspaceScan, scope: Scope) -> list[Finding]:
        options: HotKeysOptions = scope.options
        if facts.access != "freq":
            if not options.explain_when_off:
                return []
            return [self.finding(
                scope,
                object="maxmemory-policy",
                title="Hot keys cannot be found under this eviction policy",
                message=(
                    f"maxmemory-policy is {facts.maxmemory_policy or 'unknown'}: Redis tracks how long keys go unread, "
                    "not how often they are read, so OBJECT FREQ (and redis-cli --hotkeys) cannot name hot keys. "
                    "An LFU policy counts reads: volatile-lfu evicts only keys with a TTL (keep it while keys without "
                    "one must stay, see redis.memory-policy); with maxmemory 0 the policy evicts nothing either way. "
                    "Or sample MONITOR briefly on a replica."
                ),
                evidence={"maxmemory_policy": facts.maxmemory_policy, "scan": facts.summary()},
                severity=Severity.INFO,
                key="not-tracked",
            )]
        hot: list[dict[str, Any]] = [
            {"key": key, "db": database.db, "freq": freq, "pattern": pattern}
            for database in facts.databases for freq, key, pattern in database.hot_keys if freq >= options.min_freq
        ]
        if not hot:
            return []
        hot.sort(key=lambda h: (-h["freq"], h["key"]))
        every = all(d.freq_on_every_key for d in facts.databases)
        read = "read on every key" if every else "read on a sample of each pattern's keys (no page script here)"
        listed = hot[: options.listed]
        lead = ", ".join(f"{h['key']} ({h['freq']})" for h in listed[:3])
        return [self.finding(
            scope,
            object=facts.source,
            title=f"Hot keys: {listed[0]['key']} at access frequency {listed[0]['freq']}"
                  + (f", and {len(hot) - 1} more" if len(hot) > 1 else ""),
            message=(
                f"Under {facts.maxmemory_policy}, OBJECT FREQ {read} names {len(hot)} hot keys: {lead}. "
                "A hot key serialises its readers on one thread (one shard in a cluster): cache it in the "
                "application for a second, read it from replicas, or split it into copies (key:{n}) read at random."
            ),
            evidence={"hot_keys": listed, "min_freq": options.min_freq, "kept_per_database": HOT_KEYS_KEPT,
                      "freq_read": "every key" if every else "sampled keys",
                      "scan": facts.summary()},
            key="hot",
        )]
