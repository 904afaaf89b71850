"""The schema checks, pure: unbounded arrays, field type drift, maps (dynamic keys), schema
validation and transactions declared but unused; each with failing and passing cases, on
samples built from documents and on serverStatus replies as a real mongod gives them."""

from __future__ import annotations

import datetime as dt

import pytest
from bson import ObjectId

from checks.model import FixSafety, Severity
from checks.mongodb._inventory import CollectionInfo, IndexSpec, summarise
from checks.mongodb.dynamic_keys import DynamicKeyMaps, DynamicKeysFacts, MapField, wildcard_for
from checks.mongodb._schema import dynamic_objects
from checks.mongodb.field_type_drift import FieldTypeDrift, FieldTypeDriftFacts, drifts
from checks.mongodb.schema_validation import SchemaValidation, SchemaValidationFacts, Validation
from checks.mongodb.transactions_unused import TransactionsFacts, TransactionsUnused
from checks.mongodb.unbounded_array import UnboundedArray, UnboundedArrayFacts, measure
from tests.support import mongo_scope

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)


def info(name, *indexes, count=100):
    specs = (IndexSpec.from_document({"key": {"_id": 1}, "name": "_id_"}),
             *(IndexSpec.from_document({"key": key, "name": n}) for n, key in indexes))
    return CollectionInfo("app", name, count, count * 100, count * 100, specs)


# --- unbounded-array ------------------------------------------------------------------------------

def _arrays(docs, name="posts"):
    check = UnboundedArray()
    return check.evaluate(UnboundedArrayFacts([measure(info(name), summarise("app", name, docs))]), mongo_scope(check))


def test_an_array_pushed_into_forever_is_reported_with_its_growth():
    # older posts have collected more likes: length grows with age
    docs = [{"createdAt": NOW - dt.timedelta(days=i), "likes": list(range(i * 12))} for i in range(100)]
    [finding] = _arrays(docs)
    assert finding.object == "app.posts.likes"
    assert finding.evidence["max_elements"] == 99 * 12 and finding.evidence["p99_elements"] >= 1000
    assert finding.evidence["older_half_mean"] > 2 * finding.evidence["newer_half_mean"]
    assert finding.evidence["age_from"] == "createdAt" and "keeps growing" in finding.message


def test_bounded_arrays_are_fine():
    docs = [{"createdAt": NOW - dt.timedelta(days=i), "tags": ["a", "b", "c"][: i % 4]} for i in range(100)]
    assert _arrays(docs) == []


def test_growth_with_age_alone_is_reported_once_arrays_are_long_enough():
    docs = [{"_id": ObjectId.from_datetime(NOW - dt.timedelta(days=i)), "history": list(range(i * 3))} for i in range(100)]
    [finding] = _arrays(docs)  # up to 297 elements, far longer in older documents (age from the ObjectId)
    assert finding.evidence["age_from"] == "_id" and finding.severity is Severity.MEDIUM


def test_documents_near_the_16_mb_limit():
    docs = [{"blob": "x" * (13 * 1024 * 1024)}] + [{"blob": "x"} for _ in range(5)]
    [finding] = _arrays(docs, "files")
    assert finding.title == "Documents of files near the 16 MB limit" and finding.severity is Severity.HIGH


# --- field-type-drift -----------------------------------------------------------------------------

def _drift(docs):
    check = FieldTypeDrift()
    drawn = summarise("app", "payments", docs)
    return check.evaluate(FieldTypeDriftFacts(drifts(info("payments"), drawn.fields, drawn.documents, "x")), mongo_scope(check))


def test_dates_written_as_strings_and_amounts_as_text():
    docs = [{"paidAt": NOW if i % 10 else NOW.isoformat(), "amount": 5 if i % 4 else "5.00", "userId": str(ObjectId()),
             "qty": 1 if i % 2 else 1.5, "note": None if i % 3 else "x"} for i in range(100)]
    findings = {f.evidence["field"]: f for f in _drift(docs)}
    assert set(findings) == {"paidAt", "amount"}  # int/double are one family; null is no type; references elsewhere
    assert findings["paidAt"].evidence["types_in_sample"] == {"date": 90, "string": 10}
    assert findings["amount"].severity is Severity.MEDIUM and "number 75 (75%), string 25 (25%)" in findings["amount"].message


def test_consistent_types_are_fine():
    assert _drift([{"paidAt": NOW, "amount": i, "price": 1.5 if i % 2 else 2} for i in range(50)]) == []


def test_a_type_found_only_past_the_sample_is_drift():
    check = FieldTypeDrift()
    drawn = summarise("app", "payments", [{"amount": i} for i in range(200)])
    facts = FieldTypeDriftFacts(drifts(info("payments", count=3000), drawn.fields, drawn.documents, "x", {"amount": {"string": 4}}))
    [finding] = check.evaluate(facts, mongo_scope(check))
    assert finding.title == "payments.amount holds number and string" and finding.severity is Severity.MEDIUM
    assert finding.evidence["types_found_past_the_sample"] == {"string": 4}
    assert "found string in 4 documents the sample missed" in finding.message
    # a minimum share the few found past the sample do not reach: left out
    minimum = mongo_scope(check, checks={"mongodb.field-type-drift": {"min_share": 0.01}})
    assert check.evaluate(facts, minimum) == []


