"""redis.ttl-coverage: key patterns whose keys lack the TTL they should have.

The whole keyspace is read (SCAN, never KEYS) and grouped by inferred key pattern; each
pattern is judged against the declared rules first (`expect.ttl`, `expect.persistent`) and
against two heuristics otherwise: most keys of a pattern carry a TTL but some do not (one
write path forgot `EX`), or none does while the name says the data is short-lived.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field

from checks.engine import Check, CheckOptions, Scope, resolve_options
from checks.model import Engine, Finding, Fix, FixAvailability, FixSafety, FixStep, Severity
from checks.redis._patterns import ephemeral_reason, first_matching, pattern_glob_and_regex
from checks.redis._scan import DatabaseScan, KeyspaceScan, PatternStats, ScanPlan, shared_scan

FIX_BATCH = 500
# Round a TTL up to one a human would have chosen, so siblings' remaining TTLs give the original.
NICE_TTLS = [60, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400, 172800, 259200, 604800,
             1209600, 2592000, 7776000, 15552000, 31536000]
# A starting point when nothing tells the TTL: shown in a manual fix, never applied as is.
SUGGESTED_TTL = {
    "session": 604800, "cache": 86400, "rate limit": 3600, "lock": 300, "token": 86400,
    "one-time code": 900, "feed": 604800, "online marker": 300, "temporary": 86400,
}
DATE_BUCKET_TTL = 172800


class KeyspaceScanOptions(CheckOptions):
    """How the keyspace is read; redis.big-keys reads it in the same pass, with these."""

    scan_limit: int | None = Field(
        default=None, ge=1,
        description="Stop after this many keys (over all databases) and extrapolate; unset: the whole keyspace.",
    )
    throttle: int | None = Field(
        default=None, ge=1, description="Keys read per second at most, to spare a busy production server; unset: no limit.",
    )
    scan_count: int = Field(default=1000, ge=10, le=100000, description="SCAN COUNT: keys asked for per SCAN call.")
    replica_url: str | None = Field(
        default=None,
        description="Scan this replica instead of the target (same databases; the target's password if the URL has none).",
    )
    memory_sample: bool = Field(
        default=True, description="Measure MEMORY USAGE on a bounded sample of each pattern's keys, and of big keys.",
    )


class TtlCoverageOptions(KeyspaceScanOptions):
    mixed_min_share: float = Field(
        default=0.5, gt=0, le=1,
        description="A pattern where at least this share of keys has a TTL, but not all, is a forgotten EXPIRE.",
    )
    min_keys: int = Field(
        default=5, ge=1, description="Patterns with fewer keys are left to declared rules (heuristics need a crowd).",
    )


def keyspace_plan(scope: Scope) -> ScanPlan:
    """The plan both keyspace checks share: scan settings from this check's options (as
    configured for the target), big-key thresholds from redis.big-keys'."""
    from checks.redis.big_keys import BigKeys

    scan: TtlCoverageOptions = resolve_options(TtlCoverage, scope.target, scope.config)  # type: ignore[assignment]
    big = resolve_options(BigKeys, scope.target, scope.config)
    return ScanPlan(
        scan_limit=scan.scan_limit,
        throttle=scan.throttle,
        count=scan.scan_count,
        replica_url=scan.replica_url,
        big_thresholds=tuple(sorted(big.thresholds().items())),  # type: ignore[attr-defined]
        big_keys_kept=big.report_limit,  # type: ignore[attr-defined]
        memory_sample=scan.memory_sample,
    )


async def read_keyspace(session: Any, scope: Scope, lengths: bool) -> KeyspaceScan:
    """The shared pass; `lengths`: this check needs each key's length (a read more per key)."""
    password = scope.config.password.get_secret_value() if scope.config.password is not None else None
    return await shared_scan(session, keyspace_plan(scope), scope.config.url, password, lengths=lengths)


