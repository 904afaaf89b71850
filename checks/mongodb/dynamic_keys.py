"""mongodb.dynamic-keys: objects used as maps, whose keys are data (agency codes, user ids).

Such an object cannot be indexed per key without one index per key (the cause of endless index
suggestions), cannot be validated by a schema, and grows its key space without bound. The
attribute pattern (an array of {k, v}) or a wildcard index serves it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field

from checks.contract import Check, CheckOptions, Scope
from checks.model import Finding, FixAvailability, Severity
from checks.mongodb._inventory import CollectionInfo, figure
from checks.mongodb._schema import DynamicKeys, dynamic_objects, sampled_collections


class DynamicKeysOptions(CheckOptions):
    sample_size: int = Field(default=200, ge=10, le=10_000, description="Documents sampled per larger collection (seeded, the same each run; up to 2,000 are read whole).")


@dataclass(frozen=True)
class MapField:
    info: CollectionInfo
    keys: DynamicKeys
    sampled: int
    method: str
    wildcard_index: str | None  # an existing wildcard index covering the map


@dataclass(frozen=True)
class DynamicKeysFacts:
    maps: list[MapField]


def wildcard_for(info: CollectionInfo, field: str) -> str | None:
    for index in info.indexes:
        if any(k in ("$**", f"{field}.$**") for k in index.fields):
            return index.name
    return None


class DynamicKeyMaps(Check):
    id = "mongodb.dynamic-keys"
    engine = "mongodb"
    title = "Objects used as maps: keys that are data"
    severity = Severity.LOW
    fix_availability = FixAvailability.NEVER
    rationale = (
        "An object keyed by ids or codes ({assignments: {AG1: ..., AG2: ...}}) has a key space that grows with "
        "the data: each key queried needs its own index, schema validation cannot describe it, and documents "
        "swell. The attribute pattern (an array of {k, v} with one compound index) or a wildcard index fits."
    )
    Options = DynamicKeysOptions

    async def gather(self, session: Any, scope: Scope) -> DynamicKeysFacts:
        pairs = await sampled_collections(session, scope.config, scope.options.sample_size, scope=scope)
        return DynamicKeysFacts([
            MapField(info, keys, s.documents, s.method, wildcard_for(info, name))
            for info, s in pairs if s.documents for name, keys in dynamic_objects(s).items()
        ])

    def evaluate(self, facts: DynamicKeysFacts, scope: Scope) -> list[Finding]:
        findings = []
        for m in facts.maps:
            k = m.keys
            indexed = (f" The wildcard index {m.wildcard_index} already serves queries on its keys."
                       if m.wildcard_index else
                       f" To query it by key, one wildcard index ({{\"{k.field}.$**\": 1}}) serves every key.")
            findings.append(self.finding(
                scope,
                object=f"{m.info.namespace}.{k.field}",
                title=f"{m.info.name}.{k.field} is used as a map",
                message=f"{m.info.namespace}: {k.field} has {k.distinct_keys} distinct keys across {k.documents} sampled "
                f"documents but {k.mean_keys:g} per document: its keys are data (e.g. {', '.join(k.examples[:3])})."
                + indexed + f" Better, model it as an array of {{k, v}} indexed on {{\"{k.field}.k\": 1, \"{k.field}.v\": 1}}.",
                evidence={"namespace": m.info.namespace, "field": k.field, "distinct_keys_in_sample": k.distinct_keys,
                          "keys_per_document": k.mean_keys, "documents_with_field": k.documents, "example_keys": list(k.examples),
                          "sampled_documents": m.sampled, "sampled_by": m.method, "wildcard_index": m.wildcard_index,
                          "documents": figure(m.info.count, m.info)},
                severity=Severity.LOW if m.wildcard_index else Severity.MEDIUM if k.distinct_keys >= 100 else Severity.LOW,
                key=k.field,
            ))
        return findings
