"""mongodb.ttl-misconfigured: TTL indexes that cannot work or will surprise.

mongod expires a document only when the indexed field holds a date (or an array of dates), and
ignores expireAfterSeconds on a compound index: such a TTL index looks like a retention policy
while nothing is ever deleted. A partial filter that selects nothing, or documents lacking the
field, leave the same false impression. The opposite surprise: a TTL on an entity or a ledger
(users, wallets) deletes what must stay, and one beside a unique index lets a "once only"
document (a vote) be inserted again once the first expires.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
from dataclasses import dataclass
from typing import Any, cast

from pydantic import Field

from checks.config import TtlExpectation
from checks.contract import Check, CheckOptions, Scope, resolve_options
from checks.model import Finding, Fix, FixAvailability, FixSafety, FixStep, Severity
from checks.mongodb._inventory import (
    CollectionInfo,
    FieldSample,
    OWN_COMMENT,
    IndexSpec,
    OverBudget,
    Sample,
    budgeted,
    call_budget,
    counted,
    create_indexes,
    drop_index,
    figure,
    format_seconds,
    matches_any,
    oid_time,
    sample,
)
from checks.mongodb._lifecycle import EVENT, Classification, classify, creation_field, referenced_collections
from checks.mongodb._ttl import (
    Expiring,
    count_expiring,
    first_pass_warning,
    older_than,
    partial_filter_matcher,
    rules_and_inventory,
    ttl_spec,
)
from checks.mongodb.ttl_coverage import TtlCoverage, TtlCoverageOptions, declared_references

# Types a TTL index can expire on: a date, or an array (mongod uses its earliest date).
EXPIRABLE = {"date", "array"}
# Evidence that a unique key is a once-only rule (one vote per user and post), beyond the key
# itself: an idempotency key on deliveries that expire may repeat after them by design.
ONCE_ONLY = ("relationship", "references", "updates in place")


def questions_ttl(verdict: Classification) -> bool:
    """Whether the evidence is strong enough to call an existing TTL wrong: documents other
    collections reference, or a ledger's balance. One money-named field, a unique key or
    updates in place keep a TTL from being advised, but do not condemn one that exists."""
    return verdict.kind != EVENT and verdict.strong


class TtlMisconfiguredOptions(CheckOptions):
    sample_size: int = Field(default=200, ge=10, le=10_000, description="Documents sampled per larger collection (seeded, the same each run; up to 2,000 are read whole).")
    exact_count_limit: int = Field(
        default=200_000, ge=0, description="Above this many documents, expiring documents are estimated from a sample."
    )


@dataclass(frozen=True)
class FieldCoverage:
    """How the sampled documents sit under a TTL index: those it covers (all, or those its
    partial filter selects), and of those the ones it can never expire."""

    selected: int | None  # None: the partial filter uses operators not evaluated here
    missing: int  # selected documents lacking the field, or holding null
    not_date: int  # selected documents holding something else than a date or an array
    stale: int  # missing ones created longer ago than the TTL: they would be gone by now
    age_field: str | None  # where their creation time was read ("_id": the ObjectId's time)


def field_coverage(drawn: Sample, index: IndexSpec, seconds: float, now: dt.datetime) -> FieldCoverage:
    field = index.fields[0]
    partial = index.options.get("partialFilterExpression")
    matcher = partial_filter_matcher(partial) if partial else (lambda doc: True)
    if matcher is None:
        return FieldCoverage(None, 0, 0, 0, None)
    selected = [doc for doc in drawn.drawn if matcher(doc)]
    missing = [doc for doc in selected if doc.get(field) is None]
    not_date = sum(1 for doc in selected if doc.get(field) is not None and not isinstance(doc[field], (dt.datetime, list)))
    age_field = creation_field(drawn)
    if age_field == field:
        age_field = None
    cutoff = now - dt.timedelta(seconds=seconds)

    def created(doc: dict[str, Any]) -> dt.datetime | None:
        value = doc.get(age_field) if age_field else oid_time(doc.get("_id"))
        if not isinstance(value, dt.datetime):
            return None
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)

    stale = sum(1 for doc in missing if (when := created(doc)) is not None and when < cutoff)
    return FieldCoverage(len(selected), len(missing), not_date, stale, age_field or "_id")


@dataclass(frozen=True)
class TtlIndex:
    info: CollectionInfo
    index: IndexSpec
    sampled: int  # documents drawn
    field: FieldSample | None  # the indexed (first) field in the sample
    date_field: str | None  # for a compound index: the key field whose sampled values are dates
    rule: TtlExpectation | None
    expiring: Expiring | None  # what the fix would delete at once
    after_conversion: int | None = None  # non-dates already older than the TTL once converted (estimate)
    unknown: str = ""  # why the index's field could not be sampled
    sampled_by: str = ""
    coverage: FieldCoverage | None = None
    classification: Classification | None = None  # of the collection; None: not judged
    # Whether any document of the collection matches the partial filter, when none sampled does:
    # read whole, or asked of the server (a find with limit 1); None: not asked or no answer.
    filter_matches: bool | None = None


@dataclass(frozen=True)
class TtlMisconfiguredFacts:
    indexes: list[TtlIndex]


def seconds_of(index: IndexSpec) -> float | None:
    value = index.options.get("expireAfterSeconds")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


class TtlMisconfigured(Check):
    id = "mongodb.ttl-misconfigured"
    engine = "mongodb"
    title = "TTL indexes that delete nothing, or not what the rule says"
    severity = Severity.HIGH
    fix_availability = FixAvailability.SOMETIMES
    rationale = (
        "A TTL index on a field holding strings or numbers, or on a compound key, never deletes a document: "
        "the collection grows while everyone believes it expires. A TTL that disagrees with the declared "
        "retention deletes too early (lost data) or too late (growth, and a privacy rule broken)."
    )
    Options = TtlMisconfiguredOptions

    async def gather(self, session: Any, scope: Scope) -> TtlMisconfiguredFacts:
        options: TtlMisconfiguredOptions = scope.options
        resolved, infos = await rules_and_inventory(session, scope.config)
        by_field = {(r.database, r.rule.collection, r.rule.field): r.rule for r in resolved}
        work = [
            (info, index)
            for colls in infos.values()
            for info in colls.values()
            for index in info.indexes
            if index.is_ttl
        ]
        budget = call_budget(scope.config)
        verdicts = await self._classify(session, scope, infos, {(i.database, i.name) for i, _ in work}, budget)
        found = await asyncio.gather(*(
            self._index(session, info, index, by_field, options, budget, verdicts.get((info.database, info.name)), scope)
            for info, index in work
        ))
        return TtlMisconfiguredFacts(list(found))

    async def _classify(
        self, session: Any, scope: Scope, infos: dict[str, dict[str, CollectionInfo]], expiring: set[tuple[str, str]],
        budget: float,
    ) -> dict[tuple[str, str], Classification]:
        """Entity, ledger or event, for each collection under a TTL: the other collections of its
        database are sampled too (the memoised sample every check shares), for references."""
        if not expiring:
            return {}
        coverage = cast(TtlCoverageOptions, resolve_options(TtlCoverage, scope.target, scope.config))  # its Options
        size = coverage.sample_size
        databases = sorted({db for db, _ in expiring})
        every = [info for db in databases for info in infos[db].values()]
        async def drawn_from(info: CollectionInfo) -> Sample:
            return await sample(session, await counted(session, info, budget), size, budget)

        drawn = await asyncio.gather(*(drawn_from(i) for i in every))
        for unread in (d for d in drawn if d.unknown):  # it may reference a collection under a TTL: not known
            scope.skipped(f"collection {unread.database}.{unread.collection}", unread.unknown)
        samples = {(s.database, s.collection): s for s in drawn}
        names = {db: list(infos[db]) for db in databases}
        referenced = referenced_collections(
            [d for d in drawn if not d.unknown], names, declared_references(scope.config, session.default_database, names))
        keep = coverage.keep_forever
        return {
            key: classify(infos[key[0]][key[1]], samples[key], referenced.get(key, []), matches_any(key[1], keep))
            for key in expiring if not samples[key].unknown and samples[key].documents
        }

    async def _index(
        self, session: Any, info: CollectionInfo, index: IndexSpec,
        rules: dict[tuple[Any, Any, Any], TtlExpectation], options: TtlMisconfiguredOptions, budget: float,
        verdict: Classification | None, scope: Scope,
    ) -> TtlIndex:
        info = await counted(session, info, budget)
        drawn = await sample(session, info, options.sample_size, budget)
        field = index.fields[0]
        date_field = next((f for f in index.fields if drawn.fields.get(f) and drawn.fields[f].share("date") > 0), None)
        rule = rules.get((info.database, info.name, field))
        expiring = after_conversion = None
        current = seconds_of(index)
        partial = index.options.get("partialFilterExpression")
        questioned = verdict is not None and questions_ttl(verdict) and rule is None
        if len(index.key) > 1 and date_field and current is not None:
            expiring = await count_expiring(session, info, date_field, int(current), partial,
                                            exact_limit=options.exact_count_limit, sample_size=options.sample_size, budget=budget)
        elif rule is not None and rule.after is not None and (current is None or rule.after.total_seconds() < current):
            expiring = await count_expiring(session, info, field, int(rule.after.total_seconds()), rule.filter,
                                            exact_limit=options.exact_count_limit, sample_size=options.sample_size, budget=budget)
        elif questioned and current is not None:
            expiring = await count_expiring(session, info, field, int(current), partial,
                                            exact_limit=options.exact_count_limit, sample_size=options.sample_size, budget=budget)
        sampled = drawn.fields.get(field)
        if sampled and set(sampled.non_null_types) - EXPIRABLE and current is not None:
            after_conversion = await self._older_once_converted(session, info, drawn, field, int(current), budget)
        coverage = field_coverage(drawn, index, current, dt.datetime.now(dt.timezone.utc)) if current is not None else None
        filter_matches = None
        if partial and coverage is not None and coverage.selected == 0 and drawn.documents:
            filter_matches = False if drawn.whole else await self._any_match(session, scope, info, index, budget)
        return TtlIndex(info, index, drawn.documents, sampled, date_field, rule, expiring, after_conversion,
                        unknown=drawn.unknown, sampled_by=drawn.method, coverage=coverage, classification=verdict,
                        filter_matches=filter_matches)

    async def _any_match(self, session: Any, scope: Scope, info: CollectionInfo, index: IndexSpec,
                         budget: float) -> bool | None:
        """Whether one document of the whole collection matches the partial filter (the partial
        index itself can serve it); None, said as skipped, when it does not answer in time."""
        coll = session.client[info.database][info.name]
        partial = index.options["partialFilterExpression"]
        try:
            found = await budgeted(session, "a document the filter matches", budget,
                                   lambda: coll.find_one(partial, {"_id": 1}, comment=OWN_COMMENT))
        except OverBudget as exc:
            scope.skipped(f"the partial filter of {info.namespace}.{index.name}", exc.reason)
            return None
        return found is not None

    async def _older_once_converted(
        self, session: Any, info: CollectionInfo, drawn: Sample, field: str, seconds: int, budget: float
    ) -> int | None:
        """Of the sampled documents (matched by _id: the same ones every run), those whose
        non-date value converts to a date older than the TTL, scaled to the collection."""
        cutoff = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=seconds)
        converted = {"$convert": {"input": f"${field}", "to": "date", "onError": None, "onNull": None}}
        pipeline = [
            {"$match": {"_id": {"$in": [doc["_id"] for doc in drawn.drawn]}}},
            {"$match": {field: {"$exists": True, "$not": {"$type": "date"}}}},
            {"$project": {"d": converted}},
            {"$match": {"d": {"$type": "date", "$lt": cutoff}}},
            {"$count": "n"},
        ]
        coll = session.client[info.database][info.name]

        async def run() -> list[dict[str, Any]]:
            return await (await coll.aggregate(pipeline, comment=OWN_COMMENT)).to_list(1)

        try:
            rows = await budgeted(session, "a sampled conversion", budget, run)
        except OverBudget:  # an estimate only: unknown rather than a failed check
            return None
        if info.count is None or not drawn.documents:
            return None
        matched = rows[0]["n"] if rows else 0
        return round(matched / drawn.documents * info.count)

    def evaluate(self, facts: TtlMisconfiguredFacts, scope: Scope) -> list[Finding]:
        findings: list[Finding] = []
        for t in facts.indexes:
            findings.extend(self._judge(scope, t))
        return findings

    def _judge(self, scope: Scope, t: TtlIndex) -> list[Finding]:
        info, index = t.info, t.index
        current = seconds_of(index)
        evidence: dict[str, Any] = {
            "namespace": info.namespace,
            "index": index.create_spec(),
            "documents": figure(info.count, info),
            "sampled_documents": t.sampled,
        }
        if t.sampled_by:
            evidence["sampled_by"] = t.sampled_by
        if t.field is not None:
            evidence["field_types_in_sample"] = t.field.types
        if t.classification is not None:
            evidence["weighed_evidence"] = t.classification.evidence()
        if current is None or math.isnan(current) or current < 0:
            return [self._invalid(scope, t, evidence)]
        if len(index.key) > 1:
            return [self._compound(scope, t, int(current), evidence)]
        found = []
        if t.unknown:
            found.append(self._unverified(scope, t, evidence))
        elif t.classification is not None and questions_ttl(t.classification) and t.rule is None:
            found.append(self._entity(scope, t, int(current), evidence))
        elif t.sampled and not index.options.get("partialFilterExpression"):
            problem = self._field_problem(scope, t, int(current), evidence)
            found.extend([problem] if problem else self._coverage_problems(scope, t, int(current), evidence))
        elif t.sampled:
            found.extend(self._coverage_problems(scope, t, int(current), evidence))
        if not t.unknown and (t.classification is None or t.classification.kept_by(*ONCE_ONLY)):
            found.extend(self._unique_defeated(scope, t, int(current), evidence))
        if t.rule is not None:
            found.extend(self._against_rule(scope, t, int(current), evidence))
        return found

    def _entity(self, scope: Scope, t: TtlIndex, seconds: int, evidence: dict[str, Any]) -> Finding:
        """A TTL on what the evidence calls an entity or a ledger: questioned, never armed."""
        info, index, field = t.info, t.index, t.index.fields[0]
        assert t.classification is not None
        dormant = t.field is not None and bool(set(t.field.non_null_types) - EXPIRABLE)
        evidence = {**evidence, "classification": t.classification.describe()}
        if t.expiring is not None:
            evidence["documents_older_than_ttl"] = t.expiring.documents
            evidence["documents_older_than_ttl_basis"] = t.expiring.basis
        if dormant and t.field is not None:  # dormant implies a field
            evidence["deleted_once_converted_estimate"] = t.after_conversion
            at_stake = (f"it is dormant only because {field} holds {', '.join(sorted(set(t.field.non_null_types) - EXPIRABLE))} "
                        f"instead of dates: converting them would delete about "
                        f"{'an unknown number of' if t.after_conversion is None else f'{t.after_conversion:,}'} documents at once")
        else:
            at_stake = f"every document whose {field} is {older_than(seconds)} is deleted" + (
                f" (now: {t.expiring.describe()})" if t.expiring else "")
        return self.finding(
            scope,
            object=info.namespace,
            title=f"TTL index {index.name} expires {info.name}, judged {t.classification.kind}",
            message=(
                f"{info.namespace} is judged {t.classification.describe()}, yet {index.name} expires its documents "
                f"{format_seconds(seconds)} after {field}: {at_stake}. If this retention is intended, declare it "
                "([[targets.NAME.expect.ttl]]); otherwise drop the TTL before it deletes what must stay."
            ),
            evidence=evidence,
            severity=Severity.HIGH,
            key=f"{index.name}:entity",
            fix=Fix(
                summary=f"Drop the TTL index {index.name} (keep a plain index on {field} if queries need it)",
                steps=(FixStep("mongodb", drop_index(info.name, index.name), f"drop {index.name}", database=info.database),),
                safety=FixSafety.MANUAL,
                lock="dropIndexes: a brief exclusive collection lock; queries using the index lose it",
                inverse=(FixStep("mongodb", create_indexes(info.name, index.create_spec()), f"rebuild {index.name}",
                                 database=info.database),),
                notes="Shown, never run by dbvitals: decide whether these documents may ever be deleted. Never convert "
                f"{field} to dates while this TTL exists.",
            ),
        )

    def _coverage_problems(self, scope: Scope, t: TtlIndex, seconds: int, evidence: dict[str, Any]) -> list[Finding]:
        """A partial filter that selects nothing; selected documents lacking the field (or not
        dates) although they are older than the TTL: they never expire."""
        c, info, index, field = t.coverage, t.info, t.index, t.index.fields[0]
        if c is None:
            return []
        partial = index.options.get("partialFilterExpression")
        evidence = {**evidence, "partial_filter": partial, "sampled_selected": c.selected, "sampled_missing_field": c.missing,
                    "sampled_not_date": c.not_date, "sampled_missing_and_older_than_ttl": c.stale,
                    "creation_time_from": c.age_field}
        if c.selected is None:
            return []
        if partial and c.selected == 0:
            if t.filter_matches is not False:  # documents past the sample may match it, or it was not known
                return []
            evidence["documents_matching_the_filter"] = 0
            return [self.finding(
                scope, object=info.namespace,
                title=f"TTL index {index.name}: its partial filter selects no document",
                message=f"{info.namespace}: no document matches the partialFilterExpression "
                f"{json.dumps(partial, default=str)} of {index.name}, so it deletes nothing (is the filter spelt as the "
                "application writes the values?).",
                evidence=evidence, severity=Severity.MEDIUM, key=f"{index.name}:filter-empty",
            )]
        found = []
        if c.stale:
            scope_words = "selected by its partial filter " if partial else ""
            found.append(self.finding(
                scope, object=info.namespace,
                title=f"Documents of {info.name} without {field} never expire",
                message=f"{info.namespace}: {c.missing} of {c.selected} sampled documents {scope_words}have no {field} "
                f"(or null), and {c.stale} of them were created more than {format_seconds(seconds)} ago (by {c.age_field}): "
                f"{index.name} never deletes them. Set {field} where the application ends these documents, or expire "
                "them on another field.",
                evidence=evidence, severity=Severity.MEDIUM, key=f"{index.name}:missing",
            ))
        if partial and c.not_date:
            found.append(self.finding(
                scope, object=info.namespace,
                title=f"TTL index {index.name}: selected documents hold {field} as a non-date",
                message=f"{info.namespace}: {c.not_date} of {c.selected} sampled documents selected by the partial filter "
                f"hold {field} as something other than a date: {index.name} never deletes them.",
                evidence=evidence, severity=Severity.MEDIUM, key=f"{index.name}:types",
            ))
        return found

    def _unique_defeated(self, scope: Scope, t: TtlIndex, seconds: int, evidence: dict[str, Any]) -> list[Finding]:
        """A unique key on a collection whose documents expire holds only while they live."""
        info, index = t.info, t.index
        found = []
        for unique in info.indexes:
            if not unique.unique or unique.is_id or unique is index or unique.name == index.name:
                continue
            if t.date_field in unique.fields or index.fields[0] in unique.fields:
                continue  # a key that includes the time: a new period may repeat it by design
            found.append(self.finding(
                scope, object=info.namespace,
                title=f"TTL index {index.name} lets the unique key {unique.name} repeat",
                message=f"{info.namespace}: {unique.name} {unique.describe()} allows one document per key, but "
                f"{index.name} deletes documents {format_seconds(seconds)} after {index.fields[0]}: once one expires, "
                f"the same key can be inserted again (a user can vote twice). If the key must stay unique forever, "
                "drop the TTL; if it only needs to be unique within the retention, say so in the key.",
                evidence={**evidence, "unique_index": unique.create_spec()},
                severity=Severity.MEDIUM, key=f"{index.name}:unique:{unique.name}",
            ))
        return found

    def _unverified(self, scope: Scope, t: TtlIndex, evidence: dict[str, Any]) -> Finding:
        return self.finding(
            scope,
            object=t.info.namespace,
            title=f"Values under TTL index {t.index.name} not checked",
            message=f"{t.info.namespace}: whether {t.index.fields[0]} holds dates the TTL index can expire is unknown: "
            f"{t.unknown}. Nothing is claimed about it.",
            evidence={**evidence, "reason": t.unknown},
            severity=Severity.INFO,
            key=f"{t.index.name}:unverified",
        )

    def _invalid(self, scope: Scope, t: TtlIndex, evidence: dict[str, Any]) -> Finding:
        value = t.index.options.get("expireAfterSeconds")
        fix = None
        if t.rule is not None and t.rule.after is not None:
            fix = self._coll_mod(t, int(t.rule.after.total_seconds()), value, FixSafety.UNSAFE)
        return self.finding(
            scope,
            object=t.info.namespace,
            title=f"TTL index {t.index.name} has an invalid expireAfterSeconds",
            message=f"{t.info.namespace}: {t.index.name} has expireAfterSeconds = {value!r}, which mongod does not "
            "treat as a retention period (older servers read NaN as 0 and expire everything at once).",
            evidence=evidence,
            key=f"{t.index.name}:invalid",
            fix=fix,
        )

    def _compound(self, scope: Scope, t: TtlIndex, seconds: int, evidence: dict[str, Any]) -> Finding:
        info, index = t.info, t.index
        fix = None
        if t.date_field:
            spec = ttl_spec(t.date_field, seconds, index.options.get("partialFilterExpression"))
            warning = first_pass_warning(t.expiring) if t.expiring else ""
            fix = Fix(
                summary=f"Add a single-field TTL index on {t.date_field}",
                steps=(FixStep("mongodb", create_indexes(info.name, spec), f"TTL index on {t.date_field}", database=info.database),),
                safety=FixSafety.UNSAFE,
                lock="index build; then continuous deletes by the TTL monitor",
                inverse=(FixStep("mongodb", drop_index(info.name, spec["name"]), "stop expiring", database=info.database),),
                notes=f"Keep {index.name} if queries use it; its expireAfterSeconds stays ignored. {warning}".strip(),
            )
            if t.expiring:
                evidence["first_pass_deletes"] = t.expiring.documents
                evidence["first_pass_basis"] = t.expiring.basis
        return self.finding(
            scope,
            object=info.namespace,
            title=f"TTL on compound index {index.name} never expires anything",
            message=f"{info.namespace}: {index.name} is a compound index ({index.describe()}); mongod ignores "
            "expireAfterSeconds on compound indexes, so no document is ever deleted by it.",
            evidence=evidence,
            key=f"{index.name}:compound",
            fix=fix,
        )

    def _field_problem(self, scope: Scope, t: TtlIndex, seconds: int, evidence: dict[str, Any]) -> Finding | None:
        info, index, field = t.info, t.index, t.index.fields[0]
        sampled = t.field
        if sampled is None or not sampled.present:
            return self.finding(
                scope,
                object=info.namespace,
                title=f"TTL field {field} is absent from {info.name}",
                message=f"{info.namespace}: none of {t.sampled} sampled documents has {field}, so the TTL index "
                f"{index.name} deletes nothing (is the field spelt as the application writes it?).",
                evidence=evidence,
                severity=Severity.MEDIUM,
                key=f"{index.name}:absent",
            )
        types = sampled.non_null_types
        wrong = {k: n for k, n in types.items() if k not in EXPIRABLE}
        if not wrong:
            return None
        share = sum(wrong.values()) / sum(types.values())
        evidence["non_date_examples"] = [repr(v) for v in sampled.examples if not isinstance(v, dt.datetime)][:3]
        if t.after_conversion is not None:
            evidence["expired_once_converted_estimate"] = t.after_conversion
        return self.finding(
            scope,
            object=info.namespace,
            title=f"TTL index {index.name} is on a field that holds {', '.join(sorted(wrong))}",
            message=(
                f"{info.namespace}: {share:.0%} of sampled documents hold {field} as "
                f"{', '.join(f'{k} ({n})' for k, n in sorted(wrong.items()))}, not a date: "
                f"the TTL index ({format_seconds(seconds)}) never deletes them."
            ),
            evidence=evidence,
            severity=Severity.HIGH if share >= 0.5 else Severity.MEDIUM,
            key=f"{index.name}:types",
            fix=self._conversion(t, wrong, seconds),
        )

    def _conversion(self, t: TtlIndex, wrong: dict[str, int], seconds: int) -> Fix:
        field = t.index.fields[0]
        numeric = [k for k in wrong if k in ("int", "long", "double", "decimal")]
        updates: list[dict[str, Any]] = []
        if "string" in wrong:
            updates.append({"q": {field: {"$type": "string"}}, "u": [{"$set": {field: {"$toDate": f"${field}"}}}], "multi": True})
        if numeric:
            # Epoch seconds (below 1e11) are scaled to milliseconds, which $toDate expects.
            as_ms = {"$cond": [{"$lt": [f"${field}", 100_000_000_000]}, {"$multiply": [f"${field}", 1000]}, f"${field}"]}
            updates.append({"q": {field: {"$type": numeric}}, "u": [{"$set": {field: {"$toDate": as_ms}}}], "multi": True})
        deleted = (
            f"about {t.after_conversion:,} documents (estimated from the sample)" if t.after_conversion is not None else "every converted document"
        )
        return Fix(
            summary=f"Convert {field} to dates so the TTL index can expire them",
            steps=tuple(
                FixStep("mongodb", {"update": t.info.name, "updates": [u]}, f"convert {field} values of type {list(u['q'][field].values())[0]}",
                        database=t.info.database)
                for u in updates
            ),
            safety=FixSafety.MANUAL,
            lock="rewrites every matching document (write load, oplog traffic); run in batches on a large collection",
            notes=(
                "Shown, never run by dbvitals: check the values parse as the application means them, and change the code "
                f"that writes {field} to write dates first. Once converted, the TTL monitor deletes {deleted} older than "
                f"{format_seconds(seconds)} on its next pass."
            ),
        )

    def _against_rule(self, scope: Scope, t: TtlIndex, current: int, evidence: dict[str, Any]) -> list[Finding]:
        rule, info, index = t.rule, t.info, t.index
        assert rule is not None and rule.after is not None
        declared = int(rule.after.total_seconds())
        found = []
        rule_evidence = {**evidence, "rule": {"field": rule.field, "after": format_seconds(declared), "filter": rule.filter}}
        if declared != current:
            shorter = declared < current
            safety = FixSafety.UNSAFE if shorter else FixSafety.SAFE
            if t.expiring is not None:
                rule_evidence["first_pass_deletes"] = t.expiring.documents
                rule_evidence["first_pass_basis"] = t.expiring.basis
            found.append(self.finding(
                scope,
                object=info.namespace,
                title=f"TTL of {index.name} disagrees with the retention rule",
                message=f"{info.namespace}: {index.name} expires documents after {format_seconds(current)}, the config "
                f"declares {format_seconds(declared)}: documents are deleted too {'late' if shorter else 'early'}.",
                evidence=rule_evidence,
                severity=Severity.MEDIUM,
                key=f"{index.name}:rule",
                fix=self._coll_mod(t, declared, current, safety),
            ))
        have_filter = index.options.get("partialFilterExpression")
        if (rule.filter or None) != (have_filter or None):
            spec = ttl_spec(index.fields[0], declared, rule.filter, direction=index.key[0][1] if index.is_plain else 1)
            spec["name"] = index.name
            found.append(self.finding(
                scope,
                object=info.namespace,
                title=f"TTL of {index.name} expires a different set of documents than the rule",
                message=f"{info.namespace}: {index.name} has partialFilterExpression "
                f"{json.dumps(have_filter, default=str)}, the rule's filter is {json.dumps(rule.filter, default=str)}.",
                evidence=rule_evidence,
                severity=Severity.MEDIUM,
                key=f"{index.name}:filter",
                fix=Fix(
                    summary=f"Rebuild {index.name} with the rule's filter",
                    steps=(
                        FixStep("mongodb", drop_index(info.name, index.name), f"drop {index.name}", database=info.database),
                        FixStep("mongodb", create_indexes(info.name, spec), "rebuild with the declared filter", database=info.database),
                    ),
                    safety=FixSafety.UNSAFE,
                    lock="index drop and build: nothing expires in between; a wider filter deletes more at once",
                    inverse=(
                        FixStep("mongodb", drop_index(info.name, index.name), f"drop {index.name}", database=info.database),
                        FixStep("mongodb", create_indexes(info.name, index.create_spec()), "restore the original", database=info.database),
                    ),
                    notes="collMod cannot change a partialFilterExpression, so the index is rebuilt.",
                ),
            ))
        return found

    def _coll_mod(self, t: TtlIndex, seconds: int, previous: Any, safety: FixSafety) -> Fix:
        info, index = t.info, t.index
        inverse: tuple[FixStep, ...] = ()
        if isinstance(previous, (int, float)) and not isinstance(previous, bool) and not math.isnan(previous):
            inverse = (FixStep("mongodb", {"collMod": info.name, "index": {"name": index.name, "expireAfterSeconds": int(previous)}},
                               "restore the previous TTL", database=info.database),)
        notes = first_pass_warning(t.expiring) if t.expiring and safety is FixSafety.UNSAFE else None
        return Fix(
            summary=f"Set {index.name} to expire after {format_seconds(seconds)}",
            steps=(FixStep("mongodb", {"collMod": info.name, "index": {"name": index.name, "expireAfterSeconds": seconds}},
                           "change the TTL in place", database=info.database),),
            safety=safety,
            lock="collMod: a brief exclusive collection lock",
            inverse=inverse,
            notes=notes,
        )
