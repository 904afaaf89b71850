"""redis.big-keys: keys whose size (strings) or element count (collections) passes a threshold.

Read in the same keyspace pass as redis.ttl-coverage (the shared fact redis.keyspace, whose
scan_limit, throttle and replica options apply): each key's length comes from STRLEN, HLEN,
LLEN, SCARD, ZCARD or XLEN, and the biggest ones are measured with MEMORY USAGE.

The advice depends on what the key is for: a bounded board or feed (a period or a date in its
name) can be trimmed; an all-time one, or a key declared persistent, cannot — trimming would
delete data that is meant to stay — so the advice is to shard it or change its structure.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from checks.contract import Check, CheckOptions, Scope
from checks.model import Engine, Finding, FixAvailability, Severity
from checks.redis._patterns import first_matching, infer_pattern, is_all_time, period_word, time_bucket
from checks.redis._keyspace import KeyspaceFact
from checks.redis._scan import BigKey, KeyspaceScan
from checks.units import human_bytes

UNIT = {"string": "bytes", "hash": "fields", "list": "elements", "set": "members", "zset": "members", "stream": "entries"}
ADVICE = {
    "string": "GET and SET copy it whole on the event loop; compress it, or split it into smaller keys.",
    "hash": "HGETALL and DEL of it block; read it with HSCAN, and split it into buckets (key:{id % N}).",
    "list": "LRANGE 0 -1 and DEL of it block; cap it with LTRIM, or move old items to cold storage.",
    "set": "SMEMBERS and DEL of it block; iterate with SSCAN, and split it by a hash of the member.",
    "zset": "ZRANGE 0 -1 and DEL of it block; if only its top N is read, cap it with ZREMRANGEBYRANK key 0 -(N+1); "
            "if it must keep every member, shard it by score range.",
    "stream": "It grows until trimmed; add MAXLEN/MINID to XADD, or XTRIM it on a schedule.",
}
# Keys that are bounded by a period (a daily board, a per-day feed): trimming or expiring is right.
BOUNDED_ADVICE = {
    "zset": "A per-period board: keep its top N with ZREMRANGEBYRANK key 0 -(N+1) after each update, and give "
            "each period's key a TTL of two periods.",
    "list": "A per-period list: cap it with LTRIM after each push, and give each period's key a TTL.",
    "set": "A per-period set: give each period's key a TTL of two periods, so old periods leave memory.",
    "hash": "A per-period hash: give each period's key a TTL of two periods, or split it into buckets.",
}
# Keys that must keep everything (all-time, or declared persistent): never trim, never expire.
KEEP_ALL_ADVICE = {
    "zset": "It must keep every member, so it cannot be trimmed: ZREMRANGEBYRANK would delete standings. Shard it "
            "(by score range, or N keys by a hash of the member, merged with ZUNIONSTORE for a top list), or keep "
            "only the top N in Redis and the full ranking in the database.",
    "list": "It must keep every element, so it cannot be trimmed with LTRIM: split it into per-period keys, or move "
            "old elements to the database.",
    "set": "It must keep every member: split it by a hash of the member into N keys (SSCAN each).",
    "hash": "It must keep every field: split it into N buckets (key:{id % N}) and read them with HSCAN.",
    "string": "It must stay: compress it, or split it into smaller keys.",
    "stream": "It must keep every entry: archive old entries to the database before trimming, or shard by period.",
}


class BigKeysOptions(CheckOptions):
    string_bytes: int = Field(default=1_048_576, ge=1, description="A string of at least this many bytes is big.")
    hash_fields: int = Field(default=10_000, ge=1, description="A hash with at least this many fields is big.")
    list_elements: int = Field(default=10_000, ge=1, description="A list with at least this many elements is big.")
    set_members: int = Field(default=10_000, ge=1, description="A set with at least this many members is big.")
    zset_members: int = Field(default=10_000, ge=1, description="A sorted set with at least this many members is big.")
    stream_entries: int = Field(default=100_000, ge=1, description="A stream with at least this many entries is big.")
    report_limit: int = Field(default=25, ge=1, le=1000, description="Big keys reported one by one, biggest first; the rest are counted.")

    def thresholds(self) -> dict[str, int]:
        return {
            "string": self.string_bytes,
            "hash": self.hash_fields,
            "list": self.list_elements,
            "set": self.set_members,
            "zset": self.zset_members,
            "stream": self.stream_entries,
        }



class BigKeys(Check):
    id: ClassVar[str] = "redis.big-keys"
    engine: ClassVar[Engine] = "redis"
    title: ClassVar[str] = "No key is too big to read, delete or migrate without blocking"
    severity: ClassVar[Severity] = Severity.MEDIUM
    rationale: ClassVar[str] = (
        "Redis runs commands one at a time: reading a huge hash whole, deleting a million-member set or "
        "migrating a big key in a cluster blocks every other client for that long, and a big key pins its "
        "slot's memory on one node. Found from the whole keyspace, not a sample."
    )
    fix_availability: ClassVar[FixAvailability] = FixAvailability.NEVER
    Options = BigKeysOptions
    needs = (KeyspaceFact,)

    async def gather(self, session: Any, scope: Scope) -> KeyspaceScan:
        return (await self.fact(KeyspaceFact, session, scope)).said_to(scope)

    def evaluate(self, facts: KeyspaceScan, scope: Scope) -> list[Finding]:
        options: BigKeysOptions = scope.options
        thresholds = options.thresholds()
        candidates = [
            big for kind, keys in facts.big_keys.items() if kind in thresholds
            for big in keys if big.length >= thresholds[kind]
        ]
        # Biggest first, across types: by how far past its own threshold each key is.
        candidates.sort(key=lambda b: (-b.length / thresholds[b.type], b.db, b.key))
        listed = candidates[: options.report_limit]
        findings = [self._key_finding(scope, facts, big, thresholds[big.type], rank) for rank, big in enumerate(listed, 1)]
        over = {kind: count for kind, count in facts.over_threshold.items() if kind in thresholds}
        unlisted = sum(over.values()) - len(listed)
        if unlisted > 0:
            findings.append(self.finding(
                scope,
                object=facts.source,
                title=f"{unlisted:,} more big keys",
                message=(
                    f"Besides the {len(listed)} biggest keys reported one by one, {unlisted:,} more pass their "
                    f"threshold: " + ", ".join(f"{count:,} {kind}" for kind, count in sorted(over.items())) + "."
                ),
                evidence={"over_threshold": over, "thresholds": thresholds, "reported": len(listed), "scan": facts.summary()},
                key="more",
            ))
        return findings

    def _key_finding(self, scope: Scope, facts: KeyspaceScan, big: BigKey, threshold: int, rank: int) -> Finding:
        unit = UNIT.get(big.type, "elements")
        kind, advice = advice_for(big, [p.pattern for p in scope.config.expect.persistent])
        size = human_bytes(big.length) if big.type == "string" else f"{big.length:,} {unit}"
        memory = f", {human_bytes(big.memory_bytes)} in memory" if big.memory_bytes is not None and big.type != "string" else ""
        where = f"db {big.db}" + (f" on {big.node}" if big.node else "")
        return self.finding(
            scope,
            object=big.key,
            title=f"Big {big.type}: {big.key}",
            message=(
                f"{big.type.capitalize()} {big.key} ({where}) holds {size}{memory}, past the threshold of "
                f"{human_bytes(threshold) if big.type == 'string' else f'{threshold:,} {unit}'}. "
                f"{advice}" + ("" if kind == "keep-all" else " Delete it with UNLINK, not DEL.")
            ),
            evidence={
                "key": big.key,
                "db": big.db,
                "type": big.type,
                "length": big.length,
                "unit": unit,
                "threshold": threshold,
                "memory_bytes": big.memory_bytes,
                "ttl_s": big.ttl,
                "rank": rank,
                "kind": kind,
                "over_threshold_of_type": facts.over_threshold.get(big.type, 0),
                **({"node": big.node} if big.node else {}),
                "scan": facts.summary(),
            },
            severity=Severity.HIGH if big.length >= threshold * 10 else Severity.MEDIUM,
            key=f"db{big.db}",
        )


def advice_for(big: BigKey, persistent: list[str]) -> tuple[str, str]:
    """("keep-all" | "bounded" | "unknown", the advice) for a big key, from what its name and the
    declared rules say it is for."""
    pattern = infer_pattern(big.key)
    declared = first_matching(persistent, pattern, big.key)
    if declared is not None or is_all_time(big.key):
        why = f'declared persistent ("{declared}")' if declared is not None else "all-time by its name"
        return "keep-all", f"{why[0].upper()}{why[1:]}. " + KEEP_ALL_ADVICE.get(big.type, "")
    if (period_word(pattern) is not None or time_bucket(pattern, [big.key]) is not None) and big.type in BOUNDED_ADVICE:
        return "bounded", BOUNDED_ADVICE[big.type]
    return "unknown", ADVICE.get(big.type, "")