# --- dynamic-keys ---------------------------------------------------------------------------------

def test_a_map_is_reported_and_a_wildcard_index_noted():
    docs = [{"assignments": {f"AG{(i * 7 + k) % 120}": {"role": "agent"} for k in range(2)}, "profile": {"a": 1, "b": 2}}
            for i in range(200)]
    drawn = summarise("app", "cases", docs)
    check = DynamicKeyMaps()
    coll = info("cases")
    [finding] = check.evaluate(DynamicKeysFacts([MapField(coll, k, 200, "x", None) for k in dynamic_objects(drawn).values()]),
                               mongo_scope(check))
    assert finding.object == "app.cases.assignments" and finding.severity is Severity.MEDIUM  # 120 distinct keys
    assert finding.evidence["distinct_keys_in_sample"] == 120 and finding.evidence["keys_per_document"] == 2
    assert '{"assignments.$**": 1}' in finding.message
    indexed = info("cases", ("assignments.$**_1", {"assignments.$**": 1}))
    assert wildcard_for(indexed, "assignments") == "assignments.$**_1"


# --- schema-validation ----------------------------------------------------------------------------

SCHEMA = {"$jsonSchema": {"bsonType": "object", "required": ["email"]}}


@pytest.mark.parametrize(
    "validation, titles",
    [
        (Validation("app", "users", SCHEMA, "warn", "strict", 200, 12), ["Validator of users only warns"]),
        (Validation("app", "users", SCHEMA, "error", "moderate", 200, 3), ["Documents of users violate its validator"]),
        (Validation("app", "users", SCHEMA, "error", "strict", 200, 0), []),
        (Validation("app", "events", None, "error", "strict"), ["1 collection of app accept any document"]),
    ],
)
def test_schema_validation(validation, titles):
    check = SchemaValidation()
    findings = check.evaluate(SchemaValidationFacts([validation]), mongo_scope(check))
    assert [f.title for f in findings] == titles


def test_warn_only_fix_is_manual_and_reversible():
    check = SchemaValidation()
    [finding] = check.evaluate(SchemaValidationFacts([Validation("app", "users", SCHEMA, "warn", "strict", 200, 12)]),
                               mongo_scope(check))
    assert finding.severity is Severity.MEDIUM and finding.evidence["violating_in_sample"] == 12
    assert finding.fix.safety is FixSafety.MANUAL
    assert finding.fix.steps[0].command == {"collMod": "users", "validationAction": "error"}
    assert finding.fix.inverse[0].command == {"collMod": "users", "validationAction": "warn"}


def test_no_validator_is_only_a_note_unless_required():
    check = SchemaValidation()
    facts = SchemaValidationFacts([Validation("app", "events", None, "error", "strict")])
    assert check.evaluate(facts, mongo_scope(check))[0].severity is Severity.INFO
    strict = mongo_scope(check, checks={"mongodb.schema-validation": {"require_validator": True}})
    assert check.evaluate(facts, strict)[0].severity is Severity.LOW


# --- transactions-unused --------------------------------------------------------------------------

# serverStatus.transactions on a replica set member (MongoDB manual, serverStatus output).
MONGOD_TRANSACTIONS = {"retriedCommandsCount": 0, "retriedStatementsCount": 0, "transactionsCollectionWriteCount": 0,
                       "currentActive": 0, "currentInactive": 0, "currentOpen": 0, "totalAborted": 0,
                       "totalCommitted": 0, "totalStarted": 0, "totalPrepared": 0}


@pytest.mark.parametrize(
    "uses, facts, expected",
    [
        (True, TransactionsFacts("primary of rs0", MONGOD_TRANSACTIONS, 86400.0), Severity.MEDIUM),
        (True, TransactionsFacts("primary of rs0", {**MONGOD_TRANSACTIONS, "totalStarted": 412}, 86400.0), None),
        (True, TransactionsFacts("primary of rs0", MONGOD_TRANSACTIONS, 600.0), Severity.INFO),  # just started
        (True, TransactionsFacts("primary of rs0", None, 86400.0), Severity.INFO),  # not reported: unknown
        (False, TransactionsFacts("primary of rs0", MONGOD_TRANSACTIONS, 86400.0), None),  # not declared
        (True, TransactionsFacts("standalone", None, None), None),  # transactions-unsupported's case
    ],
)
def test_transactions_declared_but_unused(uses, facts, expected):
    check = TransactionsUnused()
    findings = check.evaluate(facts, mongo_scope(check, uses_transactions=uses))
    assert [f.severity for f in findings] == ([expected] if expected else [])
