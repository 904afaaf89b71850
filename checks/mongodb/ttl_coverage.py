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

from checks.config import Duration, duration
from checks.contract import Check, CheckOptions, Scope
from checks.model import Finding, Fix, FixAvailability, FixSafety, FixStep, Severity
from checks.mongodb._inventory import (
    OWN_COMMENT,
    CollectionInfo,
    IndexSpec,
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
from checks.mongodb._lifecycle import (
    EVENT,
    Classification,
    ExemptFlag,
    Growth,
    classify,
    creation_field,
    exempt_flag,
    growth,
    referenced_collections,
)
from checks.mongodb._ttl import (
    Expiring,
    RuleTarget,
    count_expiring,
    first_pass_warning,
    is_expiry_field,
    rules_and_inventory,
    ttl_spec,
)

DATE_SHARE = 0.5  # a field is a date field when at least half its sampled values are dates
# Severity of a growing event collection: documents a day, documents, bytes (medium, high).
GROWTH_PER_DAY = (100, 10_000)
GROWTH_DOCUMENTS = (100_000, 10_000_000)
GROWTH_BYTES = (1 << 30, 10 << 30)


class TtlCoverageOptions(CheckOptions):
    sample_size: int = Field(default=200, ge=10, le=10_000, description="Documents sampled per larger collection (seeded, the same each run; up to 2,000 are read whole).")
    min_documents: int = Field(
        default=0, ge=0, description="Collections smaller than this are not reported (0: growth and size set severity)."
    )
    min_age: Duration = Field(default=duration("30d"), description="Only collections whose oldest documents are older than this.")
    suggested_retention: Duration = Field(
        default=duration("365d"),
        description="Retention in a suggested TTL when no rule is declared: a conservative default, stated as such.",
    )
    keep_forever: list[str] = Field(
        default_factory=list, description='Collections (globs) meant to keep every document, e.g. ["users", "orders*"].'
    )
    exact_count_limit: int = Field(
        default=200_000, ge=0, description="Above this many documents, expiring documents are estimated from a sample."
    )


@dataclass(frozen=True)
class Growing:
    """An event collection with no TTL index, and the TTL its evidence supports."""

    info: CollectionInfo
    sample: Sample
    classification: Classification
    field: str  # the field a TTL index would use
    filter: dict[str, Any] | None  # the partial filter: finished documents only, exempt ones kept
    seconds: int
    retention_basis: str
    growth: Growth
    oldest: dt.datetime | None  # of the creation field: exact when indexed, else the oldest sampled
    oldest_exact: bool
    oldest_id_time: dt.datetime | None  # the _id ObjectId's creation time of the first document
    expiring: Expiring
    exempt: ExemptFlag | None = None


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


@dataclass(frozen=True)
class TtlPlan:
    """Where an event collection's TTL goes: field, partial filter, retention and why."""

    field: str
    filter: dict[str, Any] | None
    seconds: int
    retention_basis: str
    exempt: ExemptFlag | None


def plan_ttl(drawn: Sample, classification: Classification, retention: int) -> TtlPlan | None:
    """Finished documents of work items, on the field marking their end; otherwise every
    document on its creation time (or at its expiry moment), exempt ones (pinned) kept."""
    default = (f"a conservative default (suggested_retention = {format_seconds(retention)}), not derived from "
               "the data: nothing the server reports tells when these documents stop being read; choose yours")
    exempt = exempt_flag(drawn)
    filter_: dict[str, Any] = dict(exempt.filter) if exempt else {}
    cycle = classification.lifecycle
    if cycle is not None:
        if cycle.end_field is None:
            return None
        filter_.update(cycle.filter)
        return TtlPlan(cycle.end_field, filter_, retention, default, exempt)
    # The application's own expiry moment, where it keeps one, is the retention it chose.
    expiry = sorted(n for n in drawn.fields if is_expiry_field(n) and drawn.fields[n].share("date") >= DATE_SHARE)
    if expiry:
        return TtlPlan(expiry[0], filter_ or None, 0, "each document expires at the moment its field holds", exempt)
    field = creation_field(drawn)
    if field is None:
        return None
    return TtlPlan(field, filter_ or None, retention, default, exempt)


def choose_key(info: CollectionInfo, field: str, filter_: dict[str, Any] | None) -> tuple[str, IndexSpec | None, int]:
    """How to add the TTL without colliding with an index of the same key: ("collmod", index)
    to make an existing plain, unfiltered index expire; ("create", None, direction) to build
    one, on {field: -1} when {field: 1} is taken (createIndexes refuses a second index of the
    same key with other options: IndexOptionsConflict); ("taken", index) when both are."""
    same = [i for i in info.indexes if i.fields == (field,) and i.is_plain]
    convertible = next((i for i in same if not filter_ and not i.unique and not i.is_ttl
                        and not i.options.get("partialFilterExpression") and not i.options.get("sparse")), None)
    if convertible is not None:
        return "collmod", convertible, int(convertible.key[0][1])
    taken = {int(i.key[0][1]) for i in same}
    for direction in (1, -1):
        if direction not in taken:
            return "create", None, direction
    return "taken", same[0], 1


class TtlCoverage(Check):
    id = "mongodb.ttl-coverage"
    engine = "mongodb"
    title = "Collections that grow forever with no TTL index"
    severity = Severity.MEDIUM
    fix_availability = FixAvailability.SOMETIMES
    rationale = (
        "Failed jobs, finished game rounds, resolved moderation flags and logs pile up when nothing "
        "expires them: the working set outgrows memory, backups and index builds slow down, and the first "
        "clean-up becomes a mass delete. A TTL index expires documents continuously, a little at a time. "
        "Only event collections are advised, judged from evidence: entities (referenced, with a unique key, "
        "updated in place) and ledgers (money fields) are never expired."
    )
    Options = TtlCoverageOptions

    async def gather(self, session: Any, scope: Scope) -> TtlCoverageFacts:
        options: TtlCoverageOptions = scope.options
        resolved, infos = await rules_and_inventory(session, scope.config)
        databases = await session.databases()  # growth is judged here; a rule may name another
        ruled = {(r.database, r.rule.collection) for r in resolved}
        budget = call_budget(scope.config)
        judged = [info for db in databases for info in infos[db].values()]
        sized = await asyncio.gather(*(counted(session, info, budget) for info in judged))
        # Every collection is sampled (the same memoised sample the other checks read): a
        # collection is an entity when the others refer to it.
        drawn = await asyncio.gather(*(sample(session, info, options.sample_size, budget) for info in sized))
        samples = {(i.database, i.name): d for i, d in zip(sized, drawn)}
        names = {db: list(infos[db]) for db in databases}
        referenced = referenced_collections(
            [d for d in drawn if not d.unknown], names, declared_references(scope.config, session.default_database, names)
        )
        unassessed, candidates = [], []
        for info in sized:
            if any(i.is_ttl for i in info.indexes) or (info.database, info.name) in ruled:
                continue
            if info.count is None or samples[(info.database, info.name)].unknown:
                unassessed.append(Unassessed(info, info.unknown or samples[(info.database, info.name)].unknown))
                scope.skipped(f"collection {info.namespace}", unassessed[-1].reason)  # over the call budget
                continue
            if info.count < max(options.min_documents, 1):
                continue
            verdict = classify(info, samples[(info.database, info.name)], referenced.get((info.database, info.name), []),
                               matches_any(info.name, options.keep_forever))
            if verdict.kind != EVENT:  # entities, ledgers and kept collections are never advised a TTL
                continue
            unread = unread_referrers(info, drawn)
            if unread:  # a collection that was not read may reference it: "no references" is not known
                unassessed.append(Unassessed(info, unread))
                scope.skipped(f"collection {info.namespace}", unread)
                continue
            candidates.append((info, verdict))
        growing = await asyncio.gather(*(
            self._growing(session, info, samples[(info.database, info.name)], verdict, options, budget)
            for info, verdict in candidates
        ))
        unenforced = await asyncio.gather(*(self._rule(session, r, options, budget) for r in resolved))
        return TtlCoverageFacts(
            now=dt.datetime.now(dt.timezone.utc),
            growing=[g for g in growing if g is not None],
            rules=[u for u in unenforced if u is not None],
            unassessed=unassessed,
        )

    async def _growing(
        self, session: Any, info: CollectionInfo, drawn: Sample, verdict: Classification,
        options: TtlCoverageOptions, budget: float,
    ) -> Growing | None:
        plan = plan_ttl(drawn, verdict, int(options.suggested_retention.total_seconds()))
        if plan is None:
            return None
        age_field = creation_field(drawn) or plan.field
        coll = session.client[info.database][info.name]
        oldest, exact = drawn.fields[age_field].oldest, False
        if any(i.fields[:1] == (age_field,) for i in info.indexes):
            first = await _first(session, budget, f"the oldest {age_field}",
                                 lambda: coll.find_one({age_field: {"$type": "date"}}, {age_field: 1}, sort=[(age_field, 1)], comment=OWN_COMMENT))
            if first is not None:
                oldest, exact = first[age_field], True
        first_id = await _first(session, budget, "the first _id", lambda: coll.find_one({}, {"_id": 1}, sort=[("_id", 1)], comment=OWN_COMMENT))
        expiring = await count_expiring(
            session, info, plan.field, plan.seconds, plan.filter, exact_limit=options.exact_count_limit,
            sample_size=options.sample_size, budget=budget,
        )
        info = await measured(session, info, budget)
        return Growing(info, drawn, verdict, plan.field, plan.filter, plan.seconds, plan.retention_basis,
                       growth(drawn, age_field, info.count, dt.datetime.now(dt.timezone.utc)), oldest, exact,
                       oid_time(first_id["_id"]) if first_id else None, expiring, plan.exempt)

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
                f"{u.info.namespace} has no TTL index, but whether it should have one was not judged: {u.reason}; "
                "nothing is claimed about it."
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
        how, existing, direction = choose_key(info, g.field, g.filter)
        spec = ttl_spec(g.field, g.seconds, g.filter, direction)
        retention = "at the time it holds" if g.seconds == 0 else f"{format_seconds(g.seconds)} after it"
        which = f"documents where {json.dumps(g.filter, default=str)}" if g.filter else "every document"
        dated = {n: f.share("date") for n, f in g.sample.fields.items() if f.share("date") >= DATE_SHARE and n != "_id"}
        evidence: dict[str, Any] = {
            "namespace": info.namespace,
            "classification": g.classification.describe(),
            "weighed_evidence": g.classification.evidence(),
            "documents": info.count,
            "bytes": figure(info.size, info),
            "storage_bytes": figure(info.storage_size, info),
            "growth": g.growth.describe(),
            "documents_per_day": None if g.growth.per_day is None else round(g.growth.per_day, 1),
            "date_fields": {n: f"{share:.0%} dates in sample" for n, share in dated.items()},
            "ttl_field": g.field,
            "ttl_filter": g.filter,
            "retention": format_seconds(g.seconds),
            "retention_basis": g.retention_basis,
            "oldest_field_value": g.oldest.isoformat() if g.oldest else None,
            "oldest_field_value_basis": "indexed minimum" if g.oldest_exact else f"oldest of {g.sample.documents} sampled",
            "sampled_by": g.sample.method,
            "oldest_document_by_id": g.oldest_id_time.isoformat() if g.oldest_id_time else None,
            "oldest_age_days": oldest_age,
            "first_pass_deletes": g.expiring.documents,
            "first_pass_basis": g.expiring.basis,
        }
        cycle = g.classification.lifecycle
        notes = []
        if cycle is not None:
            evidence["status_values_in_sample"] = cycle.values
            evidence["end_field_basis"] = f"{cycle.end_field}: {cycle.end_basis}"
            open_values = [v for v in cycle.values if v not in cycle.terminal]
            if open_values:
                notes.append(f"Documents still {', '.join(open_values)} are kept: the filter selects finished ones only.")
            if len(cycle.terminal) > 1:
                notes.append("$in in a partial filter needs MongoDB 6.0+; on older servers build one TTL index per value.")
        if g.exempt is not None:
            evidence["exempt_flag"] = {"field": g.exempt.field, "true": g.exempt.true, "false": g.exempt.false,
                                       "missing": g.exempt.missing}
            notes.append(f"Documents with {g.exempt.field}: true are kept"
                         + (f"; so are the {g.exempt.missing} sampled documents without {g.exempt.field} (a partial "
                            f"filter cannot match a missing field): set {g.exempt.field}: false on them to expire them"
                            if g.exempt.missing else "") + ".")
        steps: tuple[FixStep, ...]
        inverse: tuple[FixStep, ...]
        if how == "collmod":
            assert existing is not None
            steps = (FixStep("mongodb", {"collMod": info.name, "index": {"name": existing.name, "expireAfterSeconds": g.seconds}},
                             f"make {existing.name} a TTL index (MongoDB 5.1+)", database=info.database),)
            inverse = (
                FixStep("mongodb", drop_index(info.name, existing.name), "drop the TTL index", database=info.database),
                FixStep("mongodb", create_indexes(info.name, existing.create_spec()), f"rebuild {existing.name} without TTL",
                        database=info.database),
            )
            notes.append(f"{existing.name} already indexes {g.field}: collMod makes it expire documents instead of "
                         "building a second index of the same key, which createIndexes would refuse.")
            lock = "collMod: a brief exclusive collection lock; then continuous deletes by the TTL monitor"
        elif how == "create":
            steps = (FixStep("mongodb", create_indexes(info.name, spec), f"TTL index on {g.field}", database=info.database),)
            inverse = (FixStep("mongodb", drop_index(info.name, spec["name"]), "stop expiring (deleted documents stay deleted)",
                               database=info.database),)
            if direction == -1:
                notes.append(f"{{{g.field}: 1}} is already indexed with other options, so the TTL index is built on "
                             f"{{{g.field}: -1}}: the same key with other options is refused (IndexOptionsConflict).")
            lock = "index build; then continuous deletes by the TTL monitor"
        else:
            steps, inverse, lock = (), (), "none"
            notes.append(f"{g.field} is indexed in both directions already; decide which index may carry the TTL.")
        notes.append(f"The retention ({format_seconds(g.seconds)}) is {g.retention_basis}.")
        notes.append(first_pass_warning(g.expiring))
        return self.finding(
            scope,
            object=info.namespace,
            title=f"{info.name} grows with no TTL index",
            message=(
                f"{info.namespace} holds {info.count:,} documents ({_mib(info)}), {g.growth.describe()}, and nothing "
                f"expires them: its oldest documents are {oldest_age:,.0f} days old. Judged {g.classification.describe()}. "
                f"A TTL index on {g.field} over {which} would delete each one {retention}. "
                "Declare the retention ([[targets.NAME.expect.ttl]]) or list the collection in keep_forever."
            ),
            evidence=evidence,
            severity=growth_severity(info, g.growth),
            fix=Fix(
                summary=f"Expire {which} of {info.name} {retention} with a TTL index on {g.field}",
                steps=steps,
                safety=FixSafety.MANUAL,
                lock=lock,
                inverse=inverse,
                notes=" ".join(notes),
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
        steps: tuple[FixStep, ...]
        inverse: tuple[FixStep, ...]
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


def growth_severity(info: CollectionInfo, growth: Growth) -> Severity:
    """High or medium once growth, documents or bytes pass GROWTH_*; low otherwise."""
    figures = (growth.per_day or 0, info.count or 0, info.size or 0)
    for level, severity in ((1, Severity.HIGH), (0, Severity.MEDIUM)):
        if any(value >= limits[level] for value, limits in zip(figures, (GROWTH_PER_DAY, GROWTH_DOCUMENTS, GROWTH_BYTES))):
            return severity
    return Severity.LOW


def declared_references(config: Any, default_database: str | None, names: dict[str, list[str]]) -> list[tuple[str, str, str]]:
    """(database, "collection.field", referenced collection) of each declared reference."""
    found = []
    for ref in config.expect.references:
        source = ref.column
        target = ref.references.split(".", 1)[0]
        database = default_database or next((db for db, colls in names.items() if source.split(".", 1)[0] in colls), None)
        if database is not None:
            found.append((database, source, target))
    return found


def unread_referrers(info: CollectionInfo, drawn: list[Sample]) -> str:
    """Why the references to a collection are unknown: other collections of its database that
    were not read (sample over budget), any of which may point at it; "" when all were read."""
    unread = [d for d in drawn if d.unknown and d.database == info.database and d.collection != info.name]
    if not unread:
        return ""
    return ("whether other collections reference it is unknown: "
            + "; ".join(f"{d.collection} was not read ({d.unknown})" for d in unread[:3])
            + (f" and {len(unread) - 3} more" if len(unread) > 3 else ""))


def _mib(info: CollectionInfo) -> str:
    return f"{info.size / 1048576:,.1f} MiB" if info.size is not None else f"size unknown: {info.unknown}"


async def _first(session: Any, budget: float, what: str, call: Any) -> dict[str, Any] | None:
    """One document by an ordered read; None when it does not answer in time (the sampled
    figure stands in, and says so)."""
    try:
        return await budgeted(session, what, budget, call)
    except OverBudget:
        return None
