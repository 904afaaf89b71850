"""mongodb.ttl-coverage judged from evidence: each collection classified (entity, ledger, event)
before any TTL is advised, the TTL placed on finished documents and the field marking their
end, and fixes that never collide with an existing index. Pure: samples built from documents."""

from __future__ import annotations

import datetime as dt
import functools

import pytest

from checks.model import FixSafety, Severity
from checks.mongodb._inventory import CollectionInfo, summarise
from checks.mongodb._lifecycle import ENTITY, EVENT, LEDGER, classify, growth, lifecycle, referenced_collections
from checks.mongodb._ttl import Expiring, RuleTarget
from checks.mongodb.ttl_coverage import (
    Growing,
    TtlCoverage,
    TtlCoverageFacts,
    Unassessed,
    UnenforcedRule,
    choose_key,
    plan_ttl,
)
from tests import support
from tests.data import mongodb_audit

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)


def scope_for(check, *, expect=None, checks=None):
    return support.mongo_scope(check, expect=expect or {}, checks=checks or {})


index = support.mongo_index
info = support.mongo_collection


@functools.cache
def audit():
    """Every audit collection: its CollectionInfo, its sample (all of it), and the verdict."""
    data = mongodb_audit.collections(NOW)
    samples = {name: summarise("app", name, docs) for name, (docs, _) in data.items()}
    infos = {
        name: info(name, *(index("_".join(f"{k}_{v}" for k, v in keys), dict(keys), **opts) for keys, opts in indexes),
                   count=len(docs), size=len(docs) * 300)
        for name, (docs, indexes) in data.items()
    }
    refs = referenced_collections(list(samples.values()), {"app": list(data)}, [])
    verdicts = {name: classify(infos[name], samples[name], refs.get(("app", name), []), False) for name in data}
    return infos, samples, verdicts


def test_audit_collections_are_classified_from_evidence_not_names():
    _, _, verdicts = audit()
    assert {n for n, v in verdicts.items() if v.kind == EVENT} == set(mongodb_audit.NEEDS_TTL)
    kinds = {n: v.kind for n, v in verdicts.items()}
    for ledger in ("transactions", "wallet_history", "gem_transactions", "orders", "wallets"):
        assert kinds[ledger] == LEDGER, verdicts[ledger]
    for entity in ("users", "posts", "votes", "follows"):
        assert kinds[entity] == ENTITY, verdicts[entity]
    assert "referenced by" in verdicts["users"].describe() and "unique key {email: 1}" in verdicts["users"].describe()
    assert "referenced by moderation_flags.postId, votes.postId" in verdicts["posts"].describe()
    assert "a relationship" in verdicts["follows"].describe()
    assert "money-like fields: gems" in verdicts["gem_transactions"].describe()


@pytest.mark.parametrize("name", sorted(mongodb_audit.NEEDS_TTL))
def test_each_event_collection_gets_a_safe_field_and_filter(name):
    _, samples, verdicts = audit()
    plan = plan_ttl(samples[name], verdicts[name], 365 * 86400)
    assert (plan.field, plan.filter) == mongodb_audit.NEEDS_TTL[name]
    assert plan.seconds == 365 * 86400 and "conservative default" in plan.retention_basis


def test_resolved_flags_expire_on_updated_at_and_open_ones_stay():
    _, samples, _ = audit()
    cycle = lifecycle(samples["moderation_flags"])
    assert cycle.terminal == ("dismissed", "resolved")
    assert cycle.end_field == "updatedAt" and "last change" in cycle.end_basis
    assert cycle.values == {"open": 200, "resolved": 200, "dismissed": 200}


def test_an_expiry_field_with_no_status_expires_at_the_moment_it_holds():
    docs = [{"token": str(i), "expiresAt": NOW + dt.timedelta(hours=i)} for i in range(50)]
    drawn = summarise("app", "tokens", docs)
    verdict = classify(info("tokens"), drawn, [], False)
    plan = plan_ttl(drawn, verdict, 365 * 86400)
    assert verdict.kind == EVENT and (plan.field, plan.filter, plan.seconds) == ("expiresAt", None, 0)


def test_keep_forever_wins_over_any_evidence():
    _, samples, _ = audit()
    verdict = classify(info("gamerounds"), samples["gamerounds"], [], True)
    assert verdict.kind == "kept" and verdict.reasons == ("listed in keep_forever",)


