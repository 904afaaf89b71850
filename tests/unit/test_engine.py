"""The registry and the runner: plugins by entry points, broken plugins reported, a check that
raises or overruns its time limit becomes an error entry while the others go on."""

from __future__ import annotations

import asyncio
from importlib.metadata import EntryPoint

import pytest

from checks.catalog_cache import ENTRY_POINT_GROUP
from checks.contract import Check, Fact, FactContext
from checks.registry import Registry, UsageError, load_registry
from checks.runner import Runner
from checks.model import Finding, Severity, TargetState
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
    registry = load_registry([_point("broken", value), _point("redis", "checks.redis.pack:CHECKS")])
    [reported] = registry.problems
    assert reported.startswith(f"plugin broken = {value}") and problem in reported
    assert "redis.connection" in registry.checks and "redis.pool" in registry.checks


def test_entry_point_may_name_a_module_with_checks():
    registry = load_registry([_point("pg", "checks.postgres.pack")])
    assert {"postgres.connection", "postgres.pool"} <= set(registry.checks)


def test_a_plugin_cannot_take_a_built_in_id():
    class Impostor(Check):
        id = "redis.pool"
        engine = "redis"
        title = "impostor"
        severity = Severity.INFO
        rationale = "none"

    registry = load_registry([_point("redis", "checks.redis.pack:CHECKS")])
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
    engine = "redis"
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
    assert report.duration_ms < 30_000  # Hangs sleeps 60 s: not waited for; room for a loaded machine


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


# --- Shared facts ------------------------------------------------------------------------------------

class Counted(Fact[dict]):
    """A fact that counts its computations and tells which checks asked for it."""

    id = "redis.test-counted"
    engine = "redis"
    description = "test fact"
    computed: list[tuple[str, ...]] = []

    async def compute(self, session, context: FactContext) -> dict:
        Counted.computed.append(tuple(r.check.id for r in context.requests))
        await asyncio.sleep(0.05)  # both readers are waiting by now
        return {"asked_by": [r.check.id for r in context.requests]}


class ReadsFact(TinyCheck):
    id = "redis.test-reads-fact"
    title = "reads the fact"
    needs = (Counted,)

    async def gather(self, session, scope):
        return await self.fact(Counted, session, scope)

    def evaluate(self, facts, scope) -> list[Finding]:
        return [self.finding(scope, object=",".join(facts["asked_by"]), title=self.title, message="ran")]


class AlsoReadsFact(ReadsFact):
    id = "redis.test-also-reads-fact"


class ReadsUndeclared(TinyCheck):
    id = "redis.test-reads-undeclared"
    title = "reads a fact it did not declare"

    async def gather(self, session, scope):
        return await self.fact(Counted, session, scope)


def _down(**extra) -> dict:
    return {"kind": "redis", "url": f"redis://127.0.0.1:{support.refused_port()}/0", "timeout": 1, **extra}


def test_a_fact_is_computed_once_per_target_for_every_check_that_declared_it():
    Counted.computed = []
    settings = support.settings_for(a=_down(), b=_down())
    report = asyncio.run(Runner(settings, _registry(ReadsFact, AlsoReadsFact)).run())
    assert report.errors == []
    assert sorted(Counted.computed) == [("redis.test-reads-fact", "redis.test-also-reads-fact")] * 2
    assert {f.object for f in report.findings} == {"redis.test-reads-fact,redis.test-also-reads-fact"}
    asyncio.run(Runner(settings, _registry(ReadsFact, AlsoReadsFact), targets=["a"]).run())
    assert len(Counted.computed) == 3  # a new run reads afresh: nothing is cached across runs


def test_a_fact_not_declared_is_an_error_of_that_check():
    report = asyncio.run(Runner(support.settings_for(a=_down()), _registry(ReadsUndeclared)).run())
    [error] = report.errors
    assert "reads the fact redis.test-counted without declaring it in `needs`" in error.message


def test_fact_options_are_validated_like_check_options():
    from checks.config import ConfigError

    registry = _registry(ReadsFact)
    with pytest.raises(ConfigError, match=r'targets.a.facts."redis.test-nope": no such fact'):
        Runner(support.settings_for(a=_down(facts={"redis.test-nope": {}})), registry)
    with pytest.raises(ConfigError, match=r'targets.a.facts."redis.test-counted": x: unknown option'):
        Runner(support.settings_for(a=_down(facts={"redis.test-counted": {"x": 1}})), registry)


# --- The server budget -----------------------------------------------------------------------------

@pytest.mark.parametrize(
    "url, kind, key",
    [
        ("postgresql://u:pw@DB.example:5432/orders", "postgres", "postgres://db.example:5432"),
        ("postgresql://u@db.example/billing?sslmode=require", "postgres", "postgres://db.example:5432"),
        ("mongodb://a:27017,b:27018/app", "mongodb", "mongodb://a:27017,b:27018"),
        ("mongodb://h2,h1/app", "mongodb", "mongodb://h1:27017,h2:27017"),
        ("redis://:pw@[::1]:6380/3", "redis", "redis://[::1]:6380"),
        ("redis://cache/1", "redis", "redis://cache:6379"),
        ("unix:///run/redis.sock?db=2", "redis", "redis:///run/redis.sock"),
    ],
)
def test_targets_of_one_server_share_a_key_without_credentials_or_database(url, kind, key):
    from checks.budget import server_key

    settings = support.settings_for(t={"kind": kind, "url": url})
    assert server_key(settings.targets["t"]) == key


class Occupies(TinyCheck):
    """Holds its target's session a moment, noting how many targets of its server do at once."""

    id = "redis.test-occupies"
    title = "occupies"
    active: dict[int, int] = {}
    peak: dict[int, int] = {}

    async def gather(self, session, scope):
        port = int(scope.config.url.rsplit(":", 1)[1].split("/")[0])
        Occupies.active[port] = Occupies.active.get(port, 0) + 1
        Occupies.peak[port] = max(Occupies.peak.get(port, 0), Occupies.active[port])
        await asyncio.sleep(0.05)
        Occupies.active[port] -= 1


def test_targets_sharing_a_server_stay_within_its_budget_and_other_servers_run_alongside():
    Occupies.active, Occupies.peak = {}, {}
    shared, other = support.refused_port(), support.refused_port()
    targets = {f"t{i}": {"kind": "redis", "url": f"redis://127.0.0.1:{shared}/{i}", "timeout": 1} for i in range(8)}
    targets |= {f"o{i}": {"kind": "redis", "url": f"redis://127.0.0.1:{other}/{i}", "timeout": 1,
                          "max_sessions": 1} for i in range(3)}
    settings = support.config_from_dict({"targets": targets, "max_sessions_per_server": 3})
    report = asyncio.run(Runner(settings, _registry(Occupies)).run())
    assert report.errors == [] and len(report.targets) == 11
    assert Occupies.peak == {shared: 3, other: 1}
