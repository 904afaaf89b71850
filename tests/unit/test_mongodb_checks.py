"""Each MongoDB check's pure `evaluate`, fed facts shaped as a real mongod returns them (with
the figures SecantusDB lacks: docsExamined, $indexStats counters), and the degraded paths."""

from __future__ import annotations

import datetime as dt

import pytest
from bson import Int64, ObjectId

from checks.contract import Scope
from checks.model import FixSafety, Severity, TargetState, TargetStatus
from checks.mongodb._inventory import CollectionInfo, FieldSample, IndexSpec
from checks.mongodb.missing_index import (
    DeclaredIndex,
    MissingIndex,
    MissingIndexFacts,
    ProfilerState,
    QueryShape,
    merge_profile,
    operation_of,
    plan_from_explain,
)
from checks.mongodb.redundant_index import RedundantIndex, RedundantIndexFacts
from checks.mongodb.reference_type_mismatch import Reference, ReferenceFacts, ReferenceTypeMismatch, referenced_collection
from checks.mongodb.transactions_unsupported import TopologyFacts, TransactionsUnsupported
from checks.mongodb.unused_index import UnusedIndex, UnusedIndexFacts, Usage, member_url
from tests import support

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)


def scope_for(check, *, expect=None, checks=None, uses_transactions=False, url="mongodb://db.internal:27017/app"):
    settings = support.settings_for(app={"kind": "mongodb", "url": url, "expect": expect or {}, "checks": checks or {},
                                         "uses_transactions": uses_transactions})
    target = settings.targets["app"]
    status = TargetStatus(name="app", kind="mongodb", state=TargetState.CONNECTED, url=url)
    return Scope(target="app", config=target, options=check.Options(**target.checks.get(check.id, {})), status=status)


def index(name, key, **options):
    return IndexSpec.from_document({"v": 2, "key": key, "name": name, **options})


def info(name, *indexes, count=0, size=0, sizes=None, db="app"):
    return CollectionInfo(db, name, count, size, size, (index("_id_", {"_id": 1}), *indexes), sizes or {})


# --- missing-index --------------------------------------------------------------------------------

MONGOD_COLLSCAN_EXPLAIN = {
    "queryPlanner": {
        "namespace": "app.users",
        "winningPlan": {"stage": "COLLSCAN", "filter": {"$and": []}, "direction": "forward"},
        "rejectedPlans": [],
    }
}
# MongoDB 7+ with the slot-based engine nests the classic tree under queryPlan.
MONGOD_SBE_EXPLAIN = {
    "queryPlanner": {
        "winningPlan": {
            "queryPlan": {"stage": "SORT", "sortPattern": {"createdAt": -1}, "inputStage": {
                "stage": "FETCH", "inputStage": {"stage": "IXSCAN", "indexName": "userId_1", "keyPattern": {"userId": 1}}}},
            "slotBasedPlan": {"slots": "..."},
        }
    }
}


def test_plan_from_real_explains():
    plan = plan_from_explain(MONGOD_COLLSCAN_EXPLAIN)
    assert plan.collection_scan and not plan.in_memory_sort
    sbe = plan_from_explain(MONGOD_SBE_EXPLAIN)
    assert sbe.stages == ("SORT", "FETCH", "IXSCAN") and sbe.index == "userId_1" and sbe.in_memory_sort


PROFILE = [  # real mongod system.profile entries
    {"op": "query", "ns": "app.users", "command": {"find": "users", "filter": {"email": "a@x", "status": "active", "banned": False}},
     "docsExamined": 120000, "keysExamined": 0, "nreturned": 1, "millis": 80, "planSummary": "COLLSCAN", "appName": "api"},
    {"op": "query", "ns": "app.users", "command": {"find": "users", "filter": {"banned": True, "email": "b@x", "status": "active"}},
     "docsExamined": 120000, "keysExamined": 0, "nreturned": 0, "millis": 75, "planSummary": "COLLSCAN", "appName": "api"},
    {"op": "command", "ns": "app.wallet", "command": {"aggregate": "wallet", "pipeline": [
        {"$match": {"userId": ObjectId(), "status": "done"}}, {"$sort": {"createdAt": -1}}, {"$limit": 20}]},
     "docsExamined": 5000, "keysExamined": 5000, "nreturned": 20, "millis": 30, "planSummary": "IXSCAN { userId: 1 }"},
    {"op": "command", "ns": "app.users", "command": {"aggregate": "users", "pipeline": [{"$sample": {"size": 200}}]}, "appName": "x"},
    {"op": "query", "ns": "app.users", "command": {"find": "users", "filter": {"email": "c"}}, "appName": "dbvitals"},
    # dbvitals's own read where the profiler recorded no app name (SecantusDB, some proxies): its comment marks it
    {"op": "command", "ns": "app.users", "command": {"aggregate": "users", "pipeline": [
        {"$match": {"devices": {"$type": "array"}}}, {"$project": {"n": {"$size": "$devices"}}}], "comment": "dbvitals"}},
    {"op": "query", "ns": "app.system.js", "command": {"find": "system.js", "filter": {"a": 1}}},
    {"op": "update", "ns": "app.orders", "command": {"q": {"orderNo": 5}, "u": {"$set": {"x": 1}}}, "docsExamined": 1, "nMatched": 1},
]


