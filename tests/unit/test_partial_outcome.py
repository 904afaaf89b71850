"""The `partial` outcome without a server: a check that says its work was cut short
(Scope.skipped) is partial with what it skipped, its findings still count, the gate fails on it
unless --allow-partial, and the exporter says so. (The real-server cases: tests/integration/test_partial.py.)"""

from __future__ import annotations

import asyncio
import json
import time

import jsonschema

from checks.model import Finding, Severity
from checks.registry import Registry
from checks.runner import Runner
from checks.suppressions import gated
from console.exporter import FleetCollector, TargetResult
from console.formats import junit_format, markdown_format, sarif_format
from console.gate import exit_code
from tests import support
from tests.unit.test_formats_gate import SCHEMA

from checks.contract import Check


class CutShort(Check):
    id = "redis.test-cut-short"
    engine = "redis"
    title = "cut short"
    severity = Severity.LOW
    rationale = "A test check."
    runs_when_unreachable = True  # no server needed

    async def gather(self, session, scope):
        scope.skipped("db 0: 900 of 1,000 keys", "scan_limit = 100 keys reached")
        return None

    def evaluate(self, facts, scope) -> list[Finding]:
        scope.skipped("pattern user:*", "sample cut-off")  # evaluate may say so too
        return [self.finding(scope, object="tiny", title="a low finding", message="ran")]


class Whole(CutShort):
    id = "redis.test-whole"

    async def gather(self, session, scope):
        return None

    def evaluate(self, facts, scope) -> list[Finding]:
        return []


def _report():
    registry = Registry()
    registry.add(CutShort, "test")
    registry.add(Whole, "test")
    settings = support.settings_for(down={"kind": "redis", "url": f"redis://127.0.0.1:{support.refused_port()}/0",
                                          "timeout": 1})
    return settings, asyncio.run(Runner(settings, registry).run())


def test_a_check_that_says_it_was_cut_short_is_partial_and_its_findings_count():
    _, report = _report()
    rows = {r["check"]: r for r in report.checks}
    assert rows["redis.test-cut-short"]["outcome"] == "partial"
    assert rows["redis.test-cut-short"]["skipped"] == [
        {"what": "db 0: 900 of 1,000 keys", "why": "scan_limit = 100 keys reached"},
        {"what": "pattern user:*", "why": "sample cut-off"}]
    assert rows["redis.test-whole"]["outcome"] == "ok" and "skipped" not in rows["redis.test-whole"]
    assert [f.check for f in report.findings] == ["redis.test-cut-short"]
    assert report.errors == []
    assert json.loads(json.dumps(report.to_dict()))["checks"] == report.checks


def test_the_gate_fails_on_partial_whatever_fail_on_unless_allowed():
    _, report = _report()
    for fail_on in ("never", "critical", "high"):
        assert exit_code(report, fail_on) == 1
        assert exit_code(report, fail_on, allow_partial=True) == 0
    assert exit_code(report, "low", allow_partial=True) == 1  # the finding itself still gates


def test_formats_say_partial_and_sarif_stays_valid():
    _, report = _report()
    strict = gated(report, fail_on="never")
    doc = json.loads(sarif_format.render(strict))
    jsonschema.Draft4Validator(SCHEMA).validate(doc)
    [invocation] = doc["runs"][0]["invocations"]
    assert invocation["executionSuccessful"] is False
    assert "partial: not examined: db 0: 900 of 1,000 keys" in invocation["toolExecutionNotifications"][0]["message"]["text"]
    assert 'type="partial"' in junit_format.render(strict)
    assert "the gate fails" in markdown_format.render(strict)
    allowed = gated(report, fail_on="never", allow_partial=True)
    doc = json.loads(sarif_format.render(allowed))
    jsonschema.Draft4Validator(SCHEMA).validate(doc)
    assert doc["runs"][0]["invocations"][0]["executionSuccessful"] is True
    assert doc["runs"][0]["invocations"][0]["toolExecutionNotifications"][0]["level"] == "warning"
    assert 'type="partial"' not in junit_format.render(allowed)
    assert "the gate passes" in markdown_format.render(allowed)


def test_the_exporter_counts_partial_as_failed():
    settings, report = _report()
    result = TargetResult(report, time.time(), time.monotonic())
    metrics = {m.name: m for m in FleetCollector({"down": result}, settings, finding_ids=False).collect()}
    outcome = {(s.labels["check"], s.labels["outcome"]): s.value for s in metrics["dbvitals_check_outcome"].samples}
    # Each check's one outcome, 1; no zero-filled series for the outcomes that did not happen.
    assert outcome == {("redis.test-cut-short", "partial"): 1, ("redis.test-whole", "ok"): 1}
    failed = {s.labels["check"]: s.value for s in metrics["dbvitals_check_failed"].samples}
    assert failed == {"redis.test-cut-short": 1, "redis.test-whole": 0}
