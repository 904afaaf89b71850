"""The gate's report formats: SARIF 2.1.0 validated against the official schema, JUnit XML
parsed back, Markdown for a pull-request comment."""

from __future__ import annotations

import datetime as dt
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from checks.config import Suppression
from checks.registry import Registry
from checks.model import (
    CheckError, Finding, Fix, FixSafety, FixStep, Report, Severity, TargetState, TargetStatus,
)
from checks.suppressions import gated
from console.formats import render

SCHEMA = json.loads((Path(__file__).parents[1] / "data" / "sarif-schema-2.1.0.json").read_text())
TODAY = dt.date(2026, 6, 1)


def f(obj, severity, check="postgres.fk-missing-index", target="orders", fix=True):
    return Finding(
        id=f"{abs(hash((check, target, obj))) % 10**12:012d}", check=check, severity=severity, target=target,
        object=obj, title=f"No index on {obj}", message=f"{obj} | has *no* index <b>", evidence={"rows": 10_000,
        "when": dt.date(2026, 1, 1)},
        fix=Fix(summary="create it", safety=FixSafety.SAFE, lock="SHARE UPDATE EXCLUSIVE",
                steps=(FixStep("sql", f"CREATE INDEX CONCURRENTLY ON {obj} (c)", transactional=False),)) if fix else None,
    )


HIGH = f("public.orders", Severity.HIGH)
MEDIUM = f("public.items", Severity.MEDIUM)
KNOWN = f("public.legacy", Severity.CRITICAL, fix=False)
MUTED = f("cache:*", Severity.HIGH, check="redis.missing-ttl", target="cache")


def sample(**gate_options):
    report = Report(
        targets=[
            TargetStatus("orders", "postgres", TargetState.CONNECTED, 1.0),
            TargetStatus("cache", "redis", TargetState.CONNECTED, 1.0),
            TargetStatus("docs", "mongodb", TargetState.REFUSED, error="connection refused"),
        ],
        findings=[KNOWN, HIGH, MEDIUM, MUTED],
        errors=[CheckError("postgres.bloat", "orders", "timeout", "did not finish within 30s")],
        duration_ms=1234.0,
        checks=[
            {"target": "orders", "check": "postgres.fk-missing-index", "outcome": "findings", "findings": 3, "duration_ms": 12.0},
            {"target": "orders", "check": "postgres.bloat", "outcome": "timeout", "findings": 0, "duration_ms": 30000.0},
            {"target": "orders", "check": "postgres.connection", "outcome": "ok", "findings": 0, "duration_ms": 2.0},
            {"target": "cache", "check": "redis.missing-ttl", "outcome": "findings", "findings": 1, "duration_ms": 5.0},
            {"target": "docs", "check": "mongodb.connection", "outcome": "ok", "findings": 0, "duration_ms": 1.0},
        ],
    )
    suppressions = [
        Suppression(check="redis.*", target="cache", reason="cache keys are disposable"),
        Suppression(check="postgres.*", object="public.items", reason="ticket DB-12", expires=dt.date(2026, 5, 1)),
    ]
    return gated(report, suppressions, today=TODAY, **gate_options)


@pytest.fixture
def config_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "dbvitals.toml"
    path.write_text('theme = "dark"\n\n[targets.orders]\nkind = "postgres"\nurl = "postgresql://h/db"\n\n'
                    '[targets.cache]\nkind = "redis"\nurl = "redis://h/0"\n')
    return path


def registry():
    return Registry()  # no catalog: rules fall back to the findings' own titles


def test_sarif_is_valid_sarif_2_1_0(config_file):
    for options in ({}, {"baseline": "b.json", "known": [KNOWN.id]}):
        doc = json.loads(render(sample(config_path=str(config_file), **options), "sarif", registry=registry()))
        jsonschema.Draft4Validator(SCHEMA).validate(doc)


