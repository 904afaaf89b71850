"""mongodb.missing-index without the profiler: the slow-query log, $queryStats and currentOp as
a real mongod returns them (the manual's shapes, tests/data/mongod_replies.py), grouped by shape
and ranked; suggestions collapsed when one compound index serves several shapes; a wildcard
index for a map's keys; and one finding saying what to turn on when no source exists."""

from __future__ import annotations

import datetime as dt

from bson import ObjectId

from checks.contract import Scope
from checks.model import Severity, TargetState, TargetStatus
from checks.mongodb._inventory import IndexSpec, summarise
from checks.mongodb._query_sources import current_op_entries, parse_slow_log, query_stats_entries, representative
from checks.mongodb._schema import dynamic_objects
from checks.mongodb.missing_index import (
    MissingIndex,
    MissingIndexFacts,
    Plan,
    QueryShape,
    SourceState,
    by_database,
    merge_profile,
)
from tests import support
from tests.data import mongod_replies


def scope_for(check):
    url = "mongodb://db.internal:27017/stocks"
    settings = support.settings_for(app={"kind": "mongodb", "url": url})
    target = settings.targets["app"]
    status = TargetStatus(name="app", kind="mongodb", state=TargetState.CONNECTED, url=url)
    return Scope(target="app", config=target, options=check.Options(), status=status)


def index(name, key, **options):
    return IndexSpec.from_document({"v": 2, "key": key, "name": name, **options})


def scanned(shape, count=1_000_001, size=80_000_000, indexes=()):
    shape.plan = Plan(stages=("COLLSCAN",))
    shape.count, shape.size, shape.indexes = count, size, (index("_id_", {"_id": 1}), *indexes)
    return shape


AVAILABLE = [SourceState("slow-query log", True, "3 slow operations in the last 6 lines")]


def test_slow_query_lines_become_shapes_with_their_figures():
    log = parse_slow_log(mongod_replies.GETLOG["log"])
    assert log.structured and log.lines == 6
    shapes = {s.collection + ":" + ",".join(s.shape): s for s in merge_profile(by_database(log.entries, ["stocks"])["stocks"],
                                                                             "stocks", "slow-query log")}
    # our own $sample, the truncated command and the connection line are not shapes
    assert set(shapes) == {"trades:ticker", "orders:accountId,state"}
    trades = shapes["trades:ticker"]  # the aggregation and the find share one shape
    assert trades.executions == 2 and trades.docs_examined == 2_000_002 and trades.returned == 121
    assert trades.sources == ["slow-query log"] and trades.plan_summaries == {"COLLSCAN"}
    assert shapes["orders:accountId,state"].filter["accountId"] == ObjectId("5ec5a6b2f1b0c8a1d2e3f4a5")


def test_plain_text_log_lines_are_not_a_source():
    log = parse_slow_log(mongod_replies.GETLOG_PLAIN["log"])
    assert not log.structured and log.entries == []


def test_query_stats_shapes_carry_their_execution_counts():
    entries = query_stats_entries(mongod_replies.QUERY_STATS)
    assert [e["ns"] for e in entries] == ["test.products", "test.products"]  # the virtual collection is skipped
    [find, aggregate] = merge_profile(entries, "test", "$queryStats")
    assert find.executions == 40 and find.docs_examined == 600_000 and find.returned == 40
    assert find.filter == {"item": {"$eq": ""}}  # placeholders become literals, so the shape can be explained
    assert aggregate.executions == 3 and aggregate.docs_examined is None


def test_representative_values_for_placeholders():
    assert representative({"a": {"$in": "?array<?number>"}, "b": "?date"}) == {"a": {"$in": [0]}, "b": dt.datetime(2000, 1, 1)}


def test_current_op_reads_only_scans_and_long_operations():
    [running] = current_op_entries(mongod_replies.CURRENT_OP["inprog"], 5)
    assert running["ns"] == "shop.orders" and running["planSummary"] == "COLLSCAN" and running["appName"] == "api"


