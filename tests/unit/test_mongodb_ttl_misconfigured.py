"""mongodb.ttl-misconfigured, pure: TTL indexes that delete nothing (strings, compound keys,
partial filters selecting nothing, documents lacking the field), that disagree with the rule,
that sit on an entity, or that let a unique key repeat. Facts as a real mongod returns them."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
from bson import ObjectId

from checks.model import FixSafety, Severity
from checks.mongodb._inventory import FieldSample, summarise
from checks.mongodb._lifecycle import classify
from checks.mongodb._ttl import Expiring
from checks.mongodb.ttl_misconfigured import TtlIndex, TtlMisconfigured, TtlMisconfiguredFacts, field_coverage
from tests import support

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)


def scope_for(check, *, expect=None):
    return support.mongo_scope(check, expect=expect or {})


index = support.mongo_index
info = support.mongo_collection


# --- ttl-misconfigured ----------------------------------------------------------------------------

def _ttl(idx, types, rule=None, expiring=None, sampled=200):
    coll = info("sessions", idx, count=1000)
    field = FieldSample(types, examples=("2024-05-01T10:00:00",)) if types is not None else None
    return TtlIndex(coll, idx, sampled, field, "at" if len(idx.key) > 1 else None, rule, expiring, after_conversion=640)


def _rule(after):
    scope = scope_for(TtlMisconfigured(), expect={"ttl": [{"collection": "sessions", "field": "at", "after": after}]})
    return scope, scope.config.expect.ttl[0]


@pytest.mark.parametrize(
    "ttl, titles",
    [
        (_ttl(index("at_1", {"at": 1}, expireAfterSeconds=3600), {"date": 200}), []),
        (_ttl(index("at_1", {"at": 1}, expireAfterSeconds=3600), {"date": 150, "array": 50}), []),
        (_ttl(index("at_1", {"at": 1}, expireAfterSeconds=3600), {"string": 200}), ["holds string"]),
        (_ttl(index("at_1", {"at": 1}, expireAfterSeconds=3600), {"date": 180, "long": 20}), ["holds long"]),
        (_ttl(index("at_1", {"at": 1}, expireAfterSeconds=3600), None), ["absent"]),
        (_ttl(index("at_1", {"at": 1}, expireAfterSeconds=3600, partialFilterExpression={"x": 1}), None), []),
        (_ttl(index("u_1_at_1", {"u": 1, "at": 1}, expireAfterSeconds=3600), {"date": 200}), ["compound"]),
        (_ttl(index("at_1", {"at": 1}, expireAfterSeconds=float("nan")), {"date": 200}), ["invalid"]),
        (_ttl(index("at_1", {"at": 1}, expireAfterSeconds=3600), {"string": 200}, sampled=0), []),  # empty: unknown
    ],
)
def test_ttl_indexes(ttl, titles):
    check = TtlMisconfigured()
    findings = check.evaluate(TtlMisconfiguredFacts([ttl]), scope_for(check))
    assert len(findings) == len(titles)
    for finding, words in zip(findings, titles):
        assert words in finding.title


def test_ttl_on_strings_fix_is_a_manual_conversion_that_warns():
    check = TtlMisconfigured()
    [finding] = check.evaluate(TtlMisconfiguredFacts([_ttl(index("at_1", {"at": 1}, expireAfterSeconds=3600), {"string": 200})]), scope_for(check))
    assert finding.severity is Severity.HIGH
    assert finding.fix.safety is FixSafety.MANUAL
    assert finding.fix.steps[0].command == {"update": "sessions", "updates": [
        {"q": {"at": {"$type": "string"}}, "u": [{"$set": {"at": {"$toDate": "$at"}}}], "multi": True}]}
    assert "about 640 documents" in finding.fix.notes


@pytest.mark.parametrize("after, safety", [("30m", FixSafety.UNSAFE), ("2h", FixSafety.SAFE)])
def test_ttl_disagreeing_with_rule_is_fixed_by_collmod(after, safety):
    scope, rule = _rule(after)
    expiring = Expiring(75, True, "older than 30m, counted") if safety is FixSafety.UNSAFE else None
    ttl = _ttl(index("at_1", {"at": 1}, expireAfterSeconds=3600), {"date": 200}, rule=rule, expiring=expiring)
    [finding] = TtlMisconfigured().evaluate(TtlMisconfiguredFacts([ttl]), scope)
    assert finding.fix.safety is safety
    assert finding.fix.steps[0].command["collMod"] == "sessions"
    assert finding.fix.inverse[0].command["index"]["expireAfterSeconds"] == 3600
    if safety is FixSafety.UNSAFE:
        assert "75 documents" in finding.fix.notes



def _judged(name, idx, docs, *others, referenced=(), expiring=None, after_conversion=None):
    """A TtlIndex built from documents the way gather builds it."""
    coll = info(name, idx, *others, count=len(docs))
    drawn = summarise("app", name, docs)
    seconds = idx.options["expireAfterSeconds"]
    date_field = next((f for f in idx.fields if drawn.fields.get(f) and drawn.fields[f].share("date") > 0), None)
    coverage = field_coverage(drawn, idx, seconds, NOW)
    return TtlIndex(coll, idx, drawn.documents, drawn.fields.get(idx.fields[0]), date_field, None, expiring, after_conversion,
                    coverage=coverage, classification=classify(coll, drawn, list(referenced), False),
                    filter_matches=coverage.selected != 0 if "partialFilterExpression" in idx.options else None)


def _evaluate(ttl):
    check = TtlMisconfigured()
    return check.evaluate(TtlMisconfiguredFacts([ttl]), scope_for(check))


def _jobs(pending_days):
    """generation_jobs: finished ones carry completedAt; pending ones do not."""
    return [{"_id": ObjectId(), "status": "done" if i % 3 else "pending", "createdAt": NOW - dt.timedelta(days=i % 40 + 0.5),
             **({"completedAt": NOW - dt.timedelta(days=i % 40)} if i % 3 else {})}
            for i in range(300) if i % 3 or i % 40 < pending_days]


def test_jobs_that_never_get_the_ttl_field_never_expire():
    jobs = _jobs(40)
    [finding] = _evaluate(_judged("generation_jobs", index("completedAt_1", {"completedAt": 1}, expireAfterSeconds=7 * 86400), jobs))
    assert finding.title == "Documents of generation_jobs without completedAt never expire"
    assert finding.evidence["sampled_missing_field"] == 100
    stale = sum(1 for j in jobs if "completedAt" not in j and j["createdAt"] < NOW - dt.timedelta(days=7))
    assert finding.evidence["sampled_missing_and_older_than_ttl"] == stale == 81  # pending for more than 7 days
    assert finding.evidence["creation_time_from"] == "createdAt"


def test_jobs_missing_the_field_only_while_in_flight_are_fine():
    assert _evaluate(_judged("generation_jobs", index("completedAt_1", {"completedAt": 1}, expireAfterSeconds=7 * 86400), _jobs(5))) == []


def test_a_partial_filter_that_selects_nothing():
    docs = [{"status": "Resolved", "updatedAt": NOW - dt.timedelta(days=i)} for i in range(50)]
    idx = index("updatedAt_1", {"updatedAt": 1}, expireAfterSeconds=86400, partialFilterExpression={"status": "resolved"})
    [finding] = _evaluate(_judged("flags", idx, docs))
    assert "selects no document" in finding.title and finding.evidence["sampled_selected"] == 0
    assert finding.evidence["documents_matching_the_filter"] == 0


def test_a_filter_no_sampled_document_matches_is_not_called_empty_when_others_do():
    docs = [{"status": "Resolved", "updatedAt": NOW - dt.timedelta(days=i)} for i in range(50)]
    idx = index("updatedAt_1", {"updatedAt": 1}, expireAfterSeconds=86400, partialFilterExpression={"status": "resolved"})
    past_the_sample = replace(_judged("flags", idx, docs), filter_matches=True)  # the server found one
    assert _evaluate(past_the_sample) == []
    assert _evaluate(replace(past_the_sample, filter_matches=None)) == []  # not known: no claim


def test_a_partial_filter_whose_documents_lack_the_field_or_hold_strings():
    docs = [{"status": "resolved", "updatedAt": (NOW - dt.timedelta(days=i)).isoformat() if i % 2 else None,
             "createdAt": NOW - dt.timedelta(days=i + 30)} for i in range(50)]
    docs += [{"status": "open", "createdAt": NOW} for _ in range(50)]
    idx = index("updatedAt_1", {"updatedAt": 1}, expireAfterSeconds=86400, partialFilterExpression={"status": "resolved"})
    titles = [f.title for f in _evaluate(_judged("flags", idx, docs))]
    assert titles == ["Documents of flags without updatedAt never expire",
                      "TTL index updatedAt_1: selected documents hold updatedAt as a non-date"]


def test_a_healthy_partial_ttl_has_no_finding():
    docs = [{"status": "resolved" if i % 2 else "open", "updatedAt": NOW - dt.timedelta(days=i)} for i in range(50)]
    idx = index("updatedAt_1", {"updatedAt": 1}, expireAfterSeconds=86400 * 30, partialFilterExpression={"status": "resolved"})
    assert _evaluate(_judged("flags", idx, docs)) == []


def test_a_dormant_ttl_on_users_is_questioned_never_armed():
    docs = [{"_id": ObjectId(), "email": f"u{i}@x", "lastActiveDate": (NOW - dt.timedelta(days=i)).isoformat()} for i in range(100)]
    idx = index("lastActiveDate_1", {"lastActiveDate": 1}, expireAfterSeconds=90 * 86400)
    [finding] = _evaluate(_judged("users", idx, docs, referenced=["posts.userId"], after_conversion=9))
    assert finding.severity is Severity.HIGH
    assert "judged entity" in finding.title and "referenced by posts.userId" in finding.evidence["classification"]
    assert "converting them would delete about 9 documents" in finding.message
    assert finding.fix.safety is FixSafety.MANUAL
    assert finding.fix.steps[0].command == {"dropIndexes": "users", "index": "lastActiveDate_1"}
    assert not any("update" in step.command for step in finding.fix.steps)  # no conversion that would arm it


def test_a_live_ttl_on_a_ledger_states_what_it_deletes():
    docs = [{"walletId": ObjectId(), "amount": 5, "balance": 100 - i, "createdAt": NOW - dt.timedelta(days=i)} for i in range(100)]
    idx = index("createdAt_1", {"createdAt": 1}, expireAfterSeconds=30 * 86400)
    [finding] = _evaluate(_judged("wallet_history", idx, docs, expiring=Expiring(70, True, "older than 30d, counted")))
    assert "judged ledger" in finding.title and finding.evidence["documents_older_than_ttl"] == 70
    assert finding.evidence["weighed_evidence"]["money fields"] == "keep (strong): amount, balance: a balance is kept in them"


def test_one_money_named_field_does_not_condemn_a_ttl():
    """generation_jobs carry computeCostUsd: not a ledger; the real defect is that failed jobs
    never get completedAt, so they never expire."""
    jobs = [{"status": ("completed", "failed")[i % 2], "computeCostUsd": 0.25, "createdAt": NOW - dt.timedelta(days=i % 60 + 0.5),
             **({"completedAt": NOW - dt.timedelta(days=i % 60)} if i % 2 == 0 else {})} for i in range(120)]
    idx = index("completedAt_1", {"completedAt": 1}, expireAfterSeconds=7 * 86400)
    [finding] = _evaluate(_judged("generation_jobs", idx, jobs))
    assert finding.title == "Documents of generation_jobs without completedAt never expire"
    weighed = finding.evidence["weighed_evidence"]
    assert weighed["money fields"] == "keep: computeCostUsd: money-named, but one field alone does not make a ledger"
    assert weighed["status lifecycle"] == "expire: status takes terminal values completed, failed"
    assert weighed["references"].startswith("neither")


def test_a_ttl_on_deliveries_nobody_references_is_not_questioned_on_a_guess():
    """Webhook deliveries kept 7 days, with an idempotency key: the auditors called it right."""
    docs = [{"eventId": ObjectId(), "endpointId": ObjectId(), "status": ("delivered", "failed")[i % 2], "attempts": 1 + i % 3,
             "createdAt": NOW - dt.timedelta(hours=i)} for i in range(150)]
    idx = index("createdAt_1", {"createdAt": 1}, expireAfterSeconds=7 * 86400)
    unique = index("eventId_1_endpointId_1", {"eventId": 1, "endpointId": 1}, unique=True)
    assert _evaluate(_judged("webhook_deliveries", idx, docs, unique)) == []


def test_a_ttl_beside_a_unique_key_lets_it_repeat():
    docs = [{"userId": ObjectId(), "postId": ObjectId(), "createdAt": NOW - dt.timedelta(days=i)} for i in range(60)]
    idx = index("createdAt_1", {"createdAt": 1}, expireAfterSeconds=30 * 86400)
    unique = index("userId_1_postId_1", {"userId": 1, "postId": 1}, unique=True)
    findings = _evaluate(_judged("votes", idx, docs, unique))
    repeat = next(f for f in findings if "repeat" in f.title)
    assert repeat.evidence["unique_index"]["name"] == "userId_1_postId_1"
    assert "vote twice" in repeat.message


def test_a_unique_key_that_includes_the_time_may_repeat_by_design():
    docs = [{"userId": ObjectId(), "day": NOW - dt.timedelta(days=i), "n": i} for i in range(60)]
    idx = index("day_1", {"day": 1}, expireAfterSeconds=30 * 86400)
    unique = index("userId_1_day_1", {"userId": 1, "day": 1}, unique=True)
    assert not [f for f in _evaluate(_judged("quotas", idx, docs, unique)) if "repeat" in f.title]
