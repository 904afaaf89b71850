"""mongodb.pool's evaluate, with real-mongod-shaped serverStatus.connections and SecantusDB's
(which reports available = 0 always: capacity is unknown, never exhausted)."""

from __future__ import annotations

import pytest

from checks.config import config_from_dict
from checks.mongodb.connector import client_options
from checks.contract import Scope, resolve_options
from checks.model import Severity, TargetState, TargetStatus
from checks.mongodb.pool import MongoPool, MongoPoolFacts

GOOD_URL = "mongodb://db.internal:27017/app?maxPoolSize=20&timeoutMS=5000"
LEGACY_GOOD_URL = ("mongodb://db.internal:27017/app?maxPoolSize=20&waitQueueTimeoutMS=2000&socketTimeoutMS=20000"
                   "&serverSelectionTimeoutMS=5000&connectTimeoutMS=5000")


def scope(url: str = GOOD_URL, app_pool: dict | None = None, **options) -> Scope:
    target = {"kind": "mongodb", "url": url}
    if app_pool:
        target["app_pool"] = app_pool
    if options:
        target["checks"] = {"mongodb.pool": options}
    config = config_from_dict({"targets": {"docs": target}}).targets["docs"]
    status = TargetStatus("docs", "mongodb", TargetState.CONNECTED, url=config.masked_url)
    return Scope("docs", config, resolve_options(MongoPool, "docs", config), status)


def mongod(current: int, available: int, rejected: int | None = None, url: str = GOOD_URL) -> MongoPoolFacts:
    """serverStatus.connections as a real mongod reports it (current + available = the limit)."""
    connections = {"current": current, "available": available, "totalCreated": current * 3, "active": 2,
                   "threaded": current, "exhaustIsMaster": 0, "exhaustHello": 1, "awaitingTopologyChanges": 1}
    if rejected is not None:
        connections["rejected"] = rejected
    return MongoPoolFacts(connections=connections, uptime_s=86400.0, url_options=client_options(url))


def secantus(url: str = GOOD_URL) -> MongoPoolFacts:
    return MongoPoolFacts(connections={"current": 3, "available": 0, "totalCreated": 4}, uptime_s=12.0,
                          url_options=client_options(url))


def run(f: MongoPoolFacts, s: Scope | None = None):
    return MongoPool().evaluate(f, s or scope())


def keys(findings) -> set[tuple[str, str]]:
    return {(f.object, f.severity.value) for f in findings}


HEALTHY = [
    pytest.param(mongod(40, 838820), scope(), id="mongod-default-limit"),
    pytest.param(mongod(40, 838820, rejected=0), scope(), id="nothing-rejected"),
    pytest.param(mongod(70, 30), scope(), id="70%-in-use"),
    pytest.param(mongod(40, 838820, url=LEGACY_GOOD_URL), scope(url=LEGACY_GOOD_URL), id="every-legacy-timeout"),
    pytest.param(mongod(10, 990), scope(app_pool={"instances": 10, "max_size": 20}), id="budget-fits"),
    pytest.param(mongod(10, 990), scope(app_pool={"instances": 10}), id="budget-from-url-maxPoolSize"),
]


@pytest.mark.parametrize("f, s", HEALTHY)
def test_healthy_facts_yield_nothing(f, s):
    assert run(f, s) == []


BARE = "mongodb://db.internal:27017/app"
CASES = [
    (mongod(80, 20), scope(), {("connections", "medium")}),
    (mongod(96, 4), scope(), {("connections", "high")}),
    (mongod(40, 60, rejected=17), scope(), {("connections", "medium")}),
    (mongod(10, 990, url=BARE), scope(url=BARE), {
        ("url:maxPoolSize", "low"), ("url:waitQueueTimeoutMS", "medium"), ("url:socketTimeoutMS", "medium"),
        ("url:serverSelectionTimeoutMS", "low"), ("url:connectTimeoutMS", "low"),
    }),
    # timeoutMS (CSOT) bounds every wait; only the pool size is left to judge.
    (mongod(10, 990, url=BARE + "?timeoutMS=5000"), scope(url=BARE + "?timeoutMS=5000"), {("url:maxPoolSize", "low")}),
    # timeoutMS=0 and socketTimeoutMS=0 mean "no limit".
    (mongod(10, 990, url=BARE + "?maxPoolSize=0&timeoutMS=0&socketTimeoutMS=0&waitQueueTimeoutMS=100"
            "&serverSelectionTimeoutMS=5000&connectTimeoutMS=5000"),
     scope(url=BARE + "?maxPoolSize=0&timeoutMS=0&socketTimeoutMS=0&waitQueueTimeoutMS=100"
           "&serverSelectionTimeoutMS=5000&connectTimeoutMS=5000"),
     {("url:maxPoolSize", "medium"), ("url:socketTimeoutMS", "medium")}),
    # The driver default of 100 per process: 10 × 100 > 1000.
    (mongod(10, 990, url=BARE + "?timeoutMS=5000"), scope(url=BARE + "?timeoutMS=5000", app_pool={"instances": 11}),
     {("url:maxPoolSize", "low"), ("app_pool", "high")}),
    (mongod(10, 990), scope(app_pool={"instances": 10, "max_size": 90}), {("app_pool", "medium")}),
    (mongod(10, 990), scope(app_pool={"instances": 60}), {("app_pool", "high")}),
]


