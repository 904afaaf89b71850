"""`dbvitals check` as a pre-deploy gate on a real PostgreSQL: the SARIF, JUnit and Markdown
reports, baselines, and suppressions that expire."""

from __future__ import annotations

import datetime as dt
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

import console.formats.sarif_format
import console.runtime
from checks.model import finding_id
from console.cli import main
from tests.data import fix_checks

SCHEMA = json.loads((Path(__file__).parents[1] / "data" / "sarif-schema-2.1.0.json").read_text())
MISSING = finding_id("test.pg-missing-index", "pg", "public.orders.customer_id")
NARROW = finding_id("test.pg-narrow-column", "pg", "public.orders.note")
MANUAL = finding_id("test.pg-manual", "pg", "public.orders")


@pytest.fixture
def gate(pg_db, tmp_path, monkeypatch):
    reg = fix_checks.registry()
    for where in (console.runtime, console.formats.sarif_format):  # the modules that load the registry
        monkeypatch.setattr(where, "load_registry", lambda *a, **k: reg)
    monkeypatch.chdir(tmp_path)
    pg_db.execute("CREATE TABLE orders (id int PRIMARY KEY, customer_id int, note varchar(10))")

    def config(*suppressions: str) -> list[str]:
        text = f'[targets.pg]\nkind = "postgres"\nurl = "{pg_db.url}"\n' + "".join(suppressions)
        (tmp_path / "dbvitals.toml").write_text(text)
        return ["--config", "dbvitals.toml", "--check", "test.pg-*", "--fail-on", "low"]

    config.db = pg_db
    return config


def test_sarif_report_is_valid_and_points_at_the_target_in_the_config(gate, capsys):
    assert main(["check", "--format", "sarif", *gate()]) == 1
    doc = json.loads(capsys.readouterr().out)
    jsonschema.Draft4Validator(SCHEMA).validate(doc)
    results = {r["partialFingerprints"]["dbvitalsFindingId/v1"]: r for r in doc["runs"][0]["results"]}
    assert set(results) == {MISSING, NARROW, MANUAL}
    location = results[MISSING]["locations"][0]["physicalLocation"]
    assert location == {"artifactLocation": {"uri": "dbvitals.toml", "uriBaseId": "SRCROOT"}, "region": {"startLine": 1}}
    rules = {r["id"]: r for r in doc["runs"][0]["tool"]["driver"]["rules"]}
    assert rules["test.pg-missing-index"]["shortDescription"]["text"] == "Foreign key column without an index"


def test_junit_report_parses_back(gate, tmp_path, capsys):
    assert main(["check", "--format", "junit", "--output", "report.xml", *gate()]) == 1
    root = ET.parse(tmp_path / "report.xml").getroot()
    [suite] = root.findall("testsuite")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert set(cases) == {"test.pg-missing-index", "test.pg-narrow-column", "test.pg-manual"}
    assert MISSING in cases["test.pg-missing-index"].find("failure").text
    assert root.get("failures") == "3"


def test_markdown_report_for_a_pull_request(gate, capsys):
    assert main(["check", "--format", "markdown", *gate()]) == 1
    text = capsys.readouterr().out
    assert text.startswith("## ❌ dbvitals: the gate fails")
    assert f"`dbvitals fix {MISSING}`" in text


def test_baseline_fails_only_on_new_findings(gate, tmp_path, capsys):
    args = gate()
    gate.db.execute("CREATE INDEX orders_customer_id_idx ON orders (customer_id)")
    assert main(["baseline", "save", "baseline.json", *args[:4]]) == 0
    saved = json.loads((tmp_path / "baseline.json").read_text())
    assert saved["schema"] == "dbvitals.baseline/1" and {f["id"] for f in saved["findings"]} == {NARROW, MANUAL}
    capsys.readouterr()
    assert main(["check", "--baseline", "baseline.json", "--format", "json", *args]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {f["id"] for f in report["findings"]} == {NARROW, MANUAL}  # still reported
    assert report["gate"]["baseline"]["new"] == []
    # A new problem appears: the gate fails on it alone.
    gate.db.execute("DROP INDEX orders_customer_id_idx")
    assert main(["check", "--baseline", "baseline.json", "--format", "json", *args]) == 1
    assert json.loads(capsys.readouterr().out)["gate"]["baseline"]["new"] == [MISSING]
    assert main(["check", "--baseline", "missing.json", *args]) == 2


def test_suppressions_silence_until_they_expire_and_then_say_so(gate, capsys):
    future = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    past = (dt.date.today() - dt.timedelta(days=1)).isoformat()
    args = gate(
        f'\n[[suppressions]]\ncheck = "test.pg-*"\nobject = "public.orders*"\nreason = "ticket DB-1"\nexpires = {future}\n'
    )
    assert main(["check", "--format", "json", *args]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["findings"] == [] and len(report["gate"]["suppressed"]) == 3
    args = gate(
        f'\n[[suppressions]]\ncheck = "test.pg-*"\nobject = "public.orders*"\nreason = "ticket DB-1"\nexpires = {past}\n'
    )
    assert main(["check", "--format", "json", *args]) == 1
    captured = capsys.readouterr()
    assert f"warning: suppression #1 (check=test.pg-* target=* object=public.orders*) expired on {past}" in captured.err
    report = json.loads(captured.out)
    assert len(report["findings"]) == 3
    assert report["gate"]["expired_suppressions"][0]["reason"] == "ticket DB-1"