def test_profile_entries_group_by_shape_and_skip_our_own():
    shapes = {s.collection + ":" + ",".join(s.shape): s for s in merge_profile(PROFILE, "app")}
    assert set(shapes) == {"users:banned,email,status", "wallet:status,userId", "orders:orderNo"}
    login = shapes["users:banned,email,status"]
    assert (login.executions, login.docs_examined, login.returned, login.millis) == (2, 240000, 1, 155)
    assert login.plan_summaries == {"COLLSCAN"}
    assert shapes["wallet:status,userId"].sort == {"createdAt": -1}
    assert operation_of({"op": "getmore", "ns": "app.x", "command": {"getMore": 1}}) is None


def test_scans_are_ranked_by_documents_examined_when_the_server_reports_them():
    shapes = merge_profile(PROFILE, "app")
    users = info("users", index("email_1", {"email": 1}), count=120000, size=60_000_000)
    wallet = info("wallet", index("userId_1", {"userId": 1}), count=90000, size=9_000_000)
    plans = {"users": plan_from_explain(MONGOD_COLLSCAN_EXPLAIN), "wallet": plan_from_explain(MONGOD_SBE_EXPLAIN)}
    for s in shapes:
        source = {"users": users, "wallet": wallet}.get(s.collection)
        if source:
            s.count, s.size, s.indexes, s.plan = source.count, source.size, source.indexes, plans[s.collection]
    facts = MissingIndexFacts(shapes, [ProfilerState("app", 1, 100, len(PROFILE), True)], [])
    check = MissingIndex()
    findings = check.evaluate(facts, scope_for(check))
    assert [f.object for f in findings] == ["app.users", "app.wallet"]  # orders has no plan: not judged
    login, wallet_finding = findings
    assert login.evidence["rank"] == "1 of 2" and login.evidence["impact"] == 240000 - 1
    assert login.evidence["impact_basis"].startswith("documents examined")
    assert login.severity is Severity.HIGH
    assert login.evidence["suggested_index"] == {"email": 1, "status": 1, "banned": 1}
    assert wallet_finding.title == "Query on wallet sorts in memory"
    assert wallet_finding.evidence["suggested_index"] == {"status": 1, "userId": 1, "createdAt": -1}
    assert wallet_finding.fix.safety is FixSafety.SAFE


def test_without_examined_figures_impact_is_collection_size_and_says_so():
    shape = QueryShape("app", "users", {"email": "x"}, None, ["profiler"], executions=3, count=500, size=1000,
                       plan=plan_from_explain(MONGOD_COLLSCAN_EXPLAIN))
    facts = MissingIndexFacts([shape], [ProfilerState("app", 1, 100, 3, False)], [])
    check = MissingIndex()
    [finding] = check.evaluate(facts, scope_for(check))
    assert finding.evidence["impact"] == 3000
    assert "so impact is ranked by collection size" in finding.evidence["impact_basis"]
    assert finding.evidence["docs_examined"] == "unknown"
    assert finding.severity is Severity.LOW  # 500 documents


def test_a_scan_of_a_collection_whose_size_did_not_answer_says_so():
    reason = "count did not answer within 1.5s; collStats not attempted"
    shape = QueryShape("app", "events", {"userId": "x"}, None, ["config"], count=None, size=None, unknown=reason,
                       plan=plan_from_explain(MONGOD_COLLSCAN_EXPLAIN))
    check = MissingIndex()
    [finding] = check.evaluate(MissingIndexFacts([shape], [], []), scope_for(check))
    assert f"COLLSCAN over an unknown number of documents: {reason}" in finding.message
    assert finding.evidence["collection_documents"] == f"unknown: {reason}"
    assert "the size is unknown" in finding.evidence["impact_basis"]
    assert finding.severity is Severity.MEDIUM  # neither small nor large is claimed