def test_shapes_from_the_log_are_ranked_and_suggested():
    log = parse_slow_log(mongod_replies.GETLOG["log"])
    shapes = [scanned(s) for s in merge_profile(log.entries, "stocks", "slow-query log")]
    check = MissingIndex()
    findings = check.evaluate(MissingIndexFacts(shapes, [], [], AVAILABLE), scope_for(check))
    assert [f.object for f in findings] == ["stocks.trades", "stocks.orders"]
    trades = findings[0]
    assert trades.evidence["rank"] == "1 of 2" and trades.evidence["sources"] == ["slow-query log"]
    assert trades.evidence["suggested_index"] == {"ticker": 1, "price": -1}
    assert "equality (ticker) then sort (price descending)" in trades.evidence["ordering"]
    assert trades.severity is Severity.HIGH


def test_a_prefix_suggestion_collapses_into_the_compound_one():
    narrow = scanned(QueryShape("app", "orders", {"userId": 1}, None, ["slow-query log"], executions=5))
    wide = scanned(QueryShape("app", "orders", {"userId": 1, "status": "x"}, {"createdAt": -1}, ["slow-query log"], executions=1))
    check = MissingIndex()
    findings = {f.evidence["query_shape"].__repr__(): f for f in check.evaluate(MissingIndexFacts([narrow, wide], [], [], AVAILABLE), scope_for(check))}
    narrow_finding = findings[repr({"userId": "?"})]
    assert narrow_finding.evidence["suggested_index"] == {"userId": 1, "status": 1, "createdAt": -1}
    assert "is a prefix of" in narrow_finding.evidence["collapsed"]
    wide_finding = findings[repr({"status": "?", "userId": "?"})]
    assert narrow_finding.fix.steps[0].command == wide_finding.fix.steps[0].command  # one index for both


def test_filters_on_a_map_get_one_wildcard_index():
    docs = [{"assignments": {f"AG{(i * 7 + k) % 40}": {"role": "agent"} for k in range(2)}} for i in range(100)]
    maps = dynamic_objects(summarise("app", "cases", docs))
    assert maps["assignments"].distinct_keys == 40 and maps["assignments"].mean_keys == 2
    shapes = [scanned(QueryShape("app", "cases", {f"assignments.AG{n}.role": "agent"}, None, ["slow-query log"], executions=1))
              for n in (3, 17)]
    check = MissingIndex()
    findings = check.evaluate(MissingIndexFacts(shapes, [], [], AVAILABLE, {("app", "cases"): maps}), scope_for(check))
    assert {str(f.evidence["suggested_index"]) for f in findings} == {str({"assignments.$**": 1})}
    assert "wildcard rule" in findings[0].evidence["ordering"]
    assert findings[0].fix.steps[0].command["indexes"][0]["key"] == {"assignments.$**": 1}


def test_a_sub_document_is_not_a_map():
    docs = [{"address": {"street": "s", "city": "c", "zip": str(i)}} for i in range(100)]
    assert dynamic_objects(summarise("app", "users", docs)) == {}


def test_no_source_is_one_info_finding_that_says_what_to_turn_on():
    check = MissingIndex()
    sources = [SourceState("$queryStats", False, "not offered"), SourceState("profiler", False, "app: level 0, 0 entries"),
               SourceState("slow-query log", False, "plain text"), SourceState("currentOp", False, "0 running"),
               SourceState("declared queries", False, "0 in the config")]
    [finding] = check.evaluate(MissingIndexFacts([], [], [], sources), scope_for(check))
    assert finding.severity is Severity.INFO and finding.object == "queries"
    assert "dbvitals profiler --target app --level 1 --for 30m" in finding.message and "slowms" in finding.message
    assert finding.evidence["sources"]["profiler"] == "app: level 0, 0 entries"
    assert check.evaluate(MissingIndexFacts([], [], [], AVAILABLE), scope_for(check)) == []  # looked: nothing slow
