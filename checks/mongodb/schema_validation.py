"""mongodb.schema-validation: collections that accept any document.

A collection without a validator takes whatever a buggy code path writes; one whose
validationAction is "warn" only logs the violations; and documents written before the validator
(or under validationLevel "moderate") may violate it still. The violations are counted on the
collection's shared sample (matched by _id) by the server itself (`$nor: [validator]`), never by a scan.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from checks.contract import Check, CheckOptions, Scope
from checks.model import Finding, Fix, FixAvailability, FixSafety, FixStep, Severity
from checks.mongodb._inventory import (
    OWN_COMMENT,
    OverBudget,
    budgeted,
    call_budget,
    collection_info,
    limited,
    sample,
)


class SchemaValidationOptions(CheckOptions):
    sample_size: int = Field(default=200, ge=10, le=10_000, description="Documents sampled per collection for violations.")
    require_validator: bool = Field(
        default=False, description="Collections without a validator are low severity instead of one info note."
    )


@dataclass(frozen=True)
class Validation:
    database: str
    collection: str
    validator: dict[str, Any] | None
    action: str  # "error" (the default) | "warn" | "errorAndLog"
    level: str  # "strict" (the default) | "moderate" | "off"
    sampled: int | None = None  # documents the violation count was read from
    violations: int | None = None
    unknown: str = ""

    @property
    def namespace(self) -> str:
        return f"{self.database}.{self.collection}"


@dataclass(frozen=True)
class SchemaValidationFacts:
    collections: list[Validation] = field(default_factory=list)


async def _validations(session: Any, database: str) -> list[Validation]:
    async def read() -> list[dict[str, Any]]:
        cursor = await session.client[database].list_collections(filter={"type": "collection"})
        return [doc async for doc in cursor]

    found = []
    for doc in await limited(session, read()):
        if str(doc["name"]).startswith("system."):
            continue
        options = doc.get("options") or {}
        found.append(Validation(database, doc["name"], options.get("validator") or None,
                                str(options.get("validationAction", "error")), str(options.get("validationLevel", "strict"))))
    return found


class SchemaValidation(Check):
    id = "mongodb.schema-validation"
    engine = "mongodb"
    title = "Collections without schema validation, or validating only with a warning"
    severity = Severity.LOW
    fix_availability = FixAvailability.SOMETIMES
    rationale = (
        "MongoDB stores whatever it is given: a field renamed in one code path, a date written as a string, a "
        "required field left out. A validator ($jsonSchema) refuses such writes at the door; with "
        "validationAction \"warn\" they are only logged, and documents written before it stay invalid."
    )
    Options = SchemaValidationOptions

    async def gather(self, session: Any, scope: Scope) -> SchemaValidationFacts:
        budget = call_budget(scope.config)
        found = [v for db in await session.databases() for v in await _validations(session, db)]
        counted = await asyncio.gather(*(self._violations(session, v, scope.options.sample_size, budget)
                                         if v.validator else _same(v) for v in found))
        for v in counted:
            if v.unknown:  # over the call budget: its documents were not checked against the validator
                scope.skipped(f"collection {v.database}.{v.collection}", v.unknown)
        return SchemaValidationFacts(list(counted))

    async def _violations(self, session: Any, v: Validation, size: int, budget: float) -> Validation:
        coll = session.client[v.database][v.collection]
        drawn = await sample(session, await collection_info(session, v.database, v.collection), size, budget)
        if drawn.unknown:
            return Validation(**{**v.__dict__, "unknown": drawn.unknown})
        # The shared sample's documents, matched by _id: the same ones every run.
        pipeline = [{"$match": {"_id": {"$in": [doc["_id"] for doc in drawn.drawn]}}},
                    {"$facet": {"sampled": [{"$count": "n"}], "invalid": [{"$match": {"$nor": [v.validator]}}, {"$count": "n"}]}}]

        async def run() -> list[dict[str, Any]]:
            return await (await coll.aggregate(pipeline, comment=OWN_COMMENT)).to_list(1)

        try:
            [row] = await budgeted(session, "a sampled validation", budget, run)
        except OverBudget as exc:
            return Validation(**{**v.__dict__, "unknown": exc.reason})
        sampled = row["sampled"][0]["n"] if row.get("sampled") else 0
        invalid = row["invalid"][0]["n"] if row.get("invalid") else 0
        return Validation(**{**v.__dict__, "sampled": sampled, "violations": invalid})

    def evaluate(self, facts: SchemaValidationFacts, scope: Scope) -> list[Finding]:
        options: SchemaValidationOptions = scope.options
        findings = []
        without: dict[str, list[str]] = {}
        for v in facts.collections:
            if v.validator is None:
                without.setdefault(v.database, []).append(v.collection)
                continue
            if v.action == "warn" or v.level == "off":
                findings.append(self._warn_only(scope, v))
            elif v.violations:
                findings.append(self._invalid(scope, v))
        for database, names in without.items():
            findings.append(self.finding(
                scope,
                object=database,
                title=f"{len(names)} collection{'s' if len(names) != 1 else ''} of {database} accept any document",
                message=f"{database}: {', '.join(sorted(names)[:10])}{' ...' if len(names) > 10 else ''} have no validator: "
                "any shape of document is stored. Add a $jsonSchema validator (collMod) to the collections the "
                "application owns, starting with validationAction \"warn\" and moving to \"error\".",
                evidence={"database": database, "collections_without_validator": sorted(names)},
                severity=Severity.LOW if options.require_validator else Severity.INFO,
                key="no-validator",
            ))
        return findings

    def _sampled(self, v: Validation) -> dict[str, Any]:
        return {"namespace": v.namespace, "validator": v.validator, "validationAction": v.action, "validationLevel": v.level,
                "sampled_documents": v.sampled if v.unknown == "" else f"unknown: {v.unknown}",
                "violating_in_sample": v.violations if v.unknown == "" else f"unknown: {v.unknown}"}

    def _warn_only(self, scope: Scope, v: Validation) -> Finding:
        violations = (f" {v.violations} of {v.sampled} sampled documents violate it already." if v.violations
                      else "" if v.unknown else f" None of {v.sampled} sampled documents violates it.")
        setting = {"validationAction": "error"} if v.action == "warn" else {"validationLevel": "strict"}
        previous = {"validationAction": v.action} if v.action == "warn" else {"validationLevel": v.level}
        return self.finding(
            scope,
            object=v.namespace,
            title=f"Validator of {v.collection} only " + ("warns" if v.action == "warn" else "is switched off"),
            message=f"{v.namespace} has a validator with validationAction \"{v.action}\" and validationLevel \"{v.level}\": "
            "documents that violate it are stored anyway." + violations,
            evidence=self._sampled(v),
            severity=Severity.MEDIUM if v.violations else Severity.LOW,
            key="warn",
            fix=Fix(
                summary=f"Enforce the validator of {v.collection}",
                steps=(FixStep("mongodb", {"collMod": v.collection, **setting}, "refuse invalid writes", database=v.database),),
                safety=FixSafety.MANUAL,
                lock="collMod: a brief exclusive collection lock; from then on, invalid writes fail in the application",
                inverse=(FixStep("mongodb", {"collMod": v.collection, **previous}, "back to the previous setting", database=v.database),),
                notes="Shown, never run by dbvitals: first fix the code paths that write invalid documents (the server "
                "log names them while the action is \"warn\"), or writes start failing.",
            ),
        )

    def _invalid(self, scope: Scope, v: Validation) -> Finding:
        return self.finding(
            scope,
            object=v.namespace,
            title=f"Documents of {v.collection} violate its validator",
            message=f"{v.namespace}: {v.violations} of {v.sampled} sampled documents violate its validator (written before "
            f"it, or under validationLevel \"{v.level}\"). An update to such a document fails until it is repaired.",
            evidence=self._sampled(v),
            severity=Severity.MEDIUM,
            key="violations",
        )


async def _same(v: Validation) -> Validation:
    return v
