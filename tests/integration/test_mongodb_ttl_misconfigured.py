"""mongodb.ttl-misconfigured against a real server: a dormant TTL on users questioned (never
armed), jobs without the TTL field, a partial filter that selects nothing, a TTL that lets a
unique vote repeat, and a healthy TTL left alone."""

from __future__ import annotations

import datetime as dt

from bson import ObjectId

from checks.model import FixSafety, Severity
from tests import support


def test_ttl_indexes_that_delete_nothing_or_what_must_stay(mongo_db, loaded_machine_budget):
    db = mongo_db.db
    now = dt.datetime.now(dt.timezone.utc)
    users = [ObjectId() for _ in range(100)]
    db.users.insert_many({"_id": u, "email": f"u{i}@x.test", "lastActiveDate": (now - dt.timedelta(days=i * 2)).isoformat()}
                         for i, u in enumerate(users))
    db.users.create_index([("lastActiveDate", 1)], expireAfterSeconds=90 * 86400)
    db.posts.insert_many({"userId": users[i % 100], "title": "t", "body": "b"} for i in range(100))
    db.generation_jobs.insert_many(
        {"status": "done" if i % 3 else "pending", "createdAt": now - dt.timedelta(days=i % 40, hours=12),
         **({"completedAt": now - dt.timedelta(days=i % 40)} if i % 3 else {})} for i in range(300))
    db.generation_jobs.create_index([("completedAt", 1)], expireAfterSeconds=7 * 86400)
    db.flags.insert_many({"status": "Resolved", "reason": "spam", "updatedAt": now - dt.timedelta(days=i)} for i in range(50))
    db.flags.create_index([("updatedAt", 1)], expireAfterSeconds=86400, partialFilterExpression={"status": "resolved"})
    db.votes.insert_many({"userId": users[i % 100], "postId": ObjectId(), "createdAt": now - dt.timedelta(days=i % 20)}
                         for i in range(200))
    db.votes.create_index([("userId", 1), ("postId", 1)], unique=True)
    db.votes.create_index([("createdAt", 1)], expireAfterSeconds=30 * 86400)
    db.sessions.insert_many({"userId": users[i], "expiresAt": now + dt.timedelta(hours=i)} for i in range(100))
    db.sessions.create_index([("expiresAt", 1)], expireAfterSeconds=0)

    settings = support.settings_for(app={"kind": "mongodb", "url": mongo_db.url, "check_timeout": 120})
    report = support.run_report(settings, checks=["mongodb.ttl-misconfigured"])
    assert report.errors == []
    by = {}
    for f in report.findings:
        by.setdefault(f.object.split(".", 1)[1], []).append(f)
    assert set(by) == {"users", "generation_jobs", "flags", "votes"}  # sessions are fine

    [users_ttl] = by["users"]
    assert users_ttl.severity is Severity.HIGH and "judged entity" in users_ttl.title
    assert "referenced by posts.userId" in users_ttl.evidence["classification"]
    assert users_ttl.fix.safety is FixSafety.MANUAL and "update" not in users_ttl.fix.steps[0].command
    assert users_ttl.evidence["deleted_once_converted_estimate"] > 0  # users inactive for more than 90 days

    [jobs] = by["generation_jobs"]
    assert jobs.title == "Documents of generation_jobs without completedAt never expire"
    # 200 of 300 jobs sampled: a third lack completedAt, most of them pending for over 7 days
    assert 0 < jobs.evidence["sampled_missing_and_older_than_ttl"] <= jobs.evidence["sampled_missing_field"] < 200

    [flags] = by["flags"]
    assert "selects no document" in flags.title

    assert any("lets the unique key userId_1_postId_1 repeat" in f.title for f in by["votes"])


