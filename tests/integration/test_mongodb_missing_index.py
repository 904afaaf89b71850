"""mongodb.missing-index against a real server without the profiler: with no source it says so
and what to turn on; declared queries on a map's keys get one wildcard index, in one finding; a prefix
suggestion collapses into the compound one."""

from __future__ import annotations

import datetime as dt

from checks.model import FixSafety, Severity
from tests import support

CHECK = ["mongodb.missing-index"]


def test_no_query_source_is_said_never_a_silent_ok(mongo_db):
    mongo_db.db.orders.insert_many({"userId": i % 50, "status": "open"} for i in range(500))
    settings = support.settings_for(app={"kind": "mongodb", "url": mongo_db.url})
    report = support.run_report(settings, checks=CHECK)
    assert report.errors == []
    [finding] = report.findings
    assert finding.severity is Severity.INFO and finding.title.startswith("No query source")
    sources = finding.evidence["sources"]
    assert set(sources) == {"$queryStats", "profiler", "slow-query log", "currentOp", "declared queries"}
    if not support.MONGO_URI:  # SecantusDB: plain-text log lines and no $queryStats
        assert "structured format" in sources["slow-query log"]


def test_map_keys_get_one_wildcard_index_and_prefixes_collapse(mongo_db, loaded_machine_budget):
    db = mongo_db.db
    db.cases.insert_many({"title": f"case {i}", "userId": i % 30, "status": "open" if i % 3 else "closed", "createdAt": i,
                          "assignments": {f"AG{(i * 7 + k) % 40}": {"role": "agent"} for k in range(2)}} for i in range(300))
    by_agency = [{"collection": "cases", "name": f"by agency {k}", "filter": {f"assignments.AG{k}.role": "agent"}}
                 for k in range(35)]
    settings = support.settings_for(app={"kind": "mongodb", "url": mongo_db.url, "check_timeout": 120, "expect": {"queries": [
        *by_agency,
        {"collection": "cases", "name": "mine", "filter": {"userId": 1}},
        {"collection": "cases", "name": "my open", "filter": {"userId": 1, "status": "open"}, "sort": {"createdAt": -1}},
    ]}})
    report = support.run_report(settings, checks=CHECK)
    assert report.errors == []
    by_name = {f.evidence["sources"][0].removeprefix("config: "): f for f in report.findings}
    # 35 queries on the map's keys are one finding: they all want the one wildcard index
    assert set(by_name) == {"by agency 0", "mine", "my open"}
    wildcard = by_name["by agency 0"]
    assert wildcard.evidence["suggested_index"] == {"assignments.$**": 1}
    assert wildcard.evidence["shapes"] == 35 and len(wildcard.evidence["sources"]) == 35
    assert wildcard.title == "35 queries on the keys of cases.assignments scan"
    assert by_name["mine"].evidence["suggested_index"] == {"userId": 1, "status": 1, "createdAt": -1}
    assert "is a prefix of" in by_name["mine"].evidence["collapsed"]
    assert by_name["mine"].fix.steps == by_name["my open"].fix.steps


