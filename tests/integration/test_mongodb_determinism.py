"""The same answer twice: the whole MongoDB pack run twice over unchanged data gives identical
findings, on a fixture shaped like the audits' (a device-heavy tail among 3,000 users, amounts
of mixed types, a few string amounts among 3,000 payments, posts referenced by votes). Rare
outliers are found by the outlier queries, not by luck of a random sample."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from bson import ObjectId

from checks.mongodb import ttl_coverage
from checks.mongodb._inventory import WHOLE_LIMIT, Sample
from tests import support

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)
HEAVY_USERS = 20


def seed_social_app(db: Any) -> None:
    users = [ObjectId() for _ in range(3000)]
    db.users.insert_many(
        {"_id": uid, "email": f"u{i}@example.com", "createdAt": NOW - dt.timedelta(days=i % 400),
         "devices": [f"device-{i}-{k}" for k in range(1500 if i % 150 == 7 else 1 + i % 3)]}
        for i, uid in enumerate(users)
    )
    db.users.create_index("email", unique=True)
    db.transactions.insert_many(
        {"userId": users[i], "amount": str(10 + i) if i % 25 == 3 else 10 + i, "createdAt": NOW - dt.timedelta(hours=i)}
        for i in range(1000)
    )
    # An import wrote a few amounts as strings: rare, and clustered, as imports are.
    db.payments.insert_many({"payerId": users[i], "amount": str(5 + i) if 1200 <= i < 1204 else 5 + i, "paidAt": NOW - dt.timedelta(hours=i)}
                            for i in range(3000))
    posts = [ObjectId() for _ in range(400)]
    db.posts.insert_many({"_id": pid, "userId": users[i], "text": f"post {i}", "createdAt": NOW - dt.timedelta(days=i)}
                         for i, pid in enumerate(posts))
    db.votes.insert_many({"postId": posts[i % 400], "userId": users[i], "value": 1, "createdAt": NOW - dt.timedelta(days=i % 90)}
                         for i in range(1200))


# The server's own counters (connections open, created since start) move between runs by
# themselves: they are live figures, not the data judged.
LIVE_COUNTERS = {"connections", "created_per_s_since_start"}


def comparable(report: Any) -> list[str]:
    return sorted(
        json.dumps([f.id, f.check, f.severity.value, f.object, f.title, f.message,
                    {k: v for k, v in f.evidence.items() if k not in LIVE_COUNTERS}], default=str, sort_keys=True)
        for f in report.findings
    )


def test_two_runs_over_unchanged_data_give_identical_findings(mongo_db, loaded_machine_budget):
    seed_social_app(mongo_db.db)
    assert mongo_db.db.users.count_documents({}) > WHOLE_LIMIT  # sampled: the device-heavy tail is rare in it
    settings = support.settings_for(app={"kind": "mongodb", "url": mongo_db.url, "check_timeout": 120})

    first = support.run_report(settings)
    second = support.run_report(settings)

    assert first.errors == [] and first.partial() == [], (first.errors, first.partial())
    assert comparable(first) == comparable(second)
    found = {(f.check, f.object.removeprefix(mongo_db.name + ".")): f for f in first.findings}
    devices = found[("mongodb.unbounded-array", "users.devices")]
    assert devices.evidence["documents_at_max_elements"] == HEAVY_USERS
    assert devices.evidence["longest_in_collection"][:HEAVY_USERS] == [1500] * HEAVY_USERS
    amount = found[("mongodb.field-type-drift", "transactions.amount")]
    assert amount.evidence["types_in_sample"] == {"number": 960, "string": 40}
    # the sampled payments: the four strings are found whether or not the sample drew them
    rare = found[("mongodb.field-type-drift", "payments.amount")]
    assert rare.title == "payments.amount holds number and string"
    assert (rare.evidence["types_in_sample"].get("string", 0) > 0
            or rare.evidence["types_found_past_the_sample"] == {"string": 4})


def test_a_reference_that_could_not_be_read_leaves_the_ttl_judgement_unknown(mongo_db, loaded_machine_budget,
                                                                              monkeypatch):
    """votes references posts; when votes cannot be read within its budget, posts is not
    "insert-only, never referenced": its judgement is unknown, and the check is partial."""
    seed_social_app(mongo_db.db)
    real_sample = ttl_coverage.sample

    async def votes_over_budget(session: Any, info: Any, size: int, budget: float) -> Sample:
        if info.name == "votes":
            return Sample(info.database, info.name, 0, {}, unknown=f"not sampled: a seeded sample did not answer within {budget:g}s")
        return await real_sample(session, info, size, budget)

    monkeypatch.setattr(ttl_coverage, "sample", votes_over_budget)
    settings = support.settings_for(app={"kind": "mongodb", "url": mongo_db.url, "check_timeout": 120})
    report = support.run_report(settings, checks=["mongodb.ttl-coverage"])

    assert report.errors == []
    posts = [f for f in report.findings if f.object == f"{mongo_db.name}.posts"]
    assert [f.title for f in posts] == ["Growth of posts not assessed"]
    assert "votes was not read" in posts[0].evidence["reason"]
    [row] = report.partial()
    assert any(s["what"] == f"collection {mongo_db.name}.posts" for s in row["skipped"])
