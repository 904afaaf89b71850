"""The demo end to end: disposable servers, every seeded problem found, safe fixes applied and gone."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from checks.config import load_config
from checks.registry import load_registry
from checks.runner import Runner
from checks.fixes import Journal, apply_fix, plan_fix
from checks.model import FixSafety
from console.commands.demo import create_demo
from console.demo.seed import SEEDED_PROBLEMS


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    playground, config_path = create_demo(tmp_path_factory.mktemp("demo") / "playground")
    try:
        yield playground, config_path
    finally:
        playground.stop()


def _report(settings, registry):
    return asyncio.run(Runner(settings, registry).run())


def test_every_seeded_problem_is_found_and_safe_fixes_make_them_go(demo, tmp_path):
    playground, config_path = demo
    settings = load_config(config_path)
    # The demo journals into its own directory, never into the user's journal.
    assert settings.journal == playground.directory / "journal.jsonl"
    registry = load_registry()
    report = _report(settings, registry)
    assert report.errors == []
    assert {t.state.value for t in report.targets} == {"connected"}
    found = {(f.check, f.object) for f in report.findings}
    missing = [
        (check, fragment) for check, fragment in SEEDED_PROBLEMS
        if not any(c == check and fragment in obj for c, obj in found)
    ]
    assert missing == [], f"seeded problems not found: {missing}"

    safe = [f for f in report.findings if f.fix is not None and f.fix.safety is FixSafety.SAFE]
    assert {f.check for f in safe} >= {"postgres.fk-missing-index", "postgres.duplicate-index"}
    journal = Journal(tmp_path / "journal.jsonl")

    async def apply_all():
        outcomes = []
        for finding in safe:
            plan = await plan_fix(settings, registry, finding)
            outcomes.append((finding, await apply_fix(settings, registry, plan, journal=journal)))
        return outcomes

    outcomes = asyncio.run(apply_all())
    assert [(f.check, o.outcome) for f, o in outcomes] == [(f.check, "fixed") for f in safe]
    after = {f.id for f in _report(settings, registry).findings}
    assert not after & {f.id for f in safe}
    assert len(journal.entries()) == len(safe)


def test_headless_demo_command_prints_a_report_and_removes_its_servers(tmp_path):
    directory = tmp_path / "headless"
    result = subprocess.run(
        [sys.executable, "-m", "console", "demo", "--headless", "--format", "json", "--dir", str(directory)],
        capture_output=True, text=True, timeout=300,
    )
    # The demo's seeded problems fail the gate as `dbvitals check` would (the Markdown
    # report says so too): exit 1, not 0.
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["schema"] == "dbvitals.report/1"
    checks = {f["check"] for f in report["findings"]}
    assert {"postgres.fk-type-mismatch", "mongodb.ttl-coverage", "redis.ttl-coverage"} <= checks
    assert not directory.exists()
