"""redis.pool's evaluate as tables of facts, including managed Redis where CONFIG is denied."""

from __future__ import annotations

import pytest

from checks.config import config_from_dict
from checks.contract import Scope, resolve_options
from checks.model import FixSafety, Severity, TargetState, TargetStatus
from checks.redis.pool import RedisClientInfo, RedisPool, RedisPoolFacts, url_params

GOOD_URL = "redis://cache.internal:6379/0?socket_timeout=2&socket_connect_timeout=2"
DEFAULT_CONFIG = {"maxclients": "10000", "timeout": "0", "tcp-keepalive": "300"}


def scope(url: str = GOOD_URL, app_pool: dict | None = None, **options) -> Scope:
    target = {"kind": "redis", "url": url}
    if app_pool:
        target["app_pool"] = app_pool
    if options:
        target["checks"] = {"redis.pool": options}
    config = config_from_dict({"targets": {"cache": target}}).targets["cache"]
    status = TargetStatus("cache", "redis", TargetState.CONNECTED, url=config.masked_url)
    return Scope("cache", config, resolve_options(RedisPool, "cache", config), status)


def client(n: int, idle: int = 0, age: int = 100_000, flags: str = "N", name: str = "api",
           cmd: str = "get") -> RedisClientInfo:
    return RedisClientInfo(addr=f"10.0.0.{n % 250}:{40000 + n}", name=name, age_s=age, idle_s=idle, flags=flags,
                           cmd=cmd)


def facts(clients: list[RedisClientInfo] | None = None, *, config: dict | None = None, maxclients: int = 10000,
          connected: int | None = None, rejected: int = 0, url: str = GOOD_URL, config_error: str | None = None,
          clients_error: str | None = None) -> RedisPoolFacts:
    clients = [client(i) for i in range(5)] if clients is None and clients_error is None else clients
    return RedisPoolFacts(
        connected_clients=connected if connected is not None else len(clients or []),
        blocked_clients=0, maxclients=maxclients, rejected_connections=rejected, uptime_s=7200,
        config=DEFAULT_CONFIG if config is None else config, config_error=config_error,
        clients=clients, clients_error=clients_error, url_params=url_params(url),
    )


def run(f: RedisPoolFacts, s: Scope | None = None):
    return RedisPool().evaluate(f, s or scope())


def keys(findings) -> set[tuple[str, str]]:
    return {(f.object, f.severity.value) for f in findings}


LONG_IDLE = [client(i, idle=7200) for i in range(60)]

HEALTHY = [
    pytest.param(facts(), scope(), id="few-busy-clients"),
    pytest.param(facts([client(i, idle=7200) for i in range(49)]), scope(), id="49-idle-below-threshold"),
    pytest.param(facts(LONG_IDLE, config={**DEFAULT_CONFIG, "timeout": "300"}), scope(), id="timeout-set"),
    pytest.param(facts([client(i, idle=7200, flags="P") for i in range(60)]), scope(), id="pubsub-exempt"),
    pytest.param(facts([client(i, idle=7200, flags="b") for i in range(60)]), scope(), id="blocked-exempt"),
    pytest.param(facts(connected=7900), scope(), id="79%-in-use"),
    pytest.param(facts(), scope(app_pool={"instances": 10, "max_size": 50}), id="budget-fits"),
    pytest.param(facts(), scope(app_pool={"instances": 10}), id="budget-without-any-pool-size"),
    pytest.param(facts(url="redis://h:6379/0"), scope(url="redis://h:6379/0", check_url=False), id="url-not-judged"),
]


@pytest.mark.parametrize("f, s", HEALTHY)
def test_healthy_facts_yield_nothing(f, s):
    assert run(f, s) == []