def test_sarif_results_rules_locations_and_suppressions(config_file):
    doc = json.loads(render(sample(config_path=str(config_file), baseline="b.json", known=[KNOWN.id]), "sarif",
                            registry=registry()))
    run = doc["runs"][0]
    rules = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert rules == sorted({"postgres.fk-missing-index", "redis.missing-ttl", "postgres.bloat"})
    by_object = {r["properties"]["object"]: r for r in run["results"]}
    assert by_object["public.orders"]["level"] == "error"
    assert by_object["public.items"]["level"] == "warning"  # its suppression expired: reported again
    assert by_object["public.orders"]["partialFingerprints"] == {"dbvitalsFindingId/v1": HIGH.id}
    assert by_object["public.legacy"]["baselineState"] == "unchanged"
    assert by_object["public.orders"]["baselineState"] == "new"
    assert by_object["cache:*"]["suppressions"] == [
        {"kind": "external", "status": "accepted", "justification": "cache keys are disposable"}]
    location = by_object["public.orders"]["locations"][0]
    assert location["physicalLocation"]["artifactLocation"] == {"uri": "dbvitals.toml", "uriBaseId": "SRCROOT"}
    assert location["physicalLocation"]["region"]["startLine"] == 3  # [targets.orders]
    assert by_object["cache:*"]["locations"][0]["physicalLocation"]["region"]["startLine"] == 7
    assert location["logicalLocations"][0]["fullyQualifiedName"] == "orders/public.orders"
    for result in run["results"]:
        assert run["tool"]["driver"]["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
    invocation = run["invocations"][0]
    assert invocation["executionSuccessful"] is False
    assert "postgres.bloat" in invocation["toolExecutionNotifications"][0]["message"]["text"]
    assert "expired on 2026-05-01" in invocation["toolConfigurationNotifications"][0]["message"]["text"]


def test_sarif_without_a_config_file_still_validates():
    doc = json.loads(render(sample(), "sarif", registry=registry()))
    jsonschema.Draft4Validator(SCHEMA).validate(doc)
    assert "physicalLocation" not in doc["runs"][0]["results"][0]["locations"][0]


def test_junit_parses_back_and_agrees_with_the_gate():
    root = ET.fromstring(render(sample(baseline="b.json", known=[KNOWN.id], fail_on="high"), "junit"))
    assert root.tag == "testsuites"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert list(suites) == ["orders", "cache", "docs"]
    cases = {c.get("name"): c for c in suites["orders"].findall("testcase")}
    failure = cases["postgres.fk-missing-index"].find("failure")
    assert failure is not None and failure.get("type") == "high"
    assert HIGH.id in failure.text and KNOWN.id not in failure.text  # known is in the baseline
    assert "(in the baseline)" in cases["postgres.fk-missing-index"].find("system-out").text
    assert cases["postgres.bloat"].find("error").get("type") == "timeout"
    assert cases["postgres.connection"].find("failure") is None
    assert suites["cache"].find("testcase").find("failure") is None  # suppressed
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("5", "1", "1")
    assert suites["orders"].get("failures") == "1" and suites["orders"].get("tests") == "3"
    props = {p.get("name"): p.get("value") for p in suites["docs"].find("properties")}
    assert props["state"] == "refused"


def test_markdown_leads_with_the_verdict_and_escapes_names():
    text = render(sample(baseline="b.json", known=[KNOWN.id]), "markdown")
    assert text.startswith("## ❌ dbvitals: the gate fails")
    assert "> [!WARNING]" in text and "expired on 2026-05-01" in text
    assert "### Failing the gate" in text
    failing_section = text.split("### Failing the gate")[1].split("<details>\n<summary>Other")[0]
    assert HIGH.id in failing_section and KNOWN.id not in failing_section
    assert "`postgres.bloat`: timeout" in text
    assert "<summary>Suppressed: 1</summary>" in text and "cache keys are disposable" in text
    assert "public.orders" in text and "\\*no\\* index &lt;b&gt;" in text  # markdown and HTML escaped
    assert "```sql\nCREATE INDEX CONCURRENTLY ON public.orders (c);\n```" in text


def test_markdown_passes_when_nothing_fails():
    clean = gated(Report(targets=[TargetStatus("orders", "postgres", TargetState.CONNECTED)], findings=[],
                         errors=[], duration_ms=5.0))
    assert render(clean, "markdown").startswith("## ✅ dbvitals: the gate passes")


def test_markdown_never_suggests_dbvitals_fix_for_a_manual_fix():
    manual = Finding(
        id="0000manual01", check="postgres.fk-type-mismatch", severity=Severity.HIGH, target="orders",
        object="public.votes.post_id", title="votes.post_id type differs", message="int vs bigint",
        fix=Fix(summary="migrate the column", safety=FixSafety.MANUAL,
                steps=(FixStep("sql", "ALTER TABLE public.votes ALTER post_id TYPE bigint"),)),
    )
    report = gated(Report(targets=[TargetStatus("orders", "postgres", TargetState.CONNECTED)],
                          findings=[manual, HIGH], errors=[], duration_ms=5.0))
    text = render(report, "markdown")
    assert f"`dbvitals fix {manual.id}`" not in text and "manual: apply by hand" in text
    assert f"`dbvitals fix {HIGH.id}`" in text
