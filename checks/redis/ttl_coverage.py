"""redis.ttl-coverage: key patterns whose keys lack the TTL they should have.

The whole keyspace is read (SCAN, never KEYS) and grouped by inferred key pattern; each
pattern is judged against the declared rules first (`expect.ttl`, `expect.persistent`:
persistent keys are never given a TTL) and otherwise from evidence, never from a word alone:

- keys named after a time bucket (`…:{date}`, `…:{hour}`): a TTL of twice the bucket (48 h
  for a day), and never less, whatever the other words say (`rate:` is not an hour);
- some keys with a TTL and some without (one write path forgot `EX`): the p90 of the TTLs
  the others carry;
- counters something else may aggregate (`post:votes:{id}` holding INCR integers): evidence
  only, a manual fix (an EXPIRE could drop counts not yet synced);
- a single key or pattern whose name names a period (`leaderboard:daily`) and has no TTL: a
  reused key, reset by a job or growing forever; a manual fix, never an EXPIRE;
- no TTL at all on a short-lived-looking name: how long its keys go unread (OBJECT IDLETIME
  sampled, OBJECT FREQ under LFU), the basis stated, and the fix manual when it is thin.

A declared TTL does not override that evidence: a rule over counters, a fixed-name board or keys
named to cover all time is reported as contradicting it, both sides shown, and its fix is manual.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field

from checks.contract import Check, CheckOptions, Scope
from checks.model import Engine, Finding, Fix, FixAvailability, FixSafety, FixStep, Severity
from checks.redis._patterns import (
    BUCKET_NAMES,
    counter_word,
    ephemeral_reason,
    first_matching,
    is_all_time,
    pattern_glob_and_regex,
    period_word,
    time_bucket,
)
from checks.redis._keyspace import KeyspaceFact
from checks.redis._scan import DatabaseScan, KeyspaceScan, PatternStats

FIX_BATCH = 500
# Round a TTL up to one a human would have chosen, so siblings' remaining TTLs give the original.
NICE_TTLS = [60, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400, 172800, 259200, 604800,
             1209600, 2592000, 7776000, 15552000, 31536000]
# With no evidence at all (nothing sampled): a starting point for a manual fix, never applied as is.
PLACEHOLDER_TTL = 86400
MIN_IDLE_SAMPLES = 30  # fewer idle times than this is a thin basis: the fix is manual


class TtlCoverageOptions(CheckOptions):
    mixed_min_share: float = Field(
        default=0.5, gt=0, le=1,
        description="A pattern where at least this share of keys has a TTL, but not all, is a forgotten EXPIRE.",
    )
    min_keys: int = Field(
        default=5, ge=1, description="Patterns with fewer keys are left to declared rules (heuristics need a crowd).",
    )


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
    ttl_to_set: int | None = None  # the fix's TTL, when an EXPIRE is offered
    ttl_basis: str = ""
    manual: bool = False
    advice: tuple[str, str] | None = None  # a manual fix without an EXPIRE step: (summary, what to do instead)
    basis: dict[str, Any] | None = None  # the figures the suggestion stands on, for the evidence


class TtlCoverage(Check):
    id: ClassVar[str] = "redis.ttl-coverage"
    engine: ClassVar[Engine] = "redis"
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
    needs = (KeyspaceFact,)

    async def gather(self, session: Any, scope: Scope) -> KeyspaceScan:
        return (await self.fact(KeyspaceFact, session, scope)).said_to(scope)

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
                    verdicts = _judge_declared(stats, rule, int(ttl_rules[rule]), _contradiction(stats))
                else:
                    verdicts = _judge_heuristic(stats, options, scope.target, facts)
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
        if verdict.basis:
            evidence["suggestion_basis"] = verdict.basis
        if verdict.ttl_to_set:
            fix = _expire_fix(stats, database, verdict, estimated_missing, scan)
        elif verdict.advice:
            summary, notes = verdict.advice
            fix = Fix(summary=summary, steps=(), safety=FixSafety.MANUAL, notes=notes.replace("NAME", scope.target))
        else:
            fix = None
        return self.finding(
            scope,
            object=stats.pattern,
            title=verdict.title,
            message=message,
            evidence=evidence,
            severity=verdict.severity,
            fix=fix,
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


def _contradiction(stats: PatternStats) -> tuple[str, str] | None:
    """What about these keys says an EXPIRE is wrong for them, whatever a rule declares: (kind,
    the evidence in words); None when nothing does."""
    counter = counter_word(stats.pattern)
    reason = ephemeral_reason(stats.pattern)
    if counter and not (reason is not None and "(rate limit)" in reason) and _holds_integers(stats):
        sampled, ints = sum(stats.encodings.values()), stats.encodings.get("int", 0)
        return "counter", (f'they are counters ("{counter}" in the name, {ints} of {sampled} sampled values stored as '
                           "integers: INCR-style) that another store may aggregate: an EXPIRE drops counts not yet "
                           "synced")
    fixed_name = "{" not in stats.pattern
    if fixed_name and is_all_time(stats.pattern):
        return "all-time", f"{stats.pattern} is one key named to cover all time: an EXPIRE deletes all of it"
    period = period_word(stats.pattern)
    if fixed_name and period is not None:
        return "fixed-name board", (f"{stats.pattern} is one fixed-name key for a {period[0]} board, reused every "
                                    "period (reset by a job, not replaced by a new key): an EXPIRE deletes the whole "
                                    "board mid-period, not its old entries")
    return None


def _judge_declared(stats: PatternStats, rule: str, max_seconds: int,
                    contradiction: tuple[str, str] | None = None) -> list[Verdict]:
    verdicts = []
    if stats.without_ttl and contradiction is not None:
        kind, evidence = contradiction
        declared = f'the rule "{rule}" declares that they expire within {human_seconds(max_seconds)}'
        verdicts.append(Verdict(
            key="declared-contradicted",
            severity=Severity.MEDIUM,
            title=f"Declared TTL contradicts the evidence: {stats.pattern}",
            message=(
                f"{stats.without_ttl:,} of {stats.keys:,} keys of {stats.pattern} have no TTL. Declared: {declared}. "
                f"Evidence: {evidence}. dbvitals will not set the EXPIRE: decide which is right."
            ),
            manual=True,
            advice=(
                f"Settle the declared TTL of {stats.pattern} against the evidence (manual)",
                f"Declared: {declared} (EXPIRE {human_seconds(max_seconds)}). Evidence: {evidence}. If the rule is "
                f"right, set the TTL where the keys are written (or where they are synced); if the evidence is, "
                f"change the rule (or declare the keys persistent in [[targets.NAME.expect.persistent]]).",
            ),
            basis={"kind": "declared rule contradicted", "declared": declared, "evidence_kind": kind,
                   "evidence": evidence},
        ))
    elif stats.without_ttl:
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


def _judge_heuristic(stats: PatternStats, options: TtlCoverageOptions, target: str, scan: KeyspaceScan) -> list[Verdict]:
    """The first rule that applies, most specific first: counters, time buckets, a forgotten EX,
    a reused period key, short-lived names without any TTL."""
    if not stats.without_ttl:
        return []
    examples = [*stats.examples, *stats.missing_ttl_examples]
    reason = ephemeral_reason(stats.pattern)
    counter = counter_word(stats.pattern)
    bucket = time_bucket(stats.pattern, examples)
    rate_limit = reason is not None and "(rate limit)" in reason
    if counter and not rate_limit and stats.keys >= options.min_keys and _holds_integers(stats):
        return [_counter(stats, counter)]
    if bucket is not None:
        return [_bucketed(stats, bucket, reason)]
    if stats.with_ttl and stats.keys >= options.min_keys and (stats.ttl_share >= options.mixed_min_share or reason):
        return [_mixed(stats)]
    period = period_word(stats.pattern)
    if period is not None and not stats.with_ttl:
        return [_reused_period_key(stats, period[0])]
    if stats.with_ttl or reason is None or stats.keys < options.min_keys:
        return []
    return [_unread(stats, reason, target, scan)]


def _holds_integers(stats: PatternStats) -> bool:
    """Strings holding integers (OBJECT ENCODING int on most sampled keys: INCR-style values)."""
    if stats.main_type != "string":
        return False
    sampled = sum(stats.encodings.values())
    return sampled > 0 and stats.encodings.get("int", 0) >= 0.8 * sampled


def _ttl_spread(stats: PatternStats) -> dict[str, Any]:
    return {"ttl_sampled": len(stats.ttl_sample), "ttl_p50_s": stats.ttl_percentile(0.5),
            "ttl_p90_s": stats.ttl_percentile(0.9), "ttl_max_s": stats.ttl_max}


def _counter(stats: PatternStats, word: str) -> Verdict:
    sampled = sum(stats.encodings.values())
    ints = stats.encodings.get("int", 0)
    existing = (f" The {stats.with_ttl:,} that expire carry {_spread_text(stats)}." if stats.with_ttl else "")
    return Verdict(
        key="counter-no-ttl",
        severity=Severity.MEDIUM if stats.with_ttl else Severity.LOW,
        title=f"Counters without a TTL: {stats.pattern}",
        message=(
            f"{stats.without_ttl:,} of {stats.keys:,} keys of {stats.pattern} have no TTL. They look like counters "
            f'("{word}" in the name, {ints} of {sampled} sampled values stored as integers: INCR-style) that may be '
            f"aggregated into another store.{existing} An EXPIRE here could drop counts not yet synced: expire them "
            "where the sync confirms them, not from here."
        ),
        manual=True,
        advice=(
            "Expire counters where they are synced, not from here",
            "In the job that copies them to the store of record, EXPIRE (or GETDEL) each key once its count is "
            "written there; if they are the only copy, declare them persistent ([[targets.NAME.expect.persistent]]).",
        ),
        basis={"kind": "counter", "word": word, "sampled_values": sampled, "integer_values": ints,
               **(_ttl_spread(stats) if stats.with_ttl else {})},
    )


def _bucketed(stats: PatternStats, bucket: int, reason: str | None) -> Verdict:
    """The bucket sets the floor. Whether the data may go at all is known when siblings expire or
    the name says short-lived (rate, session, cache...): otherwise (daily stats, invoices by day)
    the fix is manual."""
    floor = 2 * bucket
    name = BUCKET_NAMES.get(bucket, human_seconds(bucket))
    p90 = stats.ttl_percentile(0.9)
    ttl = nice_ceiling(max(floor, p90 or 0))
    basis_text = f"one {name} bucket plus a {name} of margin ({human_seconds(floor)}), never less"
    if p90 is not None and p90 > floor:
        basis_text = f"the p90 of the TTLs the other keys carry ({human_seconds(p90)}), above the {name} bucket's floor"
    if stats.with_ttl:
        message = (
            f"{stats.with_ttl:,} of {stats.keys:,} keys of {stats.pattern} expire, {stats.without_ttl:,} do not. "
            f"The keys are per-{name} buckets (a key per {name}, never reused): those without a TTL stay forever."
        )
    else:
        message = (
            f"None of the {stats.keys:,} keys of {stats.pattern} has a TTL, yet each is a per-{name} bucket "
            f"(a key per {name}, never written again once it is past): every past {name} stays in memory forever."
        )
    message += (f" A TTL must outlive the bucket it counts: {human_seconds(ttl)}, not less — a shorter one would "
                f"reset a {name}'s count before the {name} ends.")
    disposable = bool(stats.with_ttl) or (reason is not None and "date or timestamp" not in reason)
    if not disposable:
        message += (" Nothing says these keys are disposable (no sibling expires, no short-lived word in the name): "
                    "if past buckets are kept on purpose, declare them persistent.")
        basis_text += "; whether past buckets may go at all is not known: a manual fix"
    return Verdict(
        key="missing-ttl" if stats.with_ttl else "bucket-no-ttl",
        severity=Severity.HIGH if stats.with_ttl else Severity.MEDIUM,
        title=f"Per-{name} keys without a TTL: {stats.pattern}",
        message=message,
        ttl_to_set=ttl,
        ttl_basis=basis_text,
        manual=not disposable,
        basis={"kind": "time bucket", "bucket": name, "bucket_s": bucket, "floor_s": floor,
               **(_ttl_spread(stats) if stats.with_ttl else {})},
    )


def _mixed(stats: PatternStats) -> Verdict:
    p90 = stats.ttl_percentile(0.9) or stats.ttl_max or 0
    ttl = nice_ceiling(int(p90))
    return Verdict(
        key="missing-ttl",
        severity=Severity.HIGH,
        title=f"Some keys of a pattern lack its TTL: {stats.pattern}",
        message=(
            f"{stats.with_ttl:,} of {stats.keys:,} keys of {stats.pattern} expire ({_pct(stats.ttl_share)}), "
            f"{stats.without_ttl:,} do not: a write path that forgot EX. Those keys will never be removed. "
            f"The others carry {_spread_text(stats)}."
        ),
        ttl_to_set=ttl,
        ttl_basis=(f"the p90 of the remaining TTLs of {len(stats.ttl_sample)} sampled keys of the pattern "
                   f"({human_seconds(p90)}), rounded up"),
        basis={"kind": "ttl distribution", **_ttl_spread(stats)},
    )


def _spread_text(stats: PatternStats) -> str:
    return (f"TTLs of p50 {human_seconds(stats.ttl_percentile(0.5))}, p90 {human_seconds(stats.ttl_percentile(0.9))}, "
            f"max {human_seconds(stats.ttl_max)}")


def _reused_period_key(stats: PatternStats, word: str) -> Verdict:
    what = f"key {stats.pattern}" if stats.keys == 1 else f"{stats.keys:,} keys of {stats.pattern}"
    return Verdict(
        key="period-no-ttl",
        severity=Severity.MEDIUM,
        title=f'A "{word}" key without a TTL: {stats.pattern}',
        message=(
            f'The {what} ("{word}" in the name) has no TTL, and its name is the same every period: either a job '
            "resets it when the period ends, or it has been accumulating since it was first written. An EXPIRE "
            "would not help: it would remove the current period's data mid-period."
            + _idle_text(stats)
        ),
        manual=True,
        advice=(
            f"One key per period with a TTL, or declare {stats.pattern} persistent",
            f"Name one key per period ({stats.pattern}:{{date}}) with a TTL of two periods, or confirm the job that "
            f"resets it and declare it persistent ([[targets.NAME.expect.persistent]] pattern = \"{stats.pattern}\").",
        ),
        basis={"kind": "period word", "word": word, **_access_basis(stats)},
    )


def _idle_text(stats: PatternStats) -> str:
    idle = stats.access_percentile(0.5)
    if idle is None:
        return ""
    return f" Sampled keys were last read {human_seconds(idle)} ago (median)."


def _access_basis(stats: PatternStats) -> dict[str, Any]:
    sample = stats.access_reservoir.items
    return {"access_sampled": len(sample), "access_p50": stats.access_percentile(0.5),
            "access_p90": stats.access_percentile(0.9), "access_max": stats.access_max} if sample else {}


def _unread(stats: PatternStats, reason: str, target: str, scan: KeyspaceScan) -> Verdict:
    """No key has a TTL: suggest from how long the keys go unread."""
    sample = stats.access_reservoir.items
    thin: list[str] = []
    basis: dict[str, Any] = {"kind": "idle time" if scan.access == "idle" else "access frequency",
                             **_access_basis(stats)}
    if scan.access == "idle" and sample:
        p90 = stats.access_percentile(0.9) or 0
        ttl = nice_ceiling(max(2 * p90, 60))
        ttl_basis = (f"twice the p90 of how long {len(sample)} sampled keys had gone unread "
                     f"(OBJECT IDLETIME p50 {human_seconds(stats.access_percentile(0.5))}, p90 {human_seconds(p90)}, "
                     f"max {human_seconds(stats.access_max)}), rounded up")
        if len(sample) < MIN_IDLE_SAMPLES:
            thin.append(f"only {len(sample)} keys sampled (fewer than {MIN_IDLE_SAMPLES})")
        if scan.uptime_s is not None and p90 * 2 >= scan.uptime_s:
            thin.append(f"the server has been up {human_seconds(scan.uptime_s)}: idle times cannot be longer")
        if (stats.access_max or 0) < 60:
            thin.append("every sampled key was read or written within the last minute: too recent to tell how long "
                        "they stay unread")
        evidence_text = (f"Sampled keys went unread p50 {human_seconds(stats.access_percentile(0.5))}, "
                         f"p90 {human_seconds(p90)} (OBJECT IDLETIME, {len(sample)} keys).")
    else:
        ttl = PLACEHOLDER_TTL
        if scan.access == "freq" and sample:
            cold = sum(1 for f in sample if f == 0)
            thin.append("an LFU policy tracks how often keys are read, not how long ago (no idle time)")
            evidence_text = (f"Under {scan.maxmemory_policy}, {cold} of {len(sample)} sampled keys have an access "
                             f"frequency of 0 (OBJECT FREQ p50 {stats.access_percentile(0.5)}).")
            basis["cold_keys"] = cold
        else:
            thin.append("no key's idle time was sampled (memory_sample off, or only keys this run had already read)")
            evidence_text = ""
        ttl_basis = f"nothing measured: a placeholder of {human_seconds(ttl)}, to be chosen"
    if thin:
        basis["thin"] = thin
        ttl_basis += "; thin basis: " + "; ".join(thin)
    return Verdict(
        key="ephemeral-no-ttl",
        severity=Severity.MEDIUM,
        title=f"Short-lived keys without any TTL: {stats.pattern}",
        message=(
            f"None of the {stats.keys:,} keys of {stats.pattern} has a TTL, yet they look short-lived: {reason}. "
            + (evidence_text + " " if evidence_text else "")
            + f'Declare the intended expiry ([[targets.{target}.expect.ttl]] pattern = "{stats.pattern}", max = "...") '
            f"or, if they are meant to stay, declare them persistent ([[targets.{target}.expect.persistent]])."
        ),
        ttl_to_set=ttl,
        ttl_basis=ttl_basis,
        manual=bool(thin),
        basis=basis,
    )


def _pct(share: float) -> str:
    value = share * 100
    return f"{value:.1f}%" if value < 10 or value > 90 else f"{value:.0f}%"


def pattern_evidence(stats: PatternStats, database: DatabaseScan) -> dict[str, Any]:
    factor = database.extrapolation
    memory = stats.memory_estimate(factor)
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
        "memory_bytes_estimated": memory[0] if memory else None,
        "memory_error_bytes": memory[1] if memory else None,  # ± at 95 %, from the sample's spread
        "memory_sampled_keys": stats.memory_sampled_keys,
        "ttl_histogram": stats.ttl_histogram,
        "counts": "exact" if database.counts_exact else "extrapolated" if not database.complete else (
            f"approximate (±{database.count_error:,} keys in the database)" if database.count_error is not None
            else "approximate"),
        **({"encodings": dict(stats.encodings)} if stats.encodings else {}),
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
