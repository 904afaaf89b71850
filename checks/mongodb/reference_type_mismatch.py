"""mongodb.reference-type-mismatch: reference fields whose BSON type differs from the key they
point at (a userId stored as a string while users._id is an ObjectId), or that mix types.

MongoDB compares values of different BSON types as unequal (numbers excepted: int, long,
double and decimal compare by value), so such a `$lookup` or `find({_id: doc.userId})`
silently matches nothing. References are found by name (userId, user_id, authorId -> users)
and declared in `[[targets.NAME.expect.references]]`.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from collections.abc import Awaitable
from typing import Any

from pydantic import Field

from checks.contract import Check, CheckOptions, Scope
from checks.model import Finding, Fix, FixAvailability, FixSafety, FixStep, Severity
from checks.mongodb._inventory import OWN_COMMENT, WHOLE, FieldSample, OverBudget, budgeted, call_budget, collection_info, collection_names, sample

REFERENCE_NAME = re.compile(r"^(?P<base>[A-Za-z][A-Za-z0-9_]*?)(?:Id|_id|ID)$")
OBJECT_ID_HEX = re.compile(r"^[0-9a-fA-F]{24}$")
NUMBERS = {"int", "long", "double", "decimal"}
LOOKUP_IDS = 10  # sampled ids looked up to find where a reference no name implies points
# The aggregation operator that converts a value into each type, for the suggested pipeline.
CONVERTERS = {"objectId": "$toObjectId", "string": "$toString", "date": "$toDate", "long": "$toLong",
              "int": "$toInt", "double": "$toDouble", "decimal": "$toDecimal"}


class ReferenceTypeMismatchOptions(CheckOptions):
    sample_size: int = Field(default=200, ge=10, le=10_000, description="Documents sampled per larger collection (seeded, the same each run; up to 2,000 are read whole).")


@dataclass(frozen=True)
class Reference:
    database: str
    collection: str
    field: str
    target: str  # collection
    target_field: str
    declared: bool
    source: FieldSample
    target_types: dict[str, int]
    sampled: int
    target_sampled: int
    found_as_stored: tuple[int, int] | None = None  # (found, probed) looking the sample ids up as they are
    found_as_object_id: tuple[int, int] | None = None  # the same 24-hex strings looked up as ObjectIds
    sampled_by: str = WHOLE
    found_by: str = ""  # for a reference no collection's name implies: where its values were found

    @property
    def how_known(self) -> str:
        if self.declared:
            return "declared in the config"
        return self.found_by or "implied by the field name"


@dataclass(frozen=True)
class NotSampled:
    """A collection whose references could not be read: its sample did not answer in time."""

    database: str
    collection: str
    reason: str
    referenced_by: tuple[str, ...] = ()  # declared or found references that point at it, unjudged


@dataclass(frozen=True)
class ReferenceFacts:
    references: list[Reference]
    not_sampled: list[NotSampled] = field(default_factory=list)


def family(bson: str) -> str:
    return "number" if bson in NUMBERS else bson


def normalise(name: str) -> str:
    return name.lower().replace("_", "")


def referenced_collection(field: str, collections: list[str]) -> str | None:
    """userId -> users (or user, or people-style irregulars named exactly); None when no
    collection of this database fits the name."""
    match = REFERENCE_NAME.match(field)
    if not match:
        return None
    base = normalise(match["base"])
    wanted = [base, base + "s", base + "es"] + ([base[:-1] + "ies"] if base.endswith("y") else [])
    by_name = {normalise(c): c for c in collections}
    return next((by_name[w] for w in wanted if w in by_name), None)


class ReferenceTypeMismatch(Check):
    id = "mongodb.reference-type-mismatch"
    engine = "mongodb"
    title = "References stored with a different BSON type than the key they point at"
    severity = Severity.HIGH
    fix_availability = FixAvailability.SOMETIMES
    rationale = (
        "A reference stored as a string while the referenced _id is an ObjectId never matches: $lookup returns "
        "empty arrays and find({_id: userId}) returns nothing, with no error. Mixed types across documents "
        "break the same way for some documents only, which is harder to notice."
    )
    Options = ReferenceTypeMismatchOptions

    async def gather(self, session: Any, scope: Scope) -> ReferenceFacts:
        size = scope.options.sample_size
        budget = call_budget(scope.config)
        databases = await session.databases()
        names = {db: await collection_names(session, db) for db in databases}
        pairs: dict[tuple[str, str, str], tuple[str, str, bool]] = {}  # (db, coll, field) -> (target, target field, declared)
        for ref in scope.config.expect.references:
            coll, fld = ref.column.split(".", 1)
            target, target_field = ref.references.split(".", 1)
            db = session.default_database or next((d for d in databases if coll in names[d]), None)
            if db is not None:
                pairs[(db, coll, fld)] = (target, target_field, True)

        async def drawn(db: str, name: str) -> Any:
            return await sample(session, await collection_info(session, db, name), size, budget)

        not_sampled: dict[tuple[str, str], str] = {}
        for db in databases:
            for got in await asyncio.gather(*(drawn(db, n) for n in names[db])):
                if got.unknown:
                    not_sampled[(db, got.collection)] = got.unknown
                    scope.skipped(f"collection {db}.{got.collection}", got.unknown)  # its references were not read
                for fld, values in got.fields.items():
                    referenced = referenced_collection(fld, names[db])
                    if referenced and values.types.keys() != {"array"} and (db, got.collection, fld) not in pairs:
                        pairs[(db, got.collection, fld)] = (referenced, "_id", False)
        found_by: dict[tuple[str, str, str], str] = {}
        for db in databases:
            for key, (target, words) in (await self._unnamed(session, db, names[db], pairs, size, budget)).items():
                pairs[key] = (target, "_id", False)
                found_by[key] = words
        existing = [(k, v) for k, v in pairs.items() if k[1] in names.get(k[0], ()) and v[0] in names.get(k[0], ())]
        found = await asyncio.gather(*(self._reference(session, key, value, size, budget, found_by.get(key, ""))
                                       for key, value in existing))
        unjudged: dict[tuple[str, str], list[str]] = {}
        for (db, coll, fld), (target, target_field, _) in pairs.items():
            for side in ((db, coll), (db, target)):
                if side in not_sampled:
                    unjudged.setdefault(side, []).append(f"{coll}.{fld} -> {target}.{target_field}")
        return ReferenceFacts(
            [r for r in found if r is not None],
            [NotSampled(db, coll, reason, tuple(unjudged.get((db, coll), ()))) for (db, coll), reason in sorted(not_sampled.items())],
        )

    async def _unnamed(
        self, session: Any, db: str, names: list[str], known: dict[tuple[str, str, str], Any], size: int, budget: float,
    ) -> dict[tuple[str, str, str], tuple[str, str]]:
        """References no collection's name implies (referenceId, targetId) whose sampled values are
        ObjectIds written as 24-hex strings: found where a few of them exist as ObjectId _ids.
        One indexed `_id: {$in: [...]}` read per collection holding ObjectId _ids, for every such
        field at once (one pass, not one per field), under the call budget;
        {(db, collection, field): (target, how it was found)}."""
        from bson import ObjectId  # the driver only when a check runs

        samples = {n: await sample(session, await collection_info(session, db, n), size, budget) for n in names}
        wanted: dict[tuple[str, str], list[Any]] = {}  # (collection, field) -> ObjectIds to look up
        for name, drawn in samples.items():
            for fld, values in drawn.fields.items():
                if (db, name, fld) in known or not REFERENCE_NAME.match(fld) or referenced_collection(fld, names):
                    continue
                strings = [doc[fld] for doc in drawn.drawn if isinstance(doc.get(fld), str)]
                hexes = [v for v in strings if OBJECT_ID_HEX.match(v)]
                if values.share("string") < 0.5 or len(hexes) < 0.9 * len(strings):
                    continue  # mostly not ObjectIds written as text: nothing to look up
                wanted[(name, fld)] = [ObjectId(h) for h in list(dict.fromkeys(hexes))[:LOOKUP_IDS]]
        if not wanted:
            return {}
        every = list({oid for ids in wanted.values() for oid in ids})
        hits: dict[tuple[str, str], dict[str, int]] = {key: {} for key in wanted}
        for target, drawn in samples.items():
            if "_id" not in drawn.fields or drawn.fields["_id"].share("objectId") < 0.5:
                continue

            def lookup(coll: Any = session.client[db][target]) -> Awaitable[list[dict[str, Any]]]:
                return coll.find({"_id": {"$in": every}}, {"_id": 1}, comment=OWN_COMMENT).to_list(None)

            try:
                present = {doc["_id"] for doc in await budgeted(session, "looking the ids up", budget, lookup)}
            except OverBudget:  # that collection is not claimed either way
                continue
            for (name, fld), ids in wanted.items():
                if target != name and (n := sum(oid in present for oid in ids)):
                    hits[(name, fld)][target] = n
        found: dict[tuple[str, str, str], tuple[str, str]] = {}
        for (name, fld), by_target in hits.items():
            best = max(sorted(by_target), key=lambda t: by_target[t], default=None)
            if best is not None:
                found[(db, name, fld)] = (best, f"its values found as ObjectId _ids of {best} "
                                                f"({by_target[best]} of {len(wanted[(name, fld)])} sampled ids)")
        return found

    async def _reference(
        self, session: Any, key: tuple[str, str, str], value: tuple[str, str, bool], size: int, budget: float,
        found_by: str = "",
    ) -> Reference | None:
        db, coll, fld = key
        target, target_field, declared = value
        source, referenced = await asyncio.gather(
            sample(session, await collection_info(session, db, coll), size, budget),
            sample(session, await collection_info(session, db, target), size, budget),
        )
        values = source.fields.get(fld)
        target_values = referenced.fields.get(target_field)
        if values is None or target_values is None or not values.non_null_types or not target_values.non_null_types:
            return None  # nothing to compare: an empty or unsampled side is unknown (reported as not sampled), not a mismatch
        reference = Reference(db, coll, fld, target, target_field, declared, values, target_values.non_null_types,
                              source.documents, referenced.documents, sampled_by=source.method, found_by=found_by)
        if {family(t) for t in values.non_null_types} == {family(t) for t in target_values.non_null_types}:
            return reference
        strings = [v for v in values.examples if isinstance(v, str)]
        if strings and "objectId" in target_values.types:
            from bson import ObjectId  # the driver only when a check runs: the catalog loads without it

            target_coll = session.client[db][target]
            hex_ids = [ObjectId(s) for s in strings if OBJECT_ID_HEX.match(s)]
            try:
                as_stored = await budgeted(session, "looking the ids up", budget,
                                           lambda: target_coll.count_documents({target_field: {"$in": strings}}, comment=OWN_COMMENT))
                as_oid = await budgeted(session, "looking the ids up", budget,
                                        lambda: target_coll.count_documents({target_field: {"$in": hex_ids}}, comment=OWN_COMMENT)) if hex_ids else 0
            except OverBudget:  # the histogram stands on its own; the lookups only corroborate it
                return reference
            return Reference(**{**reference.__dict__, "found_as_stored": (as_stored, len(strings)),
                                "found_as_object_id": (as_oid, len(strings))})
        return reference

    def evaluate(self, facts: ReferenceFacts, scope: Scope) -> list[Finding]:
        findings = [f for r in facts.references if (f := self._judge(scope, r))]
        findings.extend(self._not_sampled(scope, n) for n in facts.not_sampled)
        return findings

    def _not_sampled(self, scope: Scope, n: NotSampled) -> Finding:
        about = (
            f"the references {', '.join(n.referenced_by)} were not compared" if n.referenced_by
            else "its reference fields (found by sampling) are unknown"
        )
        return self.finding(
            scope,
            object=f"{n.database}.{n.collection}",
            title=f"References in {n.collection} not checked",
            message=f"{n.database}.{n.collection} could not be sampled ({n.reason}), so {about}. Nothing is claimed about them.",
            evidence={"namespace": f"{n.database}.{n.collection}", "reason": n.reason, "unjudged_references": list(n.referenced_by)},
            severity=Severity.INFO,
            key="not-sampled",
        )

    def _judge(self, scope: Scope, r: Reference) -> Finding | None:
        source_types = r.source.non_null_types
        target_families = {family(t) for t in r.target_types}
        foreign = {t: n for t, n in source_types.items() if family(t) not in target_families}
        mixed = len({family(t) for t in source_types}) > 1
        if not foreign and not mixed:
            return None
        present = sum(source_types.values())
        evidence: dict[str, Any] = {
            "namespace": f"{r.database}.{r.collection}",
            "field": r.field,
            "references": f"{r.target}.{r.target_field}",
            "how_known": r.how_known,
            "type_histogram": source_types,
            "referenced_type_histogram": r.target_types,
            "sampled_documents": r.sampled,
            "sampled_by": r.sampled_by,
            "referenced_sampled_documents": r.target_sampled,
            "sample_ids": [str(v) for v in r.source.examples][:5],
        }
        if r.found_as_stored is not None:
            evidence["sample_ids_found_as_stored"] = f"{r.found_as_stored[0]} of {r.found_as_stored[1]}"
        if r.found_as_object_id is not None:
            evidence["sample_ids_found_as_objectid"] = f"{r.found_as_object_id[0]} of {r.found_as_object_id[1]}"
        wanted = max(r.target_types, key=lambda t: r.target_types[t])
        share = sum(foreign.values()) / present if present else 0
        if foreign:
            title = f"{r.collection}.{r.field} holds {', '.join(sorted(foreign))}; {r.target}.{r.target_field} is {', '.join(sorted(r.target_types))}"
            message = (
                f"{r.database}.{r.collection}.{r.field} references {r.target}.{r.target_field} ({evidence['how_known']}), "
                f"but {share:.0%} of sampled values are {', '.join(f'{t} ({n})' for t, n in sorted(foreign.items()))} "
                f"while {r.target}.{r.target_field} holds {', '.join(sorted(r.target_types))}: those references never match."
            )
            if r.found_as_object_id and r.found_as_object_id[0]:
                message += (
                    f" {r.found_as_object_id[0]} of {r.found_as_object_id[1]} sampled ids exist in {r.target} as ObjectIds "
                    f"({r.found_as_stored[0] if r.found_as_stored else 0} as stored): ObjectIds written as strings."
                )
            severity = Severity.HIGH if share >= 0.5 else Severity.MEDIUM
        else:
            title = f"{r.collection}.{r.field} mixes {', '.join(sorted(source_types))}"
            message = (
                f"{r.database}.{r.collection}.{r.field} holds several BSON types ({', '.join(f'{t} ({n})' for t, n in sorted(source_types.items()))}): "
                "a lookup written for one type misses the documents of the others."
            )
            severity = Severity.MEDIUM
        return self.finding(
            scope,
            object=f"{r.database}.{r.collection}.{r.field}",
            title=title,
            message=message,
            evidence=evidence,
            severity=severity,
            fix=self._fix(r, foreign or {t: n for t, n in source_types.items() if t != wanted}, wanted),
        )

    def _fix(self, r: Reference, wrong: dict[str, int], wanted: str) -> Fix | None:
        converter = CONVERTERS.get(wanted)
        if converter is None:
            return None
        steps = []
        for bson in sorted(wrong):
            query: dict[str, Any] = {r.field: {"$type": bson}}
            if bson == "string" and wanted == "objectId":
                query = {r.field: {"$type": "string", "$regex": OBJECT_ID_HEX.pattern}}
            steps.append(FixStep(
                "mongodb",
                {"update": r.collection, "updates": [{"q": query, "u": [{"$set": {r.field: {converter: f"${r.field}"}}}], "multi": True}]},
                f"convert {r.field} values of type {bson} to {wanted}",
                database=r.database,
            ))
        return Fix(
            summary=f"Store {r.collection}.{r.field} as {wanted}, like {r.target}.{r.target_field}",
            steps=tuple(steps),
            safety=FixSafety.MANUAL,
            lock="rewrites every matching document (write load, oplog traffic); run in batches on a large collection",
            notes=(
                "A suggested update pipeline: shown, never run by dbvitals. First change the code that writes "
                f"{r.field} to write {wanted} values (and any query that looks them up as {', '.join(sorted(wrong))}), "
                "then convert, then check that no value failed to convert."
            ),
        )