def test_poor_index_use_needs_the_ratio():
    ixscan = plan_from_explain({"queryPlanner": {"winningPlan": {"stage": "FETCH", "inputStage": {"stage": "IXSCAN", "indexName": "email_1"}}}})
    good = QueryShape("app", "users", {"email": "x", "status": "a"}, None, ["profiler"], executions=1, docs_examined=1000,
                      returned=900, plan=ixscan, count=5000)
    poor = QueryShape("app", "users", {"email": "x", "banned": True}, None, ["profiler"], executions=1, docs_examined=50000,
                      returned=2, plan=ixscan, count=5000)
    check = MissingIndex()
    [finding] = check.evaluate(MissingIndexFacts([good, poor], [], []), scope_for(check))
    assert "50,000 documents examined for 2 returned" in finding.message


def _declared(exp_index, *existing, exists=True):
    scope = scope_for(MissingIndex(), expect={"indexes": [exp_index]})
    exp = scope.config.expect.indexes[0]
    return scope, MissingIndexFacts([], [], [DeclaredIndex(exp, "app", exists, (index("_id_", {"_id": 1}), *existing))])


@pytest.mark.parametrize(
    "declared, existing, outcome",
    [
        ({"collection": "users", "keys": {"email": 1}, "unique": True}, [index("email_1", {"email": 1}, unique=True)], None),
        ({"collection": "users", "keys": {"email": 1}, "unique": True}, [], "missing"),
        ({"collection": "users", "keys": {"email": 1}, "unique": True}, [index("email_1", {"email": 1})], "different"),
        ({"collection": "users", "keys": {"email": 1, "status": 1}}, [index("status_1_email_1", {"status": 1, "email": 1})], "missing"),
        ({"collection": "s", "keys": {"at": 1}, "expire_after": "1h"}, [index("at_1", {"at": 1}, expireAfterSeconds=60)], "collMod"),
        ({"collection": "s", "keys": {"a": 1}, "partial_filter": {"b": True}}, [index("a_1", {"a": 1})], "different"),
    ],
)
def test_declared_indexes(declared, existing, outcome):
    scope, facts = _declared(declared, *existing)
    findings = MissingIndex().evaluate(facts, scope)
    if outcome is None:
        assert findings == []
        return
    [finding] = findings
    first = finding.fix.steps[0].command
    if outcome == "missing":
        assert finding.severity is Severity.HIGH and "createIndexes" in first
        assert finding.fix.inverse[0].command == {"dropIndexes": declared["collection"], "index": first["indexes"][0]["name"]}
    elif outcome == "different":
        assert next(iter(first)) == "dropIndexes" and "createIndexes" in finding.fix.steps[1].command
        assert finding.fix.safety is FixSafety.UNSAFE
        assert finding.fix.inverse[1].command["indexes"][0] == existing[0].create_spec()
    else:
        assert first == {"collMod": "s", "index": {"name": "at_1", "expireAfterSeconds": 3600}}
        assert finding.fix.inverse[0].command["index"]["expireAfterSeconds"] == 60


# --- redundant-index ------------------------------------------------------------------------------

LONG = index("a_1_b_1", {"a": 1, "b": 1})


@pytest.mark.parametrize(
    "short, redundant",
    [
        (index("a_1", {"a": 1}), True),
        (index("a_-1", {"a": -1}), True),  # one key: direction does not matter
        (index("a_1_u", {"a": 1}, unique=True), False),  # a constraint
        (index("a_1_t", {"a": 1}, expireAfterSeconds=60), False),  # expiry
        (index("a_1_p", {"a": 1}, partialFilterExpression={"b": 1}), False),
        (index("a_1_s", {"a": 1}, sparse=True), False),
        (index("a_1_c", {"a": 1}, collation={"locale": "fr"}), False),
        (index("b_1", {"b": 1}), False),  # not a prefix
        (index("a_text", {"a": "text"}), False),
    ],
)
def test_redundant_prefix(short, redundant):
    coll = info("c", short, LONG, sizes={short.name: 4096, "a_1_b_1": 8192})
    findings = RedundantIndex().evaluate(RedundantIndexFacts([coll]), scope_for(RedundantIndex()))
    assert bool(findings) is redundant
    if redundant:
        [finding] = findings
        assert finding.evidence["redundant_bytes"] == 4096 and finding.evidence["covering"]["name"] == "a_1_b_1"
        assert finding.fix.inverse[0].command == {"createIndexes": "c", "indexes": [short.create_spec()]}


