"""postgres.pool's evaluate, as tables of facts and the findings they must (and must not) yield."""

from __future__ import annotations

import pytest

from checks.config import config_from_dict
from checks.contract import Scope, resolve_options
from checks.model import FixSafety, Severity, TargetState, TargetStatus
from checks.postgres.pool import PgPoolFacts, PgSession, PostgresPool, redact_literals

GOOD_URL = "postgresql://app@db.internal:5432/orders?connect_timeout=10&keepalives_idle=60"


def scope(url: str = GOOD_URL, app_pool: dict | None = None, **options) -> Scope:
    target = {"kind": "postgres", "url": url}
    if app_pool:
        target["app_pool"] = app_pool
    if options:
        target["checks"] = {"postgres.pool": options}
    config = config_from_dict({"targets": {"orders": target}}).targets["orders"]
    status = TargetStatus("orders", "postgres", TargetState.CONNECTED, url=config.masked_url)
    return Scope("orders", config, resolve_options(PostgresPool, "orders", config), status)


def session(pid: int, state: str | None = "idle", age: float = 1.0, app: str = "api", db: str = "orders") -> PgSession:
    return PgSession(pid=pid, database=db, user="app", application_name=app, client_addr="10.0.0.5", state=state,
                     state_age_s=age, xact_age_s=age if state and "transaction" in state else None,
                     query="UPDATE accounts SET note = '…' WHERE id = $1")


def facts(sessions: list[PgSession], max_connections: int = 100, superuser_reserved: int = 3, reserved: int = 0,
          url: str = GOOD_URL, database_timeouts: dict | None = None) -> PgPoolFacts:
    from checks.postgres.connector import client_params

    return PgPoolFacts(max_connections, superuser_reserved, reserved, sessions, client_params(url),
                       database_timeouts or {})


def run(f: PgPoolFacts, s: Scope | None = None):
    s = s or scope()
    return PostgresPool().evaluate(f, s)


def keys(findings) -> set[tuple[str, str]]:
    return {(f.object, f.severity.value) for f in findings}


HEALTHY = [
    pytest.param(facts([session(i) for i in range(10)]), scope(), id="ten-idle-sessions"),
    pytest.param(facts([session(1, "idle in transaction", age=30)]), scope(), id="short-transaction"),
    pytest.param(facts([session(i) for i in range(70)]), scope(), id="72%-in-use"),
    pytest.param(facts([session(1)]), scope(app_pool={"instances": 4, "max_size": 10}), id="budget-fits"),
    pytest.param(facts([session(1)]), scope(app_pool={"instances": 4}), id="budget-without-pool-size"),
    pytest.param(facts([session(1)], url="postgresql://h/db?connect_timeout=5&keepalives=1&keepalives_idle=30"),
                 scope(url="postgresql://h/db?connect_timeout=5&keepalives=1&keepalives_idle=30"), id="explicit-url"),
    pytest.param(facts([session(1)], url="postgresql://h/db"), scope(url="postgresql://h/db", check_url=False),
                 id="url-not-judged"),
]


@pytest.mark.parametrize("f, s", HEALTHY)
def test_healthy_facts_yield_nothing(f, s):
    assert run(f, s) == []


CASES = [
    # (facts, scope, expected (object, severity) pairs)
    (facts([session(i) for i in range(80)]), scope(), {("max_connections", "medium")}),
    (facts([session(i) for i in range(95)]), scope(), {("max_connections", "high")}),
    # PG16 reserved_connections shrink what ordinary roles may use: 80 of 87 is 92%.
    (facts([session(i) for i in range(80)], reserved=10), scope(), {("max_connections", "medium")}),
    (facts([session(i) for i in range(20)]), scope(capacity_warn=0.1, capacity_critical=0.5),
     {("max_connections", "medium")}),
    (facts([session(1, "idle in transaction", age=300)]), scope(), {("database:orders", "medium")}),
    (facts([session(1, "idle in transaction (aborted)", age=7200)]), scope(), {("database:orders", "high")}),
    (facts([session(1, "idle in transaction", age=300, db="a"), session(2, "idle in transaction", age=300, db="b")]),
     scope(), {("database:a", "medium"), ("database:b", "medium")}),
    (facts([session(1, "idle in transaction", age=300)]), scope(idle_in_transaction_warn="10m"), set()),
    (facts([], url="postgresql://h/db"), scope(url="postgresql://h/db"),
     {("url:connect_timeout", "medium"), ("url:keepalives_idle", "low")}),
    (facts([], url="postgresql://h/db?connect_timeout=0&keepalives=0"),
     scope(url="postgresql://h/db?connect_timeout=0&keepalives=0"),
     {("url:connect_timeout", "medium"), ("url:keepalives", "medium")}),
    (facts([session(1)]), scope(app_pool={"instances": 20, "max_size": 10}), {("app_pool", "high")}),
    (facts([session(1)]), scope(app_pool={"instances": 8, "max_size": 10}), {("app_pool", "medium")}),
    (facts([session(1)]), scope(app_pool={"instances": 8, "max_size": 10}, budget_warn=0.9), set()),
]


