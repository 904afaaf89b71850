"""The engine adapters: one per registered engine, found by entry point, and the one step renderer."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import pytest

from checks.config import TargetBase, config_from_dict
from checks.engines import EngineAdapter, adapter_for, adapter_for_language, engine_problems, engines, forget_adapters
from checks.engines import step_text
from checks.fixes.script import migration_script
from checks.model import Finding, Fix, FixSafety, FixStep, Severity


def test_every_engine_has_one_adapter_with_its_own_step_language():
    found = engines()
    assert {"postgres", "mongodb", "redis"} <= set(found)
    assert all(adapter.kind == kind for kind, adapter in found.items())
    assert adapter_for("postgres") is found["postgres"]  # a target's kind finds it
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


class CassandraTarget(TargetBase):
    kind: Literal["cassandra"]


class CqlAdapter(EngineAdapter):
    """A fourth engine, as a package would add it: nothing else changes."""

    kind = "cassandra"
    target_model = CassandraTarget
    language = "cql"
    comment = "--"
    lexer = "sql"
    fence = "sql"

    def step_text(self, step: FixStep) -> str:
        return f"{step.command} USING TIMEOUT 5s;"

    def script_steps(self, steps: Sequence[FixStep]) -> list[str]:
        return ["CONSISTENCY QUORUM;", *super().script_steps(steps)]


def _install(site: Path, name: str, entry: str) -> None:
    """A distribution's metadata on sys.path: what `pip install` of an engine package leaves."""
    info = site / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[dbvitals.engines]\n{entry}\n", encoding="utf-8")


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    forget_adapters()
    yield tmp_path
    monkeypatch.undo()
    forget_adapters()


def test_a_fourth_engine_is_one_entry_point(site):
    _install(site, "dbvitals_cql", f"cassandra = {__name__}:CqlAdapter")
    forget_adapters()
    assert isinstance(adapter_for("cassandra"), CqlAdapter)
    step = FixStep("cql", "DROP INDEX ks.i")
    assert step_text(step) == "DROP INDEX ks.i USING TIMEOUT 5s;"
    fix = Fix(summary="drop", safety=FixSafety.SAFE, steps=(step,))
    finding = Finding(id="f1", check="cassandra.x", severity=Severity.LOW, target="c", object="ks.i", title="t",
                      message="m", fix=fix)
    script = migration_script("cassandra", "c", "cql://h", "cassandra.x", [finding], generated_at="now", version="1")
    assert script.splitlines()[-2:] == ["CONSISTENCY QUORUM;", "DROP INDEX ks.i USING TIMEOUT 5s;"]
    # The config takes its target kind from the registered engine: no edit of checks.config.
    settings = config_from_dict({"targets": {"ring": {"kind": "cassandra", "url": "cql://h:9042"}}})
    assert isinstance(settings.targets["ring"], CassandraTarget)


@pytest.mark.parametrize("entry, problem", [
    ("cassandra = dbvitals_no_such_module:Engine", "failed to load: ModuleNotFoundError"),
    ("cassandra = checks.model:Finding", "is not a dbvitals EngineAdapter"),
    (f"scylla = {__name__}:CqlAdapter", "the adapter's kind must be 'scylla'"),
    ("postgres = checks.postgres:ENGINE", "engine postgres is already registered"),
])
def test_a_broken_engine_is_reported_and_the_others_still_load(site, entry, problem):
    _install(site, "dbvitals_broken", entry)
    forget_adapters()
    assert {"postgres", "mongodb", "redis"} <= set(engines())
    assert any(problem in p for p in engine_problems()), engine_problems()
