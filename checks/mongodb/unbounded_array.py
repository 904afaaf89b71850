"""mongodb.unbounded-array: arrays that grow without bound, and documents near the 16 MB limit.

From each collection's documents (read whole when small, else the shared seeded sample): the
length of every top-level array (max, p99, mean), whether older documents hold longer arrays
than newer ones (the array keeps growing after the insert: a `$push` with no bound), and the
BSON size of the largest documents. A sample can miss a rare outlier (20 users with thousands of
devices among 3,000), so a sampled collection's longest arrays and largest documents are also
asked of the server directly: `$size` and `$bsonSize` sorted with a limit, in one aggregate
under the call budget.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from checks.contract import Check, CheckOptions, Scope
from checks.model import Finding, FixAvailability, Severity
from checks.mongodb._inventory import (
    OWN_COMMENT,
    CollectionInfo,
    OverBudget,
    Sample,
    budgeted,
    call_budget,
    figure,
    oid_time,
)
from checks.mongodb._lifecycle import creation_field
from checks.mongodb._schema import sampled_collections

BSON_LIMIT = 16 * 1024 * 1024  # mongod refuses a larger document
GROWTH_FACTOR = 2.0  # older documents' arrays this many times longer than newer ones': growing
OUTLIERS = 25  # longest arrays and largest documents asked of the server per sampled collection
OUTLIER_FIELDS = 10  # array fields of one collection whose longest arrays are asked for


class UnboundedArrayOptions(CheckOptions):
    sample_size: int = Field(default=200, ge=10, le=10_000, description="Documents sampled per larger collection (seeded, the same each run; up to 2,000 are read whole).")
    max_elements: int = Field(default=1000, ge=1, description="Array length (max or p99 in the sample) reported as unbounded.")
    growing_elements: int = Field(
        default=100, ge=1, description="Array length from which growth with document age is reported."
    )
    document_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024, description="Document BSON size reported as near the 16 MB limit."
    )


@dataclass(frozen=True)
class ArrayField:
    field: str
    documents: int  # sampled documents holding it as an array
    max: int
    p99: int
    mean: float
    older_mean: float | None  # the older half of the sample (by creation time)
    newer_mean: float | None
    longest: tuple[int, ...] = ()  # the collection's longest arrays (a sampled collection's outlier query)

    @property
    def longest_known(self) -> int:
        return max(self.max, *self.longest) if self.longest else self.max

    @property
    def growing(self) -> bool:
        return (self.older_mean is not None and self.newer_mean is not None
                and self.older_mean >= GROWTH_FACTOR * max(self.newer_mean, 1))


@dataclass(frozen=True)
class CollectionArrays:
    info: CollectionInfo
    sampled: int
    method: str
    arrays: tuple[ArrayField, ...]
    largest_bytes: int
    age_field: str | None  # where a document's age was read ("_id": the ObjectId's time)
    unknown: str = ""
    largest_in_collection: tuple[int, ...] = ()  # bytes of the largest documents (outlier query)

    @property
    def largest_known(self) -> int:
        return max(self.largest_bytes, *self.largest_in_collection) if self.largest_in_collection else self.largest_bytes


@dataclass(frozen=True)
class UnboundedArrayFacts:
    collections: list[CollectionArrays]


def _p99(values: list[int]) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]


def _created(doc: dict[str, Any], field: str | None) -> dt.datetime | None:
    value = doc.get(field) if field else oid_time(doc.get("_id"))
    if not isinstance(value, dt.datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def measure(info: CollectionInfo, drawn: Sample, longest: dict[str, tuple[int, ...]] | None = None,
            largest: tuple[int, ...] = ()) -> CollectionArrays:
    """Array lengths and document sizes of the sampled documents (sizes encoded here: the
    sample is already in hand, so no `$bsonSize` scan is sent)."""
    from bson import encode

    age_field = creation_field(drawn)
    dated = sorted(((when, doc) for doc in drawn.drawn if (when := _created(doc, age_field)) is not None),
                   key=lambda pair: pair[0])
    older = [doc for _, doc in dated[: len(dated) // 2]]
    newer = [doc for _, doc in dated[len(dated) // 2:]]
    arrays = []
    for name, field in drawn.fields.items():
        if not field.types.get("array"):
            continue
        lengths = [len(doc[name]) for doc in drawn.drawn if isinstance(doc.get(name), list)]

        def mean_of(docs: list[dict[str, Any]], name: str = name) -> float | None:
            held = [len(d[name]) for d in docs if isinstance(d.get(name), list)]
            return sum(held) / len(held) if held else None

        arrays.append(ArrayField(name, len(lengths), max(lengths), _p99(lengths), round(sum(lengths) / len(lengths), 1),
                                 mean_of(older) if len(dated) >= 10 else None, mean_of(newer) if len(dated) >= 10 else None,
                                 (longest or {}).get(name, ())))
    largest_sampled = max((len(encode(doc)) for doc in drawn.drawn), default=0)
    return CollectionArrays(info, drawn.documents, drawn.method, tuple(arrays), largest_sampled,
                            age_field or ("_id" if dated else None), drawn.unknown, largest)


async def outliers(session: Any, info: CollectionInfo, drawn: Sample, budget: float,
                   scope: Scope) -> tuple[dict[str, tuple[int, ...]], tuple[int, ...]]:
    """The longest arrays of each array field the sample shows, and the largest documents, of a
    sampled collection: one aggregate (one pass over the collection) measuring each document's
    arrays with `$size` and itself with `$bsonSize`, then a `$facet` keeping the OUTLIERS
    largest of each; under the call budget, said as skipped when it does not answer."""
    if drawn.whole:
        return {}, ()
    fields = sorted(name for name, f in drawn.fields.items() if f.types.get("array"))[:OUTLIER_FIELDS]
    measures: dict[str, Any] = {f"a{i}": {"$cond": [{"$isArray": f"${name}"}, {"$size": f"${name}"}, -1]}
                                for i, name in enumerate(fields)}
    measures["bytes"] = {"$bsonSize": "$$ROOT"}
    pipeline = [
        {"$project": measures},
        {"$facet": {key: [{"$sort": {key: -1, "_id": 1}}, {"$limit": OUTLIERS}, {"$project": {"_id": 0, "n": f"${key}"}}]
                    for key in measures}},
    ]
    coll = session.client[info.database][info.name]

    async def run() -> list[dict[str, Any]]:
        return await (await coll.aggregate(pipeline, comment=OWN_COMMENT)).to_list(1)

    try:
        [tops] = await budgeted(session, "the longest arrays and largest documents", budget, run)
    except OverBudget as exc:
        scope.skipped(f"the longest arrays and largest documents of {info.namespace}", exc.reason)
        return {}, ()

    def top(key: str) -> tuple[int, ...]:
        return tuple(int(row["n"]) for row in tops.get(key, []) if int(row["n"]) >= 0)

    return {name: top(f"a{i}") for i, name in enumerate(fields)}, top("bytes")


class UnboundedArray(Check):
    id = "mongodb.unbounded-array"
    engine = "mongodb"
    title = "Arrays that grow without bound, and documents near the 16 MB limit"
    severity = Severity.MEDIUM
    fix_availability = FixAvailability.NEVER
    rationale = (
        "An array that every event pushes into (followers, messages, history) grows with the document: each "
        "update rewrites a larger document, indexes on the array get one key per element, the working set "
        "swells, and at 16 MB mongod refuses the write outright. The fix is a model change (a separate "
        "collection, the bucket or subset pattern), so it is reported early, from the sample."
    )
    Options = UnboundedArrayOptions

    async def gather(self, session: Any, scope: Scope) -> UnboundedArrayFacts:
        options: UnboundedArrayOptions = scope.options
        pairs = await sampled_collections(session, scope.config, options.sample_size, scope=scope)
        budget = call_budget(scope.config)
        measured = []
        for info, drawn in pairs:
            if drawn.documents:
                measured.append(measure(info, drawn, *await outliers(session, info, drawn, budget, scope)))
        return UnboundedArrayFacts(measured)

    def evaluate(self, facts: UnboundedArrayFacts, scope: Scope) -> list[Finding]:
        options: UnboundedArrayOptions = scope.options
        findings = []
        for coll in facts.collections:
            findings.extend(self._arrays(scope, coll, options))
            if coll.largest_known >= options.document_bytes:
                findings.append(self._size(scope, coll))
        return findings

    def _arrays(self, scope: Scope, coll: CollectionArrays, options: UnboundedArrayOptions) -> list[Finding]:
        found = []
        for a in coll.arrays:
            long = a.p99 >= options.max_elements or a.longest_known >= options.max_elements
            growing = a.growing and a.longest_known >= options.growing_elements
            if not (long or growing):
                continue
            reasons = []
            over = sum(n >= options.max_elements for n in a.longest)
            if long and a.longest:
                reasons.append(f"up to {a.longest_known:,} elements: {over if over < OUTLIERS else f'at least {over}'} "
                               f"documents hold {options.max_elements:,} or more, while the {coll.sampled} sampled "
                               f"documents hold up to {a.max:,} (p99 {a.p99:,}, mean {a.mean:,.1f})")
            elif long:
                reasons.append(f"up to {a.max:,} elements (p99 {a.p99:,}, mean {a.mean:,.1f}) in {coll.sampled} sampled documents")
            if a.growing:
                reasons.append(f"older documents hold {a.older_mean:,.1f} elements on average, newer ones {a.newer_mean:,.1f}: "
                               "it keeps growing after the insert")
            found.append(self.finding(
                scope,
                object=f"{coll.info.namespace}.{a.field}",
                title=f"Array {a.field} of {coll.info.name} grows without bound",
                message=f"{coll.info.namespace}: {a.field} holds " + "; ".join(reasons) + ". Move its elements to a "
                "collection of their own (one document per element, referencing this one), or cap it ($push with "
                "$slice) and keep the rest elsewhere.",
                evidence={
                    "namespace": coll.info.namespace, "field": a.field, "documents": figure(coll.info.count, coll.info),
                    "sampled_documents": coll.sampled, "sampled_by": coll.method, "documents_with_array": a.documents,
                    "max_elements": a.max, "p99_elements": a.p99, "mean_elements": a.mean,
                    "older_half_mean": a.older_mean, "newer_half_mean": a.newer_mean, "age_from": coll.age_field,
                    "largest_document_bytes": coll.largest_known,
                    "longest_in_collection": list(a.longest) if a.longest else "the sample is the whole collection",
                    "documents_at_max_elements": over if a.longest else None,
                },
                severity=Severity.HIGH if a.longest_known >= 10 * options.max_elements else Severity.MEDIUM,
                key=a.field,
            ))
        return found

    def _size(self, scope: Scope, coll: CollectionArrays) -> Finding:
        share = coll.largest_known / BSON_LIMIT
        return self.finding(
            scope,
            object=coll.info.namespace,
            title=f"Documents of {coll.info.name} near the 16 MB limit",
            message=f"{coll.info.namespace}: the largest document is "
            f"{coll.largest_known / 1048576:,.1f} MiB, {share:.0%} of the 16 MB BSON limit past which mongod refuses "
            "the write. Split what grows into documents of its own.",
            evidence={"namespace": coll.info.namespace, "largest_bytes": coll.largest_known,
                      "largest_sampled_bytes": coll.largest_bytes, "limit_bytes": BSON_LIMIT,
                      "sampled_documents": coll.sampled, "sampled_by": coll.method},
            severity=Severity.HIGH if share >= 0.75 else Severity.MEDIUM,
            key="document-size",
        )