def test_existing_ttls_are_judged_on_all_the_evidence_not_on_a_guess(mongo_db, loaded_machine_budget):
    """No declaration anywhere. Webhook deliveries expiring after 7 days (nobody references them):
    no finding. Invites whose partial TTL filter {status: "expired"} matches no document, and
    generation jobs (one money-named field) whose failed jobs never get completedAt: the real
    defects, found, where "entity/ledger, drop the TTL" was said before."""
    db = mongo_db.db
    now = dt.datetime.now(dt.timezone.utc)
    db.webhook_deliveries.insert_many(
        {"eventId": ObjectId(), "endpointId": ObjectId(), "status": ("delivered", "failed")[i % 2], "attempts": 1 + i % 3,
         "createdAt": now - dt.timedelta(hours=i)} for i in range(300))
    db.webhook_deliveries.create_index([("eventId", 1), ("endpointId", 1)], unique=True)
    db.webhook_deliveries.create_index([("createdAt", 1)], expireAfterSeconds=7 * 86400)
    db.invites.insert_many(
        {"email": f"friend{i}@example.test", "status": ("pending", "accepted", "revoked")[i % 3],
         "expiresAt": now - dt.timedelta(days=i % 60)} for i in range(150))
    db.invites.create_index([("email", 1)], unique=True)
    db.invites.create_index([("expiresAt", 1)], expireAfterSeconds=0, partialFilterExpression={"status": "expired"})
    db.generation_jobs.insert_many(
        {"status": ("completed", "failed")[i % 2], "computeCostUsd": 0.25, "createdAt": now - dt.timedelta(days=i % 60, hours=12),
         **({"completedAt": now - dt.timedelta(days=i % 60)} if i % 2 == 0 else {})} for i in range(200))
    db.generation_jobs.create_index([("completedAt", 1)], expireAfterSeconds=7 * 86400)

    settings = support.settings_for(app={"kind": "mongodb", "url": mongo_db.url, "check_timeout": 120})
    report = support.run_report(settings, checks=["mongodb.ttl-misconfigured"])
    assert report.errors == [] and report.partial() == []
    by = {f.object.split(".", 1)[1]: f for f in report.findings}
    assert set(by) == {"invites", "generation_jobs"}  # the deliveries' TTL is left alone
    assert by["invites"].title == "TTL index expiresAt_1: its partial filter selects no document"
    assert by["invites"].evidence["sampled_selected"] == 0
    jobs = by["generation_jobs"]
    assert jobs.title == "Documents of generation_jobs without completedAt never expire"
    assert jobs.evidence["sampled_missing_field"] == 100  # every failed job: read whole, so exact
    assert jobs.evidence["weighed_evidence"]["money fields"].startswith("keep: computeCostUsd: money-named, but one field")
    assert "judged" not in " ".join(f.title for f in report.findings)


def test_a_sampled_collection_s_partial_filter_is_called_empty_only_when_the_server_agrees(mongo_db, loaded_machine_budget):
    """Past 2,000 documents the sample decides nothing alone: the server is asked for one
    document the filter matches. Three expired invites among 2,500 keep their TTL from being
    called empty; a filter no document matches is."""
    db = mongo_db.db
    now = dt.datetime.now(dt.timezone.utc)
    for name, expired in (("invites", range(1700, 1703)), ("referrals", range(0))):
        db[name].insert_many({"code": f"c{i}", "status": "expired" if i in expired else ("pending", "accepted")[i % 2],
                              "expiresAt": now - dt.timedelta(hours=i)} for i in range(2500))
        db[name].create_index([("expiresAt", 1)], expireAfterSeconds=0, partialFilterExpression={"status": "expired"})
    settings = support.settings_for(app={"kind": "mongodb", "url": mongo_db.url, "check_timeout": 120})
    report = support.run_report(settings, checks=["mongodb.ttl-misconfigured"])
    assert report.errors == [] and report.partial() == []
    [empty] = report.findings
    assert empty.object == f"{mongo_db.name}.referrals"
    assert empty.title == "TTL index expiresAt_1: its partial filter selects no document"
    assert empty.evidence["documents_matching_the_filter"] == 0 and empty.evidence["documents"] == 2500