CASES = [
    (facts(connected=8000), scope(), {("maxclients", "medium")}),
    (facts(connected=9600), scope(), {("maxclients", "high")}),
    (facts(rejected=12), scope(), {("maxclients", "medium")}),
    (facts(LONG_IDLE), scope(), {("timeout", "medium")}),
    (facts([client(i, idle=120) for i in range(6)]), scope(idle_client_age="60s", idle_clients_warn=5),
     {("timeout", "medium")}),
    (facts(config={**DEFAULT_CONFIG, "tcp-keepalive": "0"}), scope(), {("tcp-keepalive", "low")}),
    (facts(url="redis://h:6379/0"), scope(url="redis://h:6379/0"),
     {("url:socket_timeout", "medium"), ("url:socket_connect_timeout", "medium")}),
    (facts(url="redis://h:6379/0?socket_timeout=0&socket_connect_timeout=1"),
     scope(url="redis://h:6379/0?socket_timeout=0&socket_connect_timeout=1"), {("url:socket_timeout", "medium")}),
    (facts(), scope(app_pool={"instances": 200, "max_size": 100}), {("app_pool", "high")}),
    (facts(url=GOOD_URL + "&max_connections=900"), scope(url=GOOD_URL + "&max_connections=900",
                                                         app_pool={"instances": 10}), {("app_pool", "medium")}),
    # Managed Redis: CONFIG denied. Idle clients still show (so timeout is 0 or huge), without a fix.
    (facts(LONG_IDLE, config={}, config_error="NoPermissionError: no permissions to run 'config|get'"), scope(),
     {("config", "info"), ("timeout", "medium")}),
    (facts(clients_error="NoPermissionError: no permissions"), scope(), {("config", "info")}),
]


@pytest.mark.parametrize("f, s, expected", CASES)
def test_findings(f, s, expected):
    assert keys(run(f, s)) == expected


def test_idle_clients_fix_sets_timeout_and_restores_it():
    # Idle equal to age with a last command is a client that did one thing in its first second: used.
    idle = LONG_IDLE + [client(100 + i, idle=9000, age=9000, name="", cmd="NULL") for i in range(5)] + [
        client(200 + i, idle=9000, age=9000, name="", cmd="hello") for i in range(2)]
    [finding] = run(facts(idle))
    assert finding.evidence["idle_clients"] == 67
    assert finding.evidence["never_used"] == 5
    assert "5 never sent a command" in finding.message
    assert finding.evidence["oldest"][0]["idle_s"] == 9000
    fix = finding.fix
    assert fix.safety is FixSafety.UNSAFE
    assert fix.steps[0].language == "redis"
    assert fix.steps[0].command == ["CONFIG", "SET", "timeout", "300"]
    assert fix.inverse[0].command == ["CONFIG", "SET", "timeout", "0"]


def test_idle_clients_without_readable_config_have_no_fix():
    findings = run(facts(LONG_IDLE, config={}, config_error="ResponseError: unknown command 'CONFIG'"))
    [idle] = [f for f in findings if f.object == "timeout"]
    assert idle.fix is None
    assert "unknown `timeout`" in idle.message
    [unknown] = [f for f in findings if f.object == "config"]
    assert unknown.evidence["unknown_settings"] == ["maxclients", "timeout", "tcp-keepalive"]


def test_tcp_keepalive_fix_is_safe_and_reversible():
    [finding] = run(facts(config={**DEFAULT_CONFIG, "tcp-keepalive": "0"}), scope(recommended_tcp_keepalive="60s"))
    assert finding.fix.safety is FixSafety.SAFE
    assert finding.fix.steps[0].command == ["CONFIG", "SET", "tcp-keepalive", "60"]
    assert finding.fix.inverse[0].command == ["CONFIG", "SET", "tcp-keepalive", "0"]


def test_capacity_evidence_groups_clients_by_name_and_host():
    clients = [client(1, name="worker")] * 3 + [client(2, name="api")] * 5
    [finding] = run(facts(clients, connected=8500, maxclients=10000))
    assert finding.evidence["by_name"][0] == {"name": "api", "clients": 5}
    assert finding.evidence["by_host"][0]["host"] in {"10.0.0.1", "10.0.0.2"}
    assert finding.severity is Severity.MEDIUM


def test_budget_uses_url_max_connections_when_no_pool_size_is_declared():
    url = GOOD_URL + "&max_connections=900"
    [finding] = run(facts(url=url), scope(url=url, app_pool={"instances": 12}))
    assert finding.evidence["pool_size_from"] == "URL max_connections"
    assert finding.evidence["arithmetic"] == "12 instances × 900 = 10800 connections > 10000 usable"