@pytest.mark.parametrize("f, s, expected", CASES)
def test_findings(f, s, expected):
    assert keys(run(f, s)) == expected


def test_capacity_evidence_counts_reserved_slots_and_applications():
    sessions = [session(i, app="api") for i in range(60)] + [session(100 + i, "active", app="worker") for i in range(25)]
    [finding] = run(facts(sessions, reserved=2))
    assert finding.evidence["usable"] == 95
    assert finding.evidence["in_use"] == 85
    assert finding.evidence["superuser_reserved_connections"] == 3
    assert finding.evidence["reserved_connections"] == 2
    assert finding.evidence["by_application"][0] == {"application_name": "api", "sessions": 60, "idle": 60}
    assert finding.evidence["by_application"][1] == {"application_name": "worker", "sessions": 25, "active": 25}
    assert "85 of 95" in finding.message


def test_budget_evidence_shows_the_arithmetic():
    [finding] = run(facts([session(1)]), scope(app_pool={"instances": 20, "max_size": 10}))
    assert finding.severity is Severity.HIGH
    assert finding.evidence["arithmetic"] == "20 instances × 10 = 200 connections > 97 usable"
    assert finding.evidence["demand"] == 200 and finding.evidence["usable"] == 97


def test_idle_in_transaction_fix_names_the_pids_and_is_never_applied_automatically():
    f = facts([session(41, "idle in transaction", age=600), session(42, "idle in transaction", age=900),
               session(43, "active")], database_timeouts={"orders": "10min"})
    [finding] = run(f)
    assert [s["pid"] for s in finding.evidence["sessions"]] == [42, 41]
    assert finding.evidence["oldest_idle_s"] == 900
    fix = finding.fix
    assert fix.safety is FixSafety.MANUAL
    assert "pg_terminate_backend" in fix.steps[0].command and "IN (42, 41)" in fix.steps[0].command
    assert "state LIKE 'idle in transaction%'" in fix.steps[0].command
    assert fix.steps[1].command == """ALTER DATABASE "orders" SET idle_in_transaction_session_timeout = '300000ms';"""
    assert fix.inverse[0].command == """ALTER DATABASE "orders" SET idle_in_transaction_session_timeout = '10min';"""


def test_idle_in_transaction_inverse_resets_when_the_database_had_no_setting():
    [finding] = run(facts([session(1, "idle in transaction", age=600)]))
    assert finding.fix.inverse[0].command == 'ALTER DATABASE "orders" RESET idle_in_transaction_session_timeout;'


def test_finding_ids_are_stable_and_distinct_per_setting():
    url = "postgresql://h/db"
    first = run(facts([], url=url), scope(url=url))
    second = run(facts([session(1)], url=url), scope(url=url))
    assert [f.id for f in first] == [f.id for f in second]
    assert len({f.id for f in first}) == 2


def test_url_finding_recommends_a_value_and_masks_the_password():
    url = "postgresql://app:hunter2-secret@h/db?keepalives_idle=60"
    [finding] = run(facts([], url=url), scope(url=url))
    assert finding.evidence["recommended"] == "10"
    assert "connect_timeout=10" in finding.message
    assert "hunter2-secret" not in str(finding.to_dict())


@pytest.mark.parametrize(
    "query, expected",
    [
        ("UPDATE users SET password = 's3cret' WHERE id = 1", "UPDATE users SET password = '…' WHERE id = 1"),
        ("SELECT 'it''s', 2", "SELECT '…', 2"),
        ("", ""),
    ],
)
def test_literals_are_redacted_from_query_text(query, expected):
    assert redact_literals(query) == expected


def test_capacity_thresholds_must_be_ordered():
    from checks.config import ConfigError

    with pytest.raises(ConfigError, match="capacity_warn must not exceed capacity_critical"):
        scope(capacity_warn=0.9, capacity_critical=0.5)
