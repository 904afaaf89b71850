"""mongodb.ttl-coverage: collections that grow forever because nothing expires them, and
declared retention rules (`[[targets.NAME.expect.ttl]]`) with no TTL index behind them."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

from pydantic import Field

from checks.config import Duration
from checks.engine import Check, CheckOptions, Scope
from checks.model import Engine, Finding, Fix, FixAvailability, FixSafety, FixStep, Severity
from checks.mongodb._inventory import (
    RANDOM,
    CollectionInfo,
    FieldSample,
    OverBudget,
    Sample,
    age_days,
    budgeted,
    call_budget,
    counted,
    create_indexes,
    drop_index,
    figure,
    format_seconds,
    matches_any,
    measured,
    oid_time,
    sample,
)
from checks.mongodb._ttl import (
    Expiring,
    RuleTarget,
    count_expiring,
    first_pass_warning,
    is_expiry_field,
    rules_and_inventory,
    time_name_rank,
    ttl_spec,
)

# Collections whose names say they hold events rather than entities: growth there is the norm.
EVENT_WORDS = (
    "log", "event", "history", "transaction", "session", "audit", "round", "flag", "notification",
    "message", "job", "task", "attempt", "metric", "activity", "outbox", "queue", "report", "trace",
)
DATE_SHARE = 0.5  # a field is a date field when at least half its sampled values are dates


class TtlCoverageOptions(CheckOptions):
    sample_size: int = Field(default=200, ge=10, le=10_000, description="Documents sampled per collection ($sample).")
    min_documents: int = Field(default=10_000, ge=0, description="Collections smaller than this are not reported.")
    min_age: Duration = Field(default="30d", description="Only collections whose oldest documents are older than this.")
    suggested_retention: Duration = Field(
        default="90d", description="Retention put in the suggested TTL index when no rule is declared."
    )
    keep_forever: list[str] = Field(
        default_factory=list, description='Collections (globs) meant to keep every document, e.g. ["users", "orders*"].'
    )
    exact_count_limit: int = Field(
        default=200_000, ge=0, description="Above this many documents, expiring documents are estimated from a sample."
    )


@dataclass(frozen=True)
class Growing:
    """A collection with date fields and no TTL index."""

    info: CollectionInfo
    sample: Sample
    field: str  # the field a TTL index would use
    oldest: dt.datetime | None  # of that field: exact when indexed, else the oldest sampled
    oldest_exact: bool
    oldest_id_time: dt.datetime | None  # the _id ObjectId's creation time of the first document
    expiring: Expiring


@dataclass(frozen=True)
class UnenforcedRule:
    target: RuleTarget
    other_ttl: tuple[str, ...]  # TTL indexes on other fields
    plain_index: str | None  # a non-TTL single-field index on the rule's field, convertible by collMod
    taken_key: bool  # {field: 1} is taken by another index: build on {field: -1}
    expiring: Expiring | None


@dataclass(frozen=True)
class Unassessed:
    """A collection that could be growing but whose size or sample did not answer in time."""

    info: CollectionInfo
    reason: str


@dataclass(frozen=True)
class TtlCoverageFacts:
    now: dt.datetime
    growing: list[Growing]
    rules: list[UnenforcedRule]
    unassessed: list[Unassessed] = dataclass_field(default_factory=list)


def ttl_fields(info: CollectionInfo) -> set[str]:
    return {i.fields[0] for i in info.indexes if i.is_ttl and len(i.key) == 1}


def choose_field(fields: dict[str, FieldSample]) -> str | None:
    """The date field a TTL would use: an expiry field first, then creation times, then any."""
    dated = [name for name, f in fields.items() if name != "_id" and f.share("date") >= DATE_SHARE]
    if not dated:
        return None
    return min(dated, key=lambda n: (time_name_rank(n) if time_name_rank(n) is not None else 99, n))


class TtlCoverage(Check):
    id = "mongodb.ttl-coverage"
    engine = Engine.MONGODB
    title = "Collections that grow forever with no TTL index"
    severity = Severity.MEDIUM
    fix_availability = FixAvailability.SOMETIMES
    rationale = (
        "Failed transactions, finished game rounds, resolved moderation flags and logs pile up when nothing "
        "expires them: the working set outgrows memory, backups and index builds slow down, and the first "
        "clean-up becomes a mass delete. A TTL index expires documents continuously, a little at a time."
    )
    Options = TtlCoverageOptions

    async def gather(self, session: Any, scope: Scope) -> TtlCoverageFacts:
        options: TtlCoverageOptions = scope.options
        resolved, infos = await rules_and_inventory(session, scope.config)
        databases = await session.databases()  # growth is judged here; a rule may name another
        ruled = {(r.database, r.rule.collection) for r in resolved}
        budget = call_budget(scope.config)
        unruled = [
            info
            for db in databases
            for info in infos[db].values()
            if not any(i.is_ttl for i in info.indexes)
            and not matches_any(info.name, options.keep_forever)
            and (db, info.name) not in ruled
        ]
        sized = await asyncio.gather(*(counted(session, info, budget) for info in unruled))
        unassessed = [Unassessed(info, info.unknown) for info in sized if info.count is None]
        candidates = [info for info in sized if info.count is not None and info.count >= max(options.min_documents, 1)]
        growing = await asyncio.gather(*(self._growing(session, info, options, budget) for info in candidates))
        unenforced = await asyncio.gather(*(self._rule(session, r, options, budget) for r in resolved))
        return TtlCoverageFacts(
            now=dt.datetime.now(dt.timezone.utc),
            growing=[g for g in growing if isinstance(g, Growing)],
            rules=[u for u in unenforced if u is not None],
            unassessed=unassessed + [g for g in growing if isinstance(g, Unassessed)],
        )

    async def _growing(
        self, session: Any, info: CollectionInfo, options: TtlCoverageOptions, budget: float
    ) -> Growing | Unassessed | None:
        drawn = await sample(session, info, options.sample_size, budget)
        if drawn.unknown:
            return Unassessed(info, drawn.unknown)
        field = choose_field(drawn.fields)
        if field is None:
            return None
        coll = session.client[info.database][info.name]
        oldest, exact = drawn.fields[field].oldest, False
        if any(i.fields[:1] == (field,) for i in info.indexes):
            first = await _first(session, budget, f"the oldest {field}",
                                 lambda: coll.find_one({field: {"$type": "date"}}, {field: 1}, sort=[(field, 1)]))
            if first is not None:
                oldest, exact = first[field], True
        first_id = await _first(session, budget, "the first _id", lambda: coll.find_one({}, {"_id": 1}, sort=[("_id", 1)]))
        seconds = 0 if is_expiry_field(field) else int(options.suggested_retention.total_seconds())
        expiring = await count_expiring(
            session, info, field, seconds, None, exact_limit=options.exact_count_limit, sample_size=options.sample_size,
            budget=budget,
        )
        info = await measured(session, info, budget)
        return Growing(info, drawn, field, oldest, exact, oid_time(first_id["_id"]) if first_id else None, expiring)

    async def _rule(
        self, session: Any, target: RuleTarget, options: TtlCoverageOptions, budget: float
    ) -> UnenforcedRule | None:
        field = str(target.rule.field)
        info = target.info
        indexes = info.indexes if info else ()
        if any(i.is_ttl and i.fields == (field,) for i in indexes):
            return None  # enforced; whether it agrees with the rule is mongodb.ttl-misconfigured's call
        plain = next(
            (i for i in indexes if len(i.key) == 1 and i.fields == (field,) and not i.is_ttl and i.is_plain
             and not i.options.get("partialFilterExpression")),
            None,
        )
        expiring = None
        if info is not None:
            info = await counted(session, info, budget)
            expiring = await count_expiring(
                session, info, field, target.seconds, target.rule.filter,
                exact_limit=options.exact_count_limit, sample_size=options.sample_size, budget=budget,
            )
            target = RuleTarget(target.rule, target.database, info)
        return UnenforcedRule(
            target=target,
            other_ttl=tuple(i.name for i in indexes if i.is_ttl),
            plain_index=plain.name if plain and not target.rule.filter else None,
            taken_key=any(i.key == ((field, 1),) for i in indexes),
            expiring=expiring,
        )

    def evaluate(self, facts: TtlCoverageFacts, scope: Scope) -> list[Finding]:
        options: TtlCoverageOptions = scope.options
        findings = [f for g in facts.growing if (f := self._growing_finding(scope, g, facts.now, options))]
        findings.extend(self._rule_finding(scope, r) for r in facts.rules)
        findings.extend(self._unassessed_finding(scope, u) for u in facts.unassessed)
        return findings

    def _unassessed_finding(self, scope: Scope, u: Unassessed) -> Finding:
        return self.finding(
            scope,
            object=u.info.namespace,
            title=f"Growth of {u.info.name} not assessed",
            message=(
                f"{u.info.namespace} has no TTL index, but whether it keeps growing is unknown: {u.reason}. "
                "Its size and the age of its oldest documents were not read; nothing is claimed about it."
            ),
            evidence={"namespace": u.info.namespace, "documents": figure(u.info.count, u.info), "reason": u.reason},
            severity=Severity.INFO,
            key="unassessed",
        )

    def _growing_finding(self, scope: Scope, g: Growing, now: dt.datetime, options: TtlCoverageOptions) -> Finding | None:
        field_age = age_days(g.oldest, now)
        id_age = age_days(g.oldest_id_time, now)
        oldest_age = max((a for a in (field_age, id_age) if a is not None), default=None)
        if oldest_age is None or oldest_age * 86400 < options.min_age.total_seconds():
            return None
        info = g.info
        eventlike = any(word in info.name.lower() for word in EVENT_WORDS)
        seconds = 0 if is_expiry_field(g.field) else int(options.suggested_retention.total_seconds())
        spec = ttl_spec(g.field, seconds, None)
        dated = {n: f.share("date") for n, f in g.sample.fields.items() if f.share("date") >= DATE_SHARE and n != "_id"}
        retention = "at the time it holds" if seconds == 0 else f"{format_seconds(seconds)} after it"
        return self.finding(
            scope,
            object=info.namespace,
            title=f"{info.name} grows with no TTL index",
            message=(
                f"{info.namespace} holds {info.count:,} documents ({_mib(info)}) and nothing expires them: "
                f"its oldest documents are {oldest_age:,.0f} days old. If they are not meant to be kept forever, "
                f"a TTL index on {g.field} would delete each document {retention}. "
                "Declare the retention ([[targets.NAME.expect.ttl]]) or list the collection in keep_forever."
            ),
            evidence={
                "namespace": info.namespace,
                "documents": info.count,
                "bytes": figure(info.size, info),
                "storage_bytes": figure(info.storage_size, info),
                "date_fields": {n: f"{share:.0%} dates in sample" for n, share in dated.items()},
                "ttl_field": g.field,
                "oldest_field_value": g.oldest.isoformat() if g.oldest else None,
                "oldest_field_value_basis": "indexed minimum" if g.oldest_exact else f"oldest of {g.sample.documents} sampled"
                + ("" if g.sample.method == RANDOM else " (the first in natural order)"),
                "sampled_by": g.sample.method,
                "oldest_document_by_id": g.oldest_id_time.isoformat() if g.oldest_id_time else None,
                "oldest_age_days": oldest_age,
                "looks_like_events": eventlike,
                "first_pass_deletes": g.expiring.documents,
                "first_pass_basis": g.expiring.basis,
            },
            severity=Severity.MEDIUM if eventlike else Severity.LOW,
            fix=Fix(
                summary=f"Expire {info.name} documents {retention} with a TTL index on {g.field}",
                steps=(FixStep("mongodb", create_indexes(info.name, spec), f"TTL index on {g.field}", database=info.database),),
                safety=FixSafety.MANUAL,
                lock="index build; then continuous deletes by the TTL monitor",
                inverse=(FixStep("mongodb", drop_index(info.name, spec["name"]), "stop expiring (deleted documents stay deleted)", database=info.database),),
                notes=f"The retention ({format_seconds(seconds)}) is a suggestion: choose yours. " + first_pass_warning(g.expiring),
            ),
        )

    def _rule_finding(self, scope: Scope, r: UnenforcedRule) -> Finding:
        rule, target = r.target.rule, r.target
        coll, db, field = str(rule.collection), target.database, str(rule.field)
        seconds = target.seconds
        evidence: dict[str, Any] = {
            "namespace": f"{db}.{coll}",
            "rule": {"field": field, "after": format_seconds(seconds), "filter": rule.filter},
            "collection_exists": target.info is not None,
            "documents": figure(target.info.count, target.info) if target.info else 0,
            "ttl_indexes_on_other_fields": list(r.other_ttl),
        }
        if r.expiring is not None:
            evidence["first_pass_deletes"] = r.expiring.documents
            evidence["first_pass_basis"] = r.expiring.basis
        warning = first_pass_warning(r.expiring) if r.expiring else "The collection is empty or missing: nothing is deleted at once."
        if r.plain_index:
            steps = (FixStep("mongodb", {"collMod": coll, "index": {"name": r.plain_index, "expireAfterSeconds": seconds}},
                             f"make {r.plain_index} a TTL index (MongoDB 5.1+)", database=db),)
            original = target.info.index(r.plain_index) if target.info else None
            inverse = (
                FixStep("mongodb", drop_index(coll, r.plain_index), "drop the TTL index", database=db),
                FixStep("mongodb", create_indexes(coll, original.create_spec() if original else {"key": {field: 1}, "name": r.plain_index}),
                        f"rebuild {r.plain_index} without TTL", database=db),
            )
            lock = "collMod: a brief exclusive collection lock; then continuous deletes by the TTL monitor"
        else:
            spec = ttl_spec(field, seconds, rule.filter, direction=-1 if r.taken_key else 1)
            steps = (FixStep("mongodb", create_indexes(coll, spec), f"TTL index on {field}", database=db),)
            inverse = (FixStep("mongodb", drop_index(coll, spec["name"]), "stop expiring (deleted documents stay deleted)", database=db),)
            lock = "index build; then continuous deletes by the TTL monitor"
        scope_words = f" where {json.dumps(rule.filter, default=str)}" if rule.filter else ""
        return self.finding(
            scope,
            object=f"{db}.{coll}",
            title=f"Retention rule for {coll}.{field} is not enforced",
            message=(
                f"The config keeps {coll} documents{scope_words} for {format_seconds(seconds)} after {field}, but "
                f"{db}.{coll} has no TTL index on {field}: nothing is ever deleted. {warning}"
            ),
            evidence=evidence,
            severity=Severity.HIGH,
            key=f"rule:{field}",
            fix=Fix(
                summary=f"Create the TTL index the retention rule declares ({field}, {format_seconds(seconds)})",
                steps=steps,
                safety=FixSafety.UNSAFE,  # it deletes data, by design
                lock=lock,
                inverse=inverse,
                notes=warning,
            ),
        )


def _mib(info: CollectionInfo) -> str:
    return f"{info.size / 1048576:,.1f} MiB" if info.size is not None else f"size unknown: {info.unknown}"


async def _first(session: Any, budget: float, what: str, call: Any) -> dict[str, Any] | None:
    """One document by an ordered read; None when it does not answer in time (the sampled
    figure stands in, and says so)."""
    try:
        return await budgeted(session, what, budget, call)
    except OverBudget:
        return None
