"""mongodb.reference-type-mismatch against a real server: a reference no collection's name
implies (gem_transactions.referenceId) holding ObjectIds written as strings is found where its
values exist as ObjectId _ids; a healthy twin holding real ObjectIds is left alone."""

from __future__ import annotations

from bson import ObjectId

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