def test_growth_is_read_from_the_time_histogram():
    _, samples, _ = audit()
    rounds = growth(samples["gamerounds"], "startedAt", 6000, NOW)
    assert rounds.per_day == pytest.approx(15, abs=0.5)  # about 450 of 6,000 in the last 30 days
    assert rounds.span_days == pytest.approx(400, abs=1)


@pytest.mark.parametrize(
    "indexes, filter_, expected",
    [
        ((), None, ("create", None, 1)),
        ((index("expiresAt_1", {"expiresAt": 1}),), None, ("collmod", "expiresAt_1", 1)),
        ((index("expiresAt_1", {"expiresAt": 1}),), {"status": "expired"}, ("create", None, -1)),
        ((index("expiresAt_1", {"expiresAt": 1}, unique=True),), None, ("create", None, -1)),
        ((index("a", {"expiresAt": 1}), index("b", {"expiresAt": -1})), {"s": 1}, ("taken", "a", 1)),
    ],
)
def test_choose_key_never_collides_with_an_index_of_the_same_key(indexes, filter_, expected):
    how, existing, direction = choose_key(info("invites", *indexes), "expiresAt", filter_)
    assert (how, existing.name if existing else None, direction) == expected


_EXPIRING = Expiring(531, True, "older than 365d, counted")


def _growing(name, *, count=None, size=None, expiring=_EXPIRING):
    infos, samples, verdicts = audit()
    plan = plan_ttl(samples[name], verdicts[name], 365 * 86400)
    coll = infos[name]
    coll = CollectionInfo("app", name, count or coll.count, size or coll.size, coll.storage_size, coll.indexes)
    oldest = samples[name].fields[plan.field].oldest
    return Growing(coll, samples[name], verdicts[name], plan.field, plan.filter, plan.seconds, plan.retention_basis,
                   growth(samples[name], "startedAt" if name == "gamerounds" else plan.field, coll.count, NOW),
                   oldest, False, None, expiring, plan.exempt)


def test_a_small_growing_collection_is_reported_with_severity_from_growth():
    check = TtlCoverage()
    [finding] = check.evaluate(TtlCoverageFacts(NOW, [_growing("gamerounds")], []), scope_for(check))
    assert finding.severity is Severity.LOW  # 6,000 rounds, 15 a day: reported, not alarming
    assert finding.evidence["documents_per_day"] == pytest.approx(15, abs=0.5)
    assert finding.fix.safety is FixSafety.MANUAL
    spec = finding.fix.steps[0].command["indexes"][0]
    assert spec == {"key": {"finishedAt": 1}, "name": "finishedAt_1_ttl", "expireAfterSeconds": 365 * 86400,
                    "partialFilterExpression": {"status": "finished"}}
    assert "in_progress are kept" in finding.fix.notes
    assert "deletes 531 documents" in finding.fix.notes and "conservative default" in finding.fix.notes
    assert finding.evidence["first_pass_deletes"] == 531


@pytest.mark.parametrize(
    "count, size, severity",
    [(6000, 6000 * 300, Severity.LOW), (2_000_000, 1, Severity.MEDIUM), (50_000_000, 1, Severity.HIGH),
     (6000, 20 << 30, Severity.HIGH)],
)
def test_severity_follows_growth_and_size(count, size, severity):
    check = TtlCoverage()
    [finding] = check.evaluate(TtlCoverageFacts(NOW, [_growing("gamerounds", count=count, size=size)], []), scope_for(check))
    assert finding.severity is severity


def test_invites_ttl_avoids_the_existing_expires_index_and_keeps_pending_ones():
    check = TtlCoverage()
    [finding] = check.evaluate(TtlCoverageFacts(NOW, [_growing("invites")], []), scope_for(check))
    spec = finding.fix.steps[0].command["indexes"][0]
    assert spec["key"] == {"expiresAt": -1}  # expiresAt_1 exists: the same key with a filter would conflict
    assert spec["partialFilterExpression"] == {"status": {"$in": ["accepted", "expired"]}}
    assert spec["expireAfterSeconds"] == 365 * 86400  # never 0 s over every invite
    assert "IndexOptionsConflict" in finding.fix.notes and "pending are kept" in finding.fix.notes


def test_messages_keep_pinned_ones():
    check = TtlCoverage()
    [finding] = check.evaluate(TtlCoverageFacts(NOW, [_growing("messages")], []), scope_for(check))
    assert finding.fix.steps[0].command["indexes"][0]["partialFilterExpression"] == {"pinned": False}
    assert finding.evidence["exempt_flag"] == {"field": "pinned", "true": 150, "false": 2850, "missing": 0}


