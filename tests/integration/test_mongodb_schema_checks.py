"""The schema checks against a real server: each seeded problem found with its evidence, each
healthy twin left alone. SecantusDB reports no serverStatus.transactions: said as unknown."""

from __future__ import annotations

import datetime as dt

from bson import ObjectId

from checks.model import Severity
from tests import support

SCHEMA_CHECKS = ["mongodb.unbounded-array", "mongodb.field-type-drift", "mongodb.dynamic-keys", "mongodb.schema-validation",
                 "mongodb.transactions-unused", "mongodb.redundant-index"]


def test_schema_problems_are_found_and_healthy_collections_left_alone(mongo_db, loaded_machine_budget):
    db = mongo_db.db
    now = dt.datetime.now(dt.timezone.utc)
    db.posts.insert_many({"createdAt": now - dt.timedelta(days=i), "likes": [ObjectId() for _ in range(i * 12)],
                          "tags": ["a", "b"][: i % 3]} for i in range(120))
    db.payments.insert_many({"paidAt": now if i % 5 else now.isoformat(), "amount": 5 + i} for i in range(200))
    db.cases.insert_many({"assignments": {f"AG{(i * 7 + k) % 60}": {"role": "agent"} for k in range(2)},
                          "profile": {"a": 1, "b": 2}} for i in range(200))
    schema = {"$jsonSchema": {"bsonType": "object", "required": ["email"]}}
    db.create_collection("members", validator=schema, validationAction="warn")
    db.members.insert_many([{"email": "a@x"}, {"name": "no email"}, {"email": "b@x"}])
    db.create_collection("accounts", validator=schema)
    db.accounts.insert_many([{"email": f"{i}@x"} for i in range(20)])
    db.sessions.insert_many({"createdAt": now - dt.timedelta(minutes=i)} for i in range(50))
    db.sessions.create_index([("createdAt", 1)], expireAfterSeconds=86400)
    db.sessions.create_index([("createdAt", -1)])

    settings = support.settings_for(app={"kind": "mongodb", "url": mongo_db.url, "uses_transactions": True,
                                         "check_timeout": 120})
    report = support.run_report(settings, checks=SCHEMA_CHECKS)
    assert report.errors == []
    found = {(f.check, f.object.removeprefix(mongo_db.name + ".")): f for f in report.findings}

    likes = found[("mongodb.unbounded-array", "posts.likes")]
    assert likes.evidence["max_elements"] >= 1000 and likes.evidence["older_half_mean"] > likes.evidence["newer_half_mean"]
    drift = found[("mongodb.field-type-drift", "payments.paidAt")]
    assert set(drift.evidence["types_in_sample"]) == {"date", "string"}
    assignments = found[("mongodb.dynamic-keys", "cases.assignments")]
    assert assignments.evidence["distinct_keys_in_sample"] == 60
    warn = found[("mongodb.schema-validation", "members")]
    assert warn.title == "Validator of members only warns" and warn.evidence["violating_in_sample"] == 1
    no_validator = found[("mongodb.schema-validation", mongo_db.name)]
    assert no_validator.severity is Severity.INFO
    assert set(no_validator.evidence["collections_without_validator"]) == {"posts", "payments", "cases", "sessions"}
    reversed_twin = found[("mongodb.redundant-index", "sessions.createdAt_-1")]
    assert reversed_twin.evidence["covering"]["name"] == "createdAt_1" and "is the reverse of" in reversed_twin.message
    unused = found[("mongodb.transactions-unused", "transactions")]
    if not support.MONGO_URI:  # SecantusDB keeps no transaction counters: unknown, never "unused"
        assert unused.severity is Severity.INFO and "no transactions section" in unused.message

    # the healthy twins: bounded tags, consistent amounts, a sub-document, a validator that holds
    assert set(found) == {
        ("mongodb.unbounded-array", "posts.likes"), ("mongodb.field-type-drift", "payments.paidAt"),
        ("mongodb.dynamic-keys", "cases.assignments"), ("mongodb.schema-validation", "members"),
        ("mongodb.schema-validation", mongo_db.name), ("mongodb.redundant-index", "sessions.createdAt_-1"),
        ("mongodb.transactions-unused", "transactions"),
    }