def test_an_index_in_the_other_direction_is_judged_by_what_direction_means_for_the_sort(mongo_db, loaded_machine_budget):
    """{status, brandUserId, createdAt: 1} serves a newest-first sort after two equalities (walked
    backwards): no mirror index is proposed. A sort on two fields in mixed directions it does not
    serve: the finding says what the existing index orders."""
    db = mongo_db.db
    db.campaigns.insert_many({"status": ["draft", "live"][i % 2], "brandUserId": i % 40, "createdAt": i} for i in range(2000))
    db.campaigns.create_index([("status", 1), ("brandUserId", 1), ("createdAt", 1)])
    settings = support.settings_for(app={"kind": "mongodb", "url": mongo_db.url, "check_timeout": 120, "expect": {"queries": [
        {"collection": "campaigns", "name": "newest of a brand", "filter": {"status": "live", "brandUserId": 7},
         "sort": {"createdAt": -1}},
        {"collection": "campaigns", "name": "by brand, newest first", "filter": {"status": "live"},
         "sort": {"brandUserId": 1, "createdAt": -1}},
    ]}})
    report = support.run_report(settings, checks=CHECK)
    assert report.errors == []
    by_name = {f.evidence["sources"][0].removeprefix("config: "): f for f in report.findings}
    assert set(by_name) == {"by brand, newest first"}
    mixed = by_name["by brand, newest first"]
    assert mixed.evidence["suggested_index"] == {"status": 1, "brandUserId": 1, "createdAt": -1}
    assert mixed.evidence["existing_index_with_these_fields"] == {
        "status_1_brandUserId_1_createdAt_1": "status_1_brandUserId_1_createdAt_1 {status: 1, brandUserId: 1, createdAt: 1} "
        "has these fields but orders them {brandUserId: 1, createdAt: 1} (or {brandUserId: -1, createdAt: -1} walked "
        "backwards), not {brandUserId: 1, createdAt: -1}: a compound index serves a sort in its own direction or the "
        "reverse of ALL its keys only; status is matched whatever the direction"}
    assert "reverse of ALL its keys only" in mixed.message


def test_dbvitals_own_reads_are_marked_and_never_read_as_workload(mongo_db, loaded_machine_budget):
    """The profiler records no app name on SecantusDB (nor behind some proxies): dbvitals's own
    counts and samples carry comment "dbvitals", and are skipped as the application's queries."""
    db = mongo_db.db
    now = dt.datetime.now(dt.timezone.utc)
    db.events.insert_many({"kind": "click", "createdAt": now - dt.timedelta(days=i)} for i in range(3000))
    settings = support.settings_for(app={"kind": "mongodb", "url": mongo_db.url, "check_timeout": 120})
    db.command("profile", 2, slowms=0)
    try:  # dbvitals counts the documents a TTL would expire, samples, and asks for the longest arrays
        first = support.run_report(settings, checks=["mongodb.ttl-coverage", "mongodb.unbounded-array"])
    finally:
        db.command("profile", 0, slowms=100)
    assert first.errors == []
    profiled = [e["command"] for e in db["system.profile"].find({"ns": f"{mongo_db.name}.events"})]
    assert profiled and all(c.get("comment") == "dbvitals" for c in profiled if "find" in c or "aggregate" in c)

    report = support.run_report(settings, checks=CHECK)
    assert report.errors == []
    assert report.findings == []


def test_a_declared_unique_index_is_safe_only_when_no_key_repeats(mongo_db, loaded_machine_budget):
    """metadata.orderId repeats on 25 orders: the build would fail with E11000, so the fix is the
    clean-up (manual) with the count and examples; where no key repeats it is a safe build."""
    db = mongo_db.db
    db.payments.insert_many({"metadata": {"orderId": f"o{i}" if i >= 25 else f"o{i % 5}"}, "amount": i} for i in range(300))
    db.refunds.insert_many({"metadata": {"orderId": f"o{i}"}} for i in range(100))
    settings = support.settings_for(app={"kind": "mongodb", "url": mongo_db.url, "check_timeout": 120, "expect": {"indexes": [
        {"collection": "payments", "keys": {"metadata.orderId": 1}, "unique": True},
        {"collection": "refunds", "keys": {"metadata.orderId": 1}, "unique": True},
    ]}})
    report = support.run_report(settings, checks=CHECK)
    assert report.errors == []
    by = {f.object.removeprefix(mongo_db.name + "."): f for f in report.findings if f.title.startswith("Declared index")}
    payments, refunds = by["payments"], by["refunds"]
    # the first 25 payments hold o0..o4, five each: 5 keys held by 25 documents
    assert payments.evidence["duplicate_keys"] == 5 and payments.evidence["documents_with_duplicate_keys"] == 25
    assert payments.evidence["duplicate_examples"][0] == {"metadata.orderId": "o0", "documents": 5}
    assert payments.fix.safety is FixSafety.MANUAL and "E11000" in payments.message
    assert "Clean up first: 5 keys" in payments.fix.notes
    assert refunds.evidence["duplicate_keys"] == 0 and refunds.fix.safety is FixSafety.SAFE