def test_a_plain_index_on_the_field_is_made_a_ttl_by_collmod():
    docs = [{"loggedAt": NOW - dt.timedelta(days=i), "kind": "ping"} for i in range(100)]
    drawn = summarise("app", "pings", docs)
    coll = info("pings", index("loggedAt_1", {"loggedAt": 1}), count=100, size=100)
    verdict = classify(coll, drawn, [], False)
    plan = plan_ttl(drawn, verdict, 365 * 86400)
    g = Growing(coll, drawn, verdict, plan.field, plan.filter, plan.seconds, plan.retention_basis,
                growth(drawn, "loggedAt", 100, NOW), drawn.fields["loggedAt"].oldest, False, None, Expiring(0, True, "counted"))
    check = TtlCoverage()
    [finding] = check.evaluate(TtlCoverageFacts(NOW, [g], []), scope_for(check))
    assert finding.fix.steps[0].command == {"collMod": "pings", "index": {"name": "loggedAt_1", "expireAfterSeconds": 365 * 86400}}
    assert finding.fix.inverse[1].command == {"createIndexes": "pings", "indexes": [{"key": {"loggedAt": 1}, "name": "loggedAt_1"}]}


def test_too_young_to_say_it_grows_forever():
    docs = [{"loggedAt": NOW - dt.timedelta(days=i % 10)} for i in range(100)]
    drawn = summarise("app", "pings", docs)
    coll = info("pings", count=100, size=100)
    verdict = classify(coll, drawn, [], False)
    plan = plan_ttl(drawn, verdict, 365 * 86400)
    g = Growing(coll, drawn, verdict, plan.field, plan.filter, plan.seconds, plan.retention_basis,
                growth(drawn, "loggedAt", 100, NOW), drawn.fields["loggedAt"].oldest, False, None, Expiring(0, True, "counted"))
    check = TtlCoverage()
    assert check.evaluate(TtlCoverageFacts(NOW, [g], []), scope_for(check)) == []


def test_a_collection_whose_size_did_not_answer_is_reported_as_not_assessed():
    coll = CollectionInfo("app", "events", None, None, None, (index("_id_", {"_id": 1}),), unknown="count did not answer within 1.5s")
    check = TtlCoverage()
    [finding] = check.evaluate(TtlCoverageFacts(NOW, [], [], [Unassessed(coll, coll.unknown)]), scope_for(check))
    assert finding.severity is Severity.INFO and finding.fix is None
    assert finding.evidence["documents"] == "unknown: count did not answer within 1.5s"
    assert "nothing is claimed" in finding.message


def test_unenforced_rule_fix_creates_a_partial_ttl_and_warns():
    check = TtlCoverage()
    scope = scope_for(check, expect={"ttl": [{"collection": "tx", "field": "createdAt", "after": "30d", "filter": {"status": "failed"}}]})
    rule = RuleTarget(scope.config.expect.ttl[0], "app", info("tx", index("createdAt_1", {"createdAt": 1}), count=900))
    unenforced = UnenforcedRule(rule, (), None, True, Expiring(812, True, "older than 30d, counted"))
    [finding] = check.evaluate(TtlCoverageFacts(NOW, [], [unenforced]), scope)
    spec = finding.fix.steps[0].command["indexes"][0]
    assert spec == {"key": {"createdAt": -1}, "name": "createdAt_-1_ttl", "expireAfterSeconds": 2592000,
                    "partialFilterExpression": {"status": "failed"}}
    assert finding.fix.safety is FixSafety.UNSAFE and "deletes 812 documents" in finding.fix.notes


def test_unenforced_rule_converts_a_plain_index_with_collmod():
    check = TtlCoverage()
    scope = scope_for(check, expect={"ttl": [{"collection": "tx", "field": "createdAt", "after": "30d"}]})
    rule = RuleTarget(scope.config.expect.ttl[0], "app", info("tx", index("createdAt_1", {"createdAt": 1}), count=10))
    [finding] = check.evaluate(TtlCoverageFacts(NOW, [], [UnenforcedRule(rule, (), "createdAt_1", True, Expiring(0, True, "x"))]), scope)
    assert finding.fix.steps[0].command == {"collMod": "tx", "index": {"name": "createdAt_1", "expireAfterSeconds": 2592000}}