def test_redundant_index_sizes_that_did_not_answer_are_unknown_with_the_reason():
    coll = CollectionInfo("app", "events", None, None, None, (index("_id_", {"_id": 1}), index("a_1", {"a": 1}),
                          index("a_1_b_1", {"a": 1, "b": 1})), unknown="count did not answer within 1.5s; collStats not attempted")
    [finding] = RedundantIndex().evaluate(RedundantIndexFacts([coll]), scope_for(RedundantIndex()))
    assert finding.evidence["redundant_bytes"] == "unknown: count did not answer within 1.5s; collStats not attempted"
    assert "frees" not in finding.message


@pytest.mark.parametrize(
    "indexes, expected",
    [
        # a plain index beside the TTL index on the same key, reversed: the TTL one serves its queries
        ((index("createdAt_-1", {"createdAt": -1}), index("createdAt_1", {"createdAt": 1}, expireAfterSeconds=86400)),
         [("createdAt_-1", "createdAt_1", "is the reverse of")]),
        # every direction reversed: one of the twins is reported, once
        ((index("a_1_b_-1", {"a": 1, "b": -1}), index("a_-1_b_1", {"a": -1, "b": 1})), [("a_1_b_-1", "a_-1_b_1", "is the reverse of")]),
        # a unique covering index serves the plain prefix's queries too
        ((index("a_1", {"a": 1}), index("a_1_b_1", {"a": 1, "b": 1}, unique=True)), [("a_1", "a_1_b_1", "is a prefix of")]),
        # the same fields, not every direction reversed: different orders, both needed
        ((index("a_1_b_1", {"a": 1, "b": 1}), index("a_1_b_-1", {"a": 1, "b": -1})), []),
        # the TTL index itself is never the redundant one
        ((index("createdAt_1", {"createdAt": 1}, expireAfterSeconds=60), index("createdAt_-1_x_1", {"createdAt": -1, "x": 1})), []),
    ],
)
def test_reversed_duplicates_and_ttl_twins(indexes, expected):
    findings = RedundantIndex().evaluate(RedundantIndexFacts([info("c", *indexes)]), scope_for(RedundantIndex()))
    assert [(f.evidence["redundant"]["name"], f.evidence["covering"]["name"], next(w for w in ("is the reverse of", "is a prefix of") if w in f.message))
            for f in findings] == expected


def test_mixed_directions_are_not_a_prefix():
    coll = info("c", index("a_1_b_-1", {"a": 1, "b": -1}), index("a_1_b_1_c_1", {"a": 1, "b": 1, "c": 1}))
    assert RedundantIndex().evaluate(RedundantIndexFacts([coll]), scope_for(RedundantIndex())) == []


# --- unused-index ---------------------------------------------------------------------------------

def _unused(usages_by_index, *, unreached=None):
    coll = info("orders", index("status_1", {"status": 1}), index("sku_1", {"sku": 1}, unique=True),
                sizes={"status_1": 2_000_000})
    usage = {("app", "orders", name): u for name, u in usages_by_index.items()}
    return UnusedIndexFacts(NOW, [coll], usage, ["a:27017", "b:27017"], unreached or {})


TEN_DAYS = NOW - dt.timedelta(days=10)


@pytest.mark.parametrize(
    "usages, unused",
    [
        ([Usage("a:27017", 0, TEN_DAYS), Usage("b:27017", 0, TEN_DAYS)], True),
        ([Usage("a:27017", 0, TEN_DAYS), Usage("b:27017", 412, TEN_DAYS)], False),  # serves the secondary's reads
        ([Usage("a:27017", 0, TEN_DAYS), Usage("b:27017", 0, NOW - dt.timedelta(days=2))], False),  # b restarted lately
    ],
)
def test_unused_merges_members(usages, unused):
    check = UnusedIndex()
    findings = check.evaluate(_unused({"status_1": usages, "sku_1": usages, "_id_": usages}), scope_for(check))
    assert [f.object for f in findings] == (["app.orders.status_1"] if unused else [])  # unique and _id never
    if unused:
        assert findings[0].evidence["observed_days"] == 10.0 and findings[0].severity is Severity.LOW


def test_unused_with_an_unreached_member_is_only_info():
    usages = [Usage("a:27017", 0, TEN_DAYS)]
    check = UnusedIndex()
    [finding] = check.evaluate(_unused({"status_1": usages}, unreached={"b:27017": "ServerSelectionTimeoutError"}), scope_for(check))
    assert finding.severity is Severity.INFO and "Not reached: b:27017" in finding.message


