"""The engine adapters: one per engine, registered in one place, and the one step renderer."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

import checks.adapters as adapters
from checks.adapters import EngineAdapter, adapter_for, adapter_for_language, step_text
from checks.fixes.script import migration_script
from checks.model import Engine, Finding, Fix, FixSafety, FixStep, Severity


def test_every_engine_has_one_adapter_with_its_own_step_language():
    found = {engine: adapter_for(engine) for engine in Engine}
    assert all(adapter.engine is engine for engine, adapter in found.items())
    assert adapter_for("postgres") is found[Engine.POSTGRES]  # a target's kind finds it too
    languages = [adapter.language for adapter in found.values()]
    assert len(set(languages)) == len(languages)
    assert all(adapter_for_language(adapter.language) is adapter for adapter in found.values())


def test_an_unknown_engine_or_language_says_so():
    with pytest.raises(LookupError, match="no adapter for engine 'cassandra'"):
        adapter_for("cassandra")
    with pytest.raises(LookupError, match="cql"):
        adapter_for_language("cql")


@pytest.mark.parametrize("step, text", [
    (FixStep("sql", "CREATE INDEX CONCURRENTLY i ON t (c)", transactional=False), "CREATE INDEX CONCURRENTLY i ON t (c);"),
    (FixStep("mongodb", {"dropIndexes": "orders", "index": "a_1"}, database="app"),
     'db.getSiblingDB("app").runCommand({"dropIndexes": "orders", "index": "a_1"});'),
    (FixStep("redis", ["SET", b"k\xff", "two words"]), 'SET "k\\xff" "two words"'),
])
def test_the_console_copies_exactly_what_the_cli_shows(step, text):
    from console.widgets.fix_view import steps_text

    assert step_text(step) == text
    assert steps_text([step]).splitlines()[-1] == text


class CqlAdapter(EngineAdapter):
    """A fourth engine, as a plugin would add it: nothing else changes."""

    engine = Engine.POSTGRES  # the enum is closed; what matters here is that nothing branches on it
    language = "cql"
    comment = "--"
    lexer = "sql"
    fence = "sql"

    def step_text(self, step: FixStep) -> str:
        return f"{step.command} USING TIMEOUT 5s;"

    def script_steps(self, steps: Sequence[FixStep]) -> list[str]:
        return ["CONSISTENCY QUORUM;", *super().script_steps(steps)]


def test_a_fourth_engine_is_one_registered_adapter(monkeypatch):
    monkeypatch.setitem(adapters.ADAPTERS, "cassandra", f"{__name__}:CqlAdapter")
    adapters.forget_adapters()
    try:
        step = FixStep("cql", "DROP INDEX ks.i")
        assert step_text(step) == "DROP INDEX ks.i USING TIMEOUT 5s;"
        fix = Fix(summary="drop", safety=FixSafety.SAFE, steps=(step,))
        finding = Finding(id="f1", check="cql.x", severity=Severity.LOW, target="c", object="ks.i", title="t",
                          message="m", fix=fix)
        script = migration_script("cassandra", "c", "cql://h", "cql.x", [finding], generated_at="now", version="1")
        assert script.splitlines()[-2:] == ["CONSISTENCY QUORUM;", "DROP INDEX ks.i USING TIMEOUT 5s;"]
    finally:
        adapters.forget_adapters()