def human_seconds(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            value = seconds / size
            return f"{value:.0f}{unit}" if value == int(value) or value >= 10 else f"{value:.1f}{unit}"
    return f"{seconds:.0f}s"


def nice_ceiling(seconds: int) -> int:
    return next((t for t in NICE_TTLS if t >= seconds), seconds)


@dataclass(frozen=True)
class Verdict:
    key: str
    severity: Severity
    title: str
    message: str
    ttl_to_set: int | None = None  # the fix's TTL, when one is offered
    ttl_basis: str = ""
    manual: bool = False


class TtlCoverage(Check):
    id: ClassVar[str] = "redis.ttl-coverage"
    engine: ClassVar[Engine] = Engine.REDIS
    title: ClassVar[str] = "Every key pattern that should expire has a TTL on all its keys"
    severity: ClassVar[Severity] = Severity.HIGH
    rationale: ClassVar[str] = (
        "A key written without EX lives until it is deleted. When one write path forgets the TTL, "
        "or a session, cache, rate-limit or lock key never had one, memory grows until Redis evicts "
        "keys the application needs or refuses writes with OOM. Samplers miss it: a forgotten TTL on "
        "0.5% of a pattern only shows when every key is read, which this check does (SCAN, throttleable)."
    )
    fix_availability: ClassVar[FixAvailability] = FixAvailability.SOMETIMES
    Options = TtlCoverageOptions

    async def gather(self, session: Any, scope: Scope) -> KeyspaceScan:
        return await read_keyspace(session, scope, lengths=False)

    def evaluate(self, facts: KeyspaceScan, scope: Scope) -> list[Finding]:
        options: TtlCoverageOptions = scope.options
        expect = scope.config.expect
        ttl_rules = {r.pattern: r.max.total_seconds() for r in expect.ttl if r.pattern is not None and r.max is not None}
        persistent = {p.pattern for p in expect.persistent}
        findings = []
        for database in facts.databases:
            for stats in sorted(database.patterns.values(), key=lambda s: s.pattern):
                example = stats.examples[0] if stats.examples else None
                rule = first_matching([*ttl_rules, *persistent], stats.pattern, example)
                if rule is not None and rule in persistent:  # declared both ways: persistence is the safer reading
                    verdicts = _judge_persistent(stats, rule)
                elif rule is not None:
                    verdicts = _judge_declared(stats, rule, int(ttl_rules[rule]))
                else:
                    verdicts = _judge_heuristic(stats, options, scope.target)
                for verdict in verdicts:
                    findings.append(self._finding(scope, facts, database, stats, rule, verdict))
        return findings

    def _finding(
        self, scope: Scope, scan: KeyspaceScan, database: DatabaseScan, stats: PatternStats, rule: str | None, verdict: Verdict
    ) -> Finding:
        factor = database.extrapolation
        estimated_missing = round(stats.without_ttl * factor)
        message = verdict.message
        if not database.complete:
            message += (
                f" Counts are extrapolated from {database.scanned:,} of {database.keys_total:,} keys in db {database.db} "
                f"(scan_limit {scan.scan_limit:,})." if scan.scan_limit else
                f" Counts are extrapolated from {database.scanned:,} of {database.keys_total:,} keys in db {database.db}."
            )
        evidence = pattern_evidence(stats, database) | {"scan": scan.summary()}
        if rule is not None:
            evidence["rule"] = rule
        return self.finding(
            scope,
            object=stats.pattern,
            title=verdict.title,
            message=message,
            evidence=evidence,
            severity=verdict.severity,
            fix=_expire_fix(stats, database, verdict, estimated_missing, scan) if verdict.ttl_to_set else None,
            key=f"db{database.db}:{verdict.key}",
        )


def _judge_persistent(stats: PatternStats, rule: str) -> list[Verdict]:
    if not stats.with_ttl:
        return []
    return [Verdict(
        key="persistent-expiring",
        severity=Severity.MEDIUM,
        title=f"Keys declared persistent carry a TTL: {stats.pattern}",
        message=(
            f"{stats.with_ttl:,} of {stats.keys:,} keys of {stats.pattern} will expire (TTL {human_seconds(stats.ttl_min)} to "
            f"{human_seconds(stats.ttl_max)}), but the rule \"{rule}\" declares them persistent: a write path sets EX "
            "where it should not, and the data will be gone."
        ),
    )]


def _judge_declared(stats: PatternStats, rule: str, max_seconds: int) -> list[Verdict]:
    verdicts = []
    if stats.without_ttl:
        verdicts.append(Verdict(
            key="missing-ttl",
            severity=Severity.HIGH,
            title=f"Keys without their declared TTL: {stats.pattern}",
            message=(
                f"{stats.without_ttl:,} of {stats.keys:,} keys of {stats.pattern} ({_pct(1 - stats.ttl_share)}) have no TTL, "
                f"but the rule \"{rule}\" says they expire within {human_seconds(max_seconds)}: they will never be removed."
            ),
            ttl_to_set=max_seconds,
            ttl_basis=f'the declared rule "{rule}" (max {human_seconds(max_seconds)})',
        ))
    if stats.ttl_max is not None and stats.ttl_max > max_seconds + 1:
        above = sum(1 for t in stats.ttl_sample if t > max_seconds + 1)
        share = above / len(stats.ttl_sample) if stats.ttl_sample else 0
        verdicts.append(Verdict(
            key="ttl-too-long",
            severity=Severity.MEDIUM,
            title=f"TTL longer than declared: {stats.pattern}",
            message=(
                f"Keys of {stats.pattern} expire in up to {human_seconds(stats.ttl_max)}, longer than the "
                f"{human_seconds(max_seconds)} the rule \"{rule}\" allows (about {_pct(share)} of the keys with a TTL)."
            ),
        ))
    return verdicts


def _judge_heuristic(stats: PatternStats, options: TtlCoverageOptions, target: str) -> list[Verdict]:
    if stats.keys < options.min_keys or not stats.without_ttl:
        return []
    reason = ephemeral_reason(stats.pattern)
    if stats.with_ttl and (stats.ttl_share >= options.mixed_min_share or reason):
        ttl = nice_ceiling(int(stats.ttl_max or 0))
        return [Verdict(
            key="missing-ttl",
            severity=Severity.HIGH,
            title=f"Some keys of a pattern lack its TTL: {stats.pattern}",
            message=(
                f"{stats.with_ttl:,} of {stats.keys:,} keys of {stats.pattern} expire ({_pct(stats.ttl_share)}), "
                f"{stats.without_ttl:,} do not: a write path that forgot EX. Those keys will never be removed."
            ),
            ttl_to_set=ttl,
            ttl_basis=f"the longest remaining TTL of the pattern's other keys ({human_seconds(stats.ttl_max)}), rounded up",
        )]
    if stats.with_ttl or reason is None:
        return []
    category = next((c for c in SUGGESTED_TTL if f"({c})" in reason), None)
    suggested = SUGGESTED_TTL.get(category or "", DATE_BUCKET_TTL)
    return [Verdict(
        key="ephemeral-no-ttl",
        severity=Severity.MEDIUM,
        title=f"Short-lived keys without any TTL: {stats.pattern}",
        message=(
            f"None of the {stats.keys:,} keys of {stats.pattern} has a TTL, yet they look short-lived: {reason}. "
            f'Declare the intended expiry ([[targets.{target}.expect.ttl]] pattern = "{stats.pattern}", max = "...") '
            f"or, if they are meant to stay, declare them persistent ([[targets.{target}.expect.persistent]])."
        ),
        ttl_to_set=suggested,
        ttl_basis=f"a guess from the name ({human_seconds(suggested)}); declare the rule to choose it",
        manual=True,
    )]


def _pct(share: float) -> str:
    value = share * 100
    return f"{value:.1f}%" if value < 10 or value > 90 else f"{value:.0f}%"


def pattern_evidence(stats: PatternStats, database: DatabaseScan) -> dict[str, Any]:
    factor = database.extrapolation
    per_key = stats.memory_per_key
    evidence: dict[str, Any] = {
        "pattern": stats.pattern,
        "db": database.db,
        "keys": stats.keys,
        "with_ttl": stats.with_ttl,
        "without_ttl": stats.without_ttl,
        "ttl_share": round(stats.ttl_share, 4),
        "ttl_min_s": stats.ttl_min,
        "ttl_median_s": stats.ttl_median,
        "ttl_max_s": stats.ttl_max,
        "ttl_spread": " / ".join(str(human_seconds(v)) for v in (stats.ttl_min, stats.ttl_median, stats.ttl_max))
        if stats.with_ttl else None,
        "types": dict(stats.types),
        "type": stats.main_type,
        "avg_length": round(stats.length_total / stats.length_keys, 1) if stats.length_keys else None,
        "memory_bytes_estimated": round(per_key * stats.keys * factor) if per_key is not None else None,
        "memory_sampled_keys": stats.memory_sampled_keys,
        "examples": stats.examples,
        "examples_without_ttl": stats.missing_ttl_examples,
    }
    if factor > 1:
        evidence["keys_estimated"] = round(stats.keys * factor)
        evidence["without_ttl_estimated"] = round(stats.without_ttl * factor)
    return evidence


def _expire_fix(
    stats: PatternStats, database: DatabaseScan, verdict: Verdict, estimated_missing: int, scan: KeyspaceScan
) -> Fix:
    ttl = int(verdict.ttl_to_set or 0)
    glob, regex = pattern_glob_and_regex(stats.pattern)
    step = FixStep(
        language="redis",
        command={
            "op": "expire-missing-ttl",
            "db": database.db,
            "match": glob,
            "pattern": stats.pattern,
            "regex": regex,
            "ttl_seconds": ttl,
            "batch": FIX_BATCH,
        },
        description=(
            f"SCAN MATCH {glob} in db {database.db}; for each key of {stats.pattern} whose TTL is -1, "
            f"EXPIRE key {ttl} NX, {FIX_BATCH} keys per batch; the keys changed are recorded."
        ),
    )
    inverse = FixStep(
        language="redis",
        command={"op": "persist-keys", "db": database.db, "pattern": stats.pattern, "match": glob, "regex": regex},
        description="PERSIST exactly the keys the EXPIRE step changed (as recorded when it ran), none other.",
    )
    count = f"~{estimated_missing:,}" if database.extrapolation > 1 else f"{estimated_missing:,}"
    notes = f"TTL {human_seconds(ttl)} ({ttl}s) from {verdict.ttl_basis}. "
    if scan.nodes:
        notes += "Cluster: the step runs on every master (" + ", ".join(scan.nodes) + "). "
    notes += "Keys older than the TTL are removed when it elapses: check the application can rebuild them."
    return Fix(
        summary=f"EXPIRE the {count} keys of {stats.pattern} (db {database.db}) that have no TTL: TTL {human_seconds(ttl)}",
        steps=(step,),
        safety=FixSafety.MANUAL if verdict.manual else FixSafety.UNSAFE,
        lock=f"No lock: {count} EXPIRE NX commands in batches of {FIX_BATCH}; those keys disappear {human_seconds(ttl)} later.",
        inverse=(inverse,),
        notes=notes,
    )