def test_counters_without_a_window_are_unknown_never_unused():
    usages = [Usage("secantus", 0, None)]  # SecantusDB: ops 0, since null
    check = UnusedIndex()
    [finding] = check.evaluate(_unused({"status_1": usages, "_id_": usages}), scope_for(check))
    assert finding.severity is Severity.INFO and finding.evidence["index_usage"] == "unknown"


def test_member_url_keeps_credentials_and_options():
    url = member_url("mongodb://u:p@a:27017,b:27017/app?replicaSet=rs0&tls=true", "b:27017")
    assert url == "mongodb://u:p@b:27017/app?tls=true&directConnection=true"
    assert member_url("mongodb+srv://u:p@cluster.example.net/app", "x:1") is None


# --- reference-type-mismatch ----------------------------------------------------------------------

@pytest.mark.parametrize(
    "field, collections, target",
    [("userId", ["users", "orders"], "users"), ("user_id", ["users"], "users"), ("authorId", ["users"], None),
     ("categoryId", ["categories"], "categories"), ("orderID", ["Orders"], "Orders"), ("_id", ["s"], None),
     ("paid", ["ps"], None)],
)
def test_referenced_collection_by_name(field, collections, target):
    assert referenced_collection(field, collections) == target


def _reference(types, target_types, **extra):
    examples = tuple(str(ObjectId()) for _ in range(5)) if "string" in types else (Int64(1),)
    return Reference("app", "flags", "userId", "users", "_id", False, FieldSample(types, examples), target_types, 200, 200, **extra)


@pytest.mark.parametrize(
    "reference, severity",
    [
        (_reference({"string": 200}, {"objectId": 200}, found_as_stored=(0, 5), found_as_object_id=(5, 5)), Severity.HIGH),
        (_reference({"objectId": 180, "string": 20}, {"objectId": 200}), Severity.MEDIUM),
        (_reference({"objectId": 200, "null": 12}, {"objectId": 200}), None),
        (_reference({"int": 150, "long": 50}, {"long": 200}), None),  # numbers compare by value
        (_reference({"int": 150, "string": 50}, {"string": 100, "int": 100}), Severity.MEDIUM),  # a mix on both sides
    ],
)
def test_reference_types(reference, severity):
    check = ReferenceTypeMismatch()
    findings = check.evaluate(ReferenceFacts([reference]), scope_for(check))
    assert [f.severity for f in findings] == ([severity] if severity else [])


def test_string_object_ids_evidence_and_manual_pipeline():
    check = ReferenceTypeMismatch()
    ref = _reference({"string": 200}, {"objectId": 200}, found_as_stored=(0, 5), found_as_object_id=(5, 5))
    [finding] = check.evaluate(ReferenceFacts([ref]), scope_for(check))
    assert "5 of 5 sampled ids exist in users as ObjectIds (0 as stored)" in finding.message
    assert finding.evidence["type_histogram"] == {"string": 200}
    assert len(finding.evidence["sample_ids"]) == 5
    assert finding.fix.safety is FixSafety.MANUAL
    assert finding.fix.steps[0].command == {"update": "flags", "updates": [{
        "q": {"userId": {"$type": "string", "$regex": "^[0-9a-fA-F]{24}$"}},
        "u": [{"$set": {"userId": {"$toObjectId": "$userId"}}}], "multi": True}]}


# --- transactions-unsupported ---------------------------------------------------------------------

STANDALONE = {"isWritablePrimary": True, "maxWireVersion": 21, "ok": 1.0}
REPLICA = {**STANDALONE, "setName": "rs0", "hosts": ["a:27017"], "me": "a:27017", "logicalSessionTimeoutMinutes": 30}
MONGOS = {**STANDALONE, "msg": "isdbgrid"}


@pytest.mark.parametrize(
    "hello, uses, severity",
    [(STANDALONE, True, Severity.HIGH), (STANDALONE, False, Severity.INFO), (REPLICA, True, None), (MONGOS, True, None)],
)
def test_transactions_need_a_replica_set(hello, uses, severity):
    check = TransactionsUnsupported()
    findings = check.evaluate(TopologyFacts(hello), scope_for(check, uses_transactions=uses))
    assert [f.severity for f in findings] == ([severity] if severity else [])
    if severity:
        members = findings[0].fix.steps[0].command["replSetInitiate"]["members"]
        assert members == [{"_id": 0, "host": "db.internal:27017"}]
