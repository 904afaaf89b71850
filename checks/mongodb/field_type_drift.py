"""mongodb.field-type-drift: top-level fields whose BSON type differs across documents (a date
written as a string by one code path, an amount as a string, an ObjectId as its hex string).

MongoDB compares values of different types as unequal (numbers excepted), so a range query on
dates skips the string ones, a sort splits them, and a TTL never expires them. Reference fields
(userId...) are judged by mongodb.reference-type-mismatch and left out here. A sampled
collection's single-typed fields are also searched past the sample (one find with a limit), so a
rare minority type is found every run, not by the luck of the sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

from pydantic import Field

from checks.contract import Check, CheckOptions, Scope
from checks.model import Finding, FixAvailability, Severity
from checks.mongodb._inventory import (
    OWN_COMMENT,
    CollectionInfo,
    FieldSample,
    OverBudget,
    Sample,
    bson_type,
    budgeted,
    call_budget,
    figure,
)
from checks.mongodb._schema import sampled_collections
from checks.mongodb.reference_type_mismatch import REFERENCE_NAME

NUMBERS = {"int", "long", "double", "decimal"}  # compare by value: one family
SEARCHED_FIELDS = 20  # single-typed fields of a sampled collection searched for other types
SEARCHED_DOCUMENTS = 20  # documents of other types the search returns at most
# Pairs where one type is the other written as text: queries on one type miss the other.
TEXT_OF = {"date", "objectId", "number", "bool"}


class FieldTypeDriftOptions(CheckOptions):
    sample_size: int = Field(default=200, ge=10, le=10_000, description="Documents sampled per larger collection (seeded, the same each run; up to 2,000 are read whole).")
    min_share: float = Field(
        default=0.0, ge=0, lt=0.5, description="A minority type is reported above this share of the sampled values."
    )


def family(bson: str) -> str:
    return "number" if bson in NUMBERS else bson


@dataclass(frozen=True)
class Drift:
    info: CollectionInfo
    field: str
    families: dict[str, int]  # type family -> sampled documents
    sampled: int
    examples: tuple[str, ...]
    method: str
    beyond: dict[str, int] = dataclass_field(default_factory=dict)  # type family -> documents found past the sample


@dataclass(frozen=True)
class FieldTypeDriftFacts:
    drifts: list[Drift]


def drifts(info: CollectionInfo, fields: dict[str, FieldSample], sampled: int, method: str,
           beyond: dict[str, dict[str, int]] | None = None) -> list[Drift]:
    """Fields holding more than one type family in the sample, or one in the sample and others in
    the documents a search past the sample found (`beyond`: field -> family -> documents)."""
    found = []
    for name, f in fields.items():
        if name == "_id" or REFERENCE_NAME.match(name):
            continue
        families: dict[str, int] = {}
        for bson, n in f.non_null_types.items():
            families[family(bson)] = families.get(family(bson), 0) + n
        more = (beyond or {}).get(name, {})
        if len(set(families) | set(more)) > 1:
            found.append(Drift(info, name, dict(sorted(families.items(), key=lambda kv: -kv[1])), sampled,
                               tuple(repr(v)[:40] for v in f.examples[:3]), method, dict(sorted(more.items()))))
    return found


async def beyond_sample(session: Any, info: CollectionInfo, drawn: Sample, budget: float,
                        scope: Scope) -> dict[str, dict[str, int]]:
    """A sampled collection's single-typed fields, searched across the whole collection for
    documents holding another type: one find with a limit, in _id order, under the call budget
    (a rare minority, an import's strings among numbers, is missed by any sample). One that does
    not answer is said as skipped. {field: {type family: documents found}}."""
    if drawn.whole:
        return {}
    typed = {name: {family(t) for t in f.non_null_types} for name, f in drawn.fields.items()
             if name != "_id" and not REFERENCE_NAME.match(name) and len({family(t) for t in f.non_null_types}) == 1}
    fields = sorted(typed)[:SEARCHED_FIELDS]
    if not fields:
        return {}
    query = {"$or": [{name: {"$exists": True, "$not": {"$type": [*sorted(typed[name]), "null"]}}} for name in fields]}
    coll = session.client[info.database][info.name]

    async def run() -> list[dict[str, Any]]:
        return await coll.find(query, {name: 1 for name in fields}, sort=[("_id", 1)], limit=SEARCHED_DOCUMENTS,
                               comment=OWN_COMMENT).to_list(SEARCHED_DOCUMENTS)

    try:
        found = await budgeted(session, "searching other types", budget, run)
    except OverBudget as exc:
        scope.skipped(f"other types in {info.namespace} past the sample", exc.reason)
        return {}
    beyond: dict[str, dict[str, int]] = {}
    for doc in found:
        for name in fields:
            if doc.get(name) is not None and family(bson_type(doc[name])) not in typed[name]:
                kinds = beyond.setdefault(name, {})
                kinds[family(bson_type(doc[name]))] = kinds.get(family(bson_type(doc[name])), 0) + 1
    return beyond


class FieldTypeDrift(Check):
    id = "mongodb.field-type-drift"
    engine = "mongodb"
    title = "Fields whose BSON type differs across documents"
    severity = Severity.MEDIUM
    fix_availability = FixAvailability.NEVER
    rationale = (
        "A field stored as a date in some documents and a string in others (or an amount as a number and a "
        "string) silently drops documents from range queries, sorts them apart, defeats TTL indexes and breaks "
        "aggregations. It is the trace of one code path, an import or a migration writing another type."
    )
    Options = FieldTypeDriftOptions

    async def gather(self, session: Any, scope: Scope) -> FieldTypeDriftFacts:
        pairs = await sampled_collections(session, scope.config, scope.options.sample_size, scope=scope)
        budget = call_budget(scope.config)
        found = []
        for info, drawn in pairs:
            if drawn.documents:
                beyond = await beyond_sample(session, info, drawn, budget, scope)
                found.extend(drifts(info, drawn.fields, drawn.documents, drawn.method, beyond))
        return FieldTypeDriftFacts(found)

    def evaluate(self, facts: FieldTypeDriftFacts, scope: Scope) -> list[Finding]:
        options: FieldTypeDriftOptions = scope.options
        findings = []
        for d in facts.drifts:
            total = sum(d.families.values())
            minority = total - max(d.families.values())
            found_past = sum(d.beyond.values())
            # Past the sample only documents of other types are found: their share is at least this.
            share = minority / total if minority else found_past / max(d.info.count or 0, total + found_past)
            if share <= options.min_share:
                continue
            kinds = list(dict.fromkeys([*d.families, *d.beyond]))
            text = "string" in kinds and bool(TEXT_OF & set(kinds))
            shares = ", ".join(f"{t} {n} ({n / total:.0%})" for t, n in d.families.items())
            past = ""
            if d.beyond:
                at_least = "at least " if found_past >= SEARCHED_DOCUMENTS else ""
                past = (" A search of the whole collection found " + ", ".join(
                    f"{t} in {at_least}{n} documents" for t, n in d.beyond.items()) + " the sample missed.")
            evidence = {"namespace": d.info.namespace, "field": d.field, "types_in_sample": d.families,
                        "sampled_documents": d.sampled, "sampled_by": d.method, "examples": list(d.examples),
                        "documents": figure(d.info.count, d.info)}
            if d.beyond:
                evidence["types_found_past_the_sample"] = d.beyond
            findings.append(self.finding(
                scope,
                object=f"{d.info.namespace}.{d.field}",
                title=f"{d.info.name}.{d.field} holds {' and '.join(kinds)}",
                message=f"{d.info.namespace}: {d.field} is stored as {shares} in {d.sampled} sampled documents.{past} "
                + ("Queries and indexes on one type never match the values written as text. " if text else "")
                + "Find the code path writing the minority type, fix it, then convert the stored values.",
                evidence=evidence,
                severity=Severity.MEDIUM if text else Severity.LOW,
                key=d.field,
            ))
        return findings
