"""mongodb.unbounded-array: arrays that grow without bound, and documents near the 16 MB limit.

From each collection's bounded sample: the length of every top-level array (max, p99, mean),
whether older documents hold longer arrays than newer ones (the array keeps growing after the
insert: a `$push` with no bound), and the BSON size of the largest sampled documents.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from checks.contract import Check, CheckOptions, Scope
from checks.model import Finding, FixAvailability, Severity
from checks.mongodb._inventory import CollectionInfo, Sample, figure, oid_time
from checks.mongodb._lifecycle import creation_field
from checks.mongodb._schema import sampled_collections

BSON_LIMIT = 16 * 1024 * 1024  # mongod refuses a larger document
GROWTH_FACTOR = 2.0  # older documents' arrays this many times longer than newer ones': growing


class UnboundedArrayOptions(CheckOptions):
    sample_size: int = Field(default=200, ge=10, le=10_000, description="Documents sampled per collection ($sample).")
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


def measure(info: CollectionInfo, drawn: Sample) -> CollectionArrays:
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
                                 mean_of(older) if len(dated) >= 10 else None, mean_of(newer) if len(dated) >= 10 else None))
    largest = max((len(encode(doc)) for doc in drawn.drawn), default=0)
    return CollectionArrays(info, drawn.documents, drawn.method, tuple(arrays), largest,
                            age_field or ("_id" if dated else None), drawn.unknown)


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
        return UnboundedArrayFacts([measure(info, drawn) for info, drawn in pairs if drawn.documents])

    def evaluate(self, facts: UnboundedArrayFacts, scope: Scope) -> list[Finding]:
        options: UnboundedArrayOptions = scope.options
        findings = []
        for coll in facts.collections:
            findings.extend(self._arrays(scope, coll, options))
            if coll.largest_bytes >= options.document_bytes:
                findings.append(self._size(scope, coll))
        return findings

    def _arrays(self, scope: Scope, coll: CollectionArrays, options: UnboundedArrayOptions) -> list[Finding]:
        found = []
        for a in coll.arrays:
            long = a.p99 >= options.max_elements or a.max >= options.max_elements
            growing = a.growing and a.max >= options.growing_elements
            if not (long or growing):
                continue
            reasons = []
            if long:
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
                    "largest_document_bytes": coll.largest_bytes,
                },
                severity=Severity.HIGH if a.max >= 10 * options.max_elements else Severity.MEDIUM,
                key=a.field,
            ))
        return found

    def _size(self, scope: Scope, coll: CollectionArrays) -> Finding:
        share = coll.largest_bytes / BSON_LIMIT
        return self.finding(
            scope,
            object=coll.info.namespace,
            title=f"Documents of {coll.info.name} near the 16 MB limit",
            message=f"{coll.info.namespace}: the largest of {coll.sampled} sampled documents is "
            f"{coll.largest_bytes / 1048576:,.1f} MiB, {share:.0%} of the 16 MB BSON limit past which mongod refuses "
            "the write. Split what grows into documents of its own.",
            evidence={"namespace": coll.info.namespace, "largest_sampled_bytes": coll.largest_bytes, "limit_bytes": BSON_LIMIT,
                      "sampled_documents": coll.sampled, "sampled_by": coll.method},
            severity=Severity.HIGH if share >= 0.75 else Severity.MEDIUM,
            key="document-size",
        )
