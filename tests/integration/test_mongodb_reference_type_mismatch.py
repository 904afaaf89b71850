"""mongodb.reference-type-mismatch against a real server: a reference no collection's name
implies (gem_transactions.referenceId) holding ObjectIds written as strings is found where its
values exist as ObjectId _ids; a healthy twin holding real ObjectIds is left alone."""

from __future__ import annotations

from typing import Any

from bson import ObjectId

from checks.mongodb import reference_type_mismatch
from checks.mongodb._inventory import Sample
from tests import support

CHECK = ["mongodb.reference-type-mismatch"]


def test_reference_id_holding_object_ids_as_strings_is_found_by_its_values(mongo_db, loaded_machine_budget):
    db = mongo_db.db
    purchases = [ObjectId() for _ in range(150)]
    db.gem_purchases.insert_many({"_id": pid, "gems": 100} for pid in purchases)
    db.gem_transactions.insert_many(
        {"referenceId": str(purchases[i % 150]), "referenceType": "purchase", "gems": 100} for i in range(400)
    )
    db.gem_refunds.insert_many({"referenceId": purchases[i % 150], "gems": -100} for i in range(50))  # the healthy twin
    db.audit_lines.insert_many({"externalId": f"ext-{i}"} for i in range(50))  # not an ObjectId: nothing to look up
    settings = support.settings_for(app={"kind": "mongodb", "url": mongo_db.url, "check_timeout": 120})
    report = support.run_report(settings, checks=CHECK)

    assert report.errors == [] and report.partial() == []
    [finding] = report.findings
    assert finding.object == f"{mongo_db.name}.gem_transactions.referenceId"
    assert finding.evidence["references"] == "gem_purchases._id"
    assert finding.evidence["how_known"] == "its values found as ObjectId _ids of gem_purchases (10 of 10 sampled ids)"
    assert finding.evidence["type_histogram"] == {"string": 400}
    assert finding.evidence["sample_ids_found_as_objectid"] == "5 of 5"
    assert finding.evidence["sample_ids_found_as_stored"] == "0 of 5"
    assert finding.fix.steps[0].command["updates"][0]["u"] == [{"$set": {"referenceId": {"$toObjectId": "$referenceId"}}}]


def test_a_collection_that_could_not_be_read_makes_the_check_partial(mongo_db, loaded_machine_budget, monkeypatch):
    db = mongo_db.db
    users = [ObjectId() for _ in range(50)]
    db.users.insert_many({"_id": u} for u in users)
    db.flags.insert_many({"userId": str(users[i % 50])} for i in range(100))
    real_sample = reference_type_mismatch.sample

    async def flags_over_budget(session: Any, info: Any, size: int, budget: float) -> Sample:
        if info.name == "flags":
            return Sample(info.database, info.name, 0, {}, unknown=f"not sampled: a seeded sample did not answer within {budget:g}s")
        return await real_sample(session, info, size, budget)

    monkeypatch.setattr(reference_type_mismatch, "sample", flags_over_budget)
    report = support.run_report(support.settings_for(app={"kind": "mongodb", "url": mongo_db.url, "check_timeout": 120}),
                                checks=CHECK)
    assert report.errors == []
    [finding] = report.findings
    assert finding.title == "References in flags not checked"
    [row] = report.partial()
    assert row["skipped"] == [{"what": f"collection {mongo_db.name}.flags",
                               "why": "not sampled: a seeded sample did not answer within 5s"}]
