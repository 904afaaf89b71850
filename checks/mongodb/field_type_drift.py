"""mongodb.field-type-drift: top-level fields whose BSON type differs across documents (a date
written as a string by one code path, an amount as a string, an ObjectId as its hex string).

MongoDB compares values of different types as unequal (numbers excepted), so a range query on
dates skips the string ones, a sort splits them, and a TTL never expires them. Reference fields
(userId...) are judged by mongodb.reference-type-mismatch and left out here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field

from checks.contract import Check, CheckOptions, Scope
from checks.model import Finding, FixAvailability, Severity
from checks.mongodb._inventory import CollectionInfo, FieldSample, figure
from checks.mongodb._schema import sampled_collections
from checks.mongodb.reference_type_mismatch import REFERENCE_NAME

NUMBERS = {"int", "long", "double", "decimal"}  # compare by value: one family
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


@dataclass(frozen=True)
class FieldTypeDriftFacts:
    drifts: list[Drift]


def drifts(info: CollectionInfo, fields: dict[str, FieldSample], sampled: int, method: str) -> list[Drift]:
    found = []
    for name, f in fields.items():
        if name == "_id" or REFERENCE_NAME.match(name):
            continue
        families: dict[str, int] = {}
        for bson, n in f.non_null_types.items():
            families[family(bson)] = families.get(family(bson), 0) + n
        if len(families) > 1:
            found.append(Drift(info, name, dict(sorted(families.items(), key=lambda kv: -kv[1])), sampled,
                               tuple(repr(v)[:40] for v in f.examples[:3]), method))
    return found


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
        return FieldTypeDriftFacts([d for info, s in pairs if s.documents for d in drifts(info, s.fields, s.documents, s.method)])

    def evaluate(self, facts: FieldTypeDriftFacts, scope: Scope) -> list[Finding]:
        options: FieldTypeDriftOptions = scope.options
        findings = []
        for d in facts.drifts:
            total = sum(d.families.values())
            minority = total - max(d.families.values())
            if minority / total <= options.min_share:
                continue
            text = "string" in d.families and bool(TEXT_OF & set(d.families))
            shares = ", ".join(f"{t} {n} ({n / total:.0%})" for t, n in d.families.items())
            findings.append(self.finding(
                scope,
                object=f"{d.info.namespace}.{d.field}",
                title=f"{d.info.name}.{d.field} holds {' and '.join(d.families)}",
                message=f"{d.info.namespace}: {d.field} is stored as {shares} in {d.sampled} sampled documents. "
                + ("Queries and indexes on one type never match the values written as text. " if text else "")
                + "Find the code path writing the minority type, fix it, then convert the stored values.",
                evidence={"namespace": d.info.namespace, "field": d.field, "types_in_sample": d.families,
                          "sampled_documents": d.sampled, "sampled_by": d.method, "examples": list(d.examples),
                          "documents": figure(d.info.count, d.info)},
                severity=Severity.MEDIUM if text else Severity.LOW,
                key=d.field,
            ))
        return findings
