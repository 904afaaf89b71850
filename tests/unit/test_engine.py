"""The registry and the runner: plugins by entry points, broken plugins reported, a check that
raises or overruns its time limit becomes an error entry while the others go on."""

from __future__ import annotations

import asyncio
from importlib.metadata import EntryPoint

import pytest

from checks.engine import ENTRY_POINT_GROUP, Check, Registry, Runner, UsageError, load_registry
from checks.model import Engine, Finding, Severity, TargetState
from tests import support


def _point(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)


def test_installed_example_plugin_is_discovered():
    registry = load_registry()
    plugin = registry.checks["redis.example-marker"]
    assert plugin.__module__ == "dbvitals_example_plugin"
    assert registry.problems == []


@pytest.mark.parametrize(
    "value, problem",
    [
        ("dbvitals_no_such_module:Thing", "failed to load: ModuleNotFoundError"),
        ("checks.model:NoSuchAttribute", "failed to load: AttributeError"),
        ("checks.model:Finding", "is not a dbvitals Check class"),
    ],
)
def test_broken_entry_point_is_reported_not_raised(value, problem):
    registry = load_registry([_point("broken", value), _point("redis", "checks.redis:CHECKS")])
    [reported] = registry.problems
    assert reported.startswith(f"plugin broken = {value}") and problem in reported
    assert "redis.connection" in registry.checks and "redis.pool" in registry.checks


def test_entry_point_may_name_a_module_with_checks():
    registry = load_registry([_point("pg", "checks.postgres")])
    assert {"postgres.connection", "postgres.pool"} <= set(registry.checks)


def test_a_plugin_cannot_take_a_built_in_id():
    class Impostor(Check):
        id = "redis.pool"
        engine = Engine.REDIS
        title = "impostor"
        severity = Severity.INFO
        rationale = "none"

    registry = load_registry([_point("redis", "checks.redis:CHECKS")])
    registry.add(Impostor, "evil = evil:Impostor")
    assert registry.checks["redis.pool"] is not Impostor
    assert registry.problems == ["plugin evil = evil:Impostor: check id redis.pool is already registered"]


@pytest.mark.parametrize(
    "patterns, expected",
    [
        (["redis.pool"], {"redis.pool"}),
        (["*.pool"], {"postgres.pool", "mongodb.pool", "redis.pool"}),
        (["redis.*", "postgres.connection"], None),
    ],
)
def test_select_by_id_and_glob(patterns, expected):
    registry = load_registry()
    chosen = {c.id for c in registry.select(patterns)}
    if expected is None:
        assert "postgres.connection" in chosen and all(c.startswith("redis.") or c == "postgres.connection"
                                                       for c in chosen)
    else:
        assert chosen == expected


def test_a_pattern_that_matches_nothing_is_a_usage_error():
    with pytest.raises(UsageError, match='--check "redis.nope" matches no check'):
        load_registry().select(["redis.*", "redis.nope"])


# --- The runner -----------------------------------------------------------------------------------

SECRET = "runner-s3cret-pw"


class TinyCheck(Check):
    engine = Engine.REDIS
    severity = Severity.LOW
    rationale = "A test check."
    runs_when_unreachable = True  # the target below is never reachable: no server needed

    async def gather(self, session, scope):
        return None

    def evaluate(self, facts, scope) -> list[Finding]:
        return [self.finding(scope, object="tiny", title=self.title, message="ran")]


class Fine(TinyCheck):
    id = "redis.test-fine"
    title = "fine"


class Raises(TinyCheck):
    id = "redis.test-raises"
    title = "raises"

    async def gather(self, session, scope):
        raise RuntimeError(f"boom while using redis://app:{SECRET}@cache/0 and {SECRET}")


class Hangs(TinyCheck):
    id = "redis.test-hangs"
    title = "hangs"

    async def gather(self, session, scope):
        await asyncio.sleep(60)


class NeedsConnection(TinyCheck):
    id = "redis.test-needs-connection"
    title = "needs a connection"
    runs_when_unreachable = False


def _registry(*checks: type[Check]) -> Registry:
    registry = Registry()
    for check in checks:
        registry.add(check, "test")
    return registry


def test_raising_and_overrunning_checks_become_errors_and_the_others_go_on():
    settings = support.settings_for(down={
        "kind": "redis", "url": f"redis://app:{SECRET}@127.0.0.1:{support.refused_port()}/0",
        "timeout": 1, "check_timeout": 0.3,
    })
    report = asyncio.run(Runner(settings, _registry(Fine, Raises, Hangs, NeedsConnection)).run())
    assert report.targets[0].state is TargetState.REFUSED
    assert [f.check for f in report.findings] == ["redis.test-fine"]
    errors = {e.check: e for e in report.errors}
    assert set(errors) == {"redis.test-raises", "redis.test-hangs"}
    assert errors["redis.test-hangs"].kind == "timeout"
    assert errors["redis.test-hangs"].message == "did not finish within 0.3s"
    assert errors["redis.test-raises"].kind == "error"
    assert errors["redis.test-raises"].message.startswith("RuntimeError: boom")
    assert SECRET not in str(report.to_dict())
    outcomes = {c["check"]: c["outcome"] for c in report.checks}
    assert outcomes == {"redis.test-fine": "findings", "redis.test-raises": "error", "redis.test-hangs": "timeout"}
    assert report.duration_ms < 5000


def test_disabled_check_does_not_run():
    settings = support.settings_for(down={
        "kind": "redis", "url": f"redis://127.0.0.1:{support.refused_port()}/0", "timeout": 1,
        "checks": {"redis.test-raises": {"enabled": False}},
    })
    report = asyncio.run(Runner(settings, _registry(Fine, Raises)).run())
    assert [c["check"] for c in report.checks] == ["redis.test-fine"]
    assert report.errors == []


def test_unknown_target_is_a_usage_error():
    settings = support.settings_for(a={"kind": "redis", "url": "redis://127.0.0.1:1/0"})
    with pytest.raises(UsageError, match=r"unknown target b \(configured: a\)"):
        Runner(settings, _registry(Fine), targets=["b"])