@pytest.mark.parametrize("f, s, expected", CASES)
def test_findings(f, s, expected):
    assert keys(run(f, s)) == expected


def test_secantus_available_zero_is_unknown_capacity_not_exhaustion():
    [finding] = run(secantus(), scope(app_pool={"instances": 1000, "max_size": 100}))
    assert finding.severity is Severity.INFO
    assert finding.title == "Connection capacity unknown"
    assert "budget cannot be judged" in finding.message
    assert finding.evidence["connections"]["available"] == 0


def test_unreadable_server_status_is_unknown_capacity():
    f = MongoPoolFacts(connections=None, error="OperationFailure: not authorized on admin",
                       url_options=client_options(GOOD_URL))
    [finding] = run(f)
    assert finding.severity is Severity.INFO
    assert "clusterMonitor" in finding.message


def test_budget_evidence_names_where_the_pool_size_came_from():
    url = BARE + "?timeoutMS=5000"
    [_, budget] = sorted(run(mongod(10, 990, url=url), scope(url=url, app_pool={"instances": 11})),
                         key=lambda f: f.object != "url:maxPoolSize")
    assert budget.evidence["pool_size_from"] == "driver default maxPoolSize"
    assert budget.evidence["arithmetic"] == "11 instances × 100 = 1100 connections > 1000 usable"


def test_rejected_connections_are_reported_with_uptime():
    [finding] = run(mongod(40, 60, rejected=17))
    assert "refused 17 incoming connections in 24.0 h" in finding.message
    assert finding.evidence["uptime_s"] == 86400.0


def test_a_pool_sized_in_code_is_taken_from_app_pool_not_the_driver_default():
    url = BARE + "?timeoutMS=5000"
    # 20 instances × 40 (declared) = 800 of 1000: headroom is low; the driver's 100 would claim 2000, "exhausts"
    [budget] = run(mongod(10, 990, url=url), scope(url=url, app_pool={"instances": 20, "max_size": 40}))
    assert budget.severity is Severity.MEDIUM and budget.evidence["pool_size_from"] == "app_pool.max_size"
    assert budget.evidence["client_settings"]["maxPoolSize"] == "40 (from the config: app_pool.max_size)"
    assert budget.evidence["client_settings"]["timeoutMS"] == "5000 (from the URL)"
    assert budget.evidence["client_settings"]["retryWrites"] == "true (driver default, assumed)"


@pytest.mark.parametrize(
    "query, uses, expected",
    [
        ("retryWrites=false", False, {("url:retryWrites", "medium")}),
        ("retryReads=false", False, {("url:retryReads", "low")}),
        ("w=0", False, {("url:w", "high")}),
        ("w=1", False, {("url:w", "low")}),
        ("w=majority&retryWrites=true", False, set()),
        ("readPreference=secondaryPreferred", False, {("url:readPreference", "low")}),
        ("readPreference=secondaryPreferred", True, {("url:readPreference", "medium")}),  # transactions need primary
        ("readPreference=primary", True, set()),
    ],
)
def test_retries_write_concern_and_read_preference(query, uses, expected):
    url = GOOD_URL + "&" + query
    config_scope = scope(url=url)
    if uses:
        config = config_from_dict({"targets": {"docs": {"kind": "mongodb", "url": url, "uses_transactions": True}}}).targets["docs"]
        config_scope = Scope("docs", config, resolve_options(MongoPool, "docs", config), config_scope.status)
    findings = run(mongod(40, 838820, url=url), config_scope)
    assert keys(findings) == expected
    for finding in findings:
        assert finding.title.startswith("URL sets ")
