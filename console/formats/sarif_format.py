"""SARIF 2.1.0, for code-scanning views (GitHub, GitLab, Azure DevOps).

One rule per check (its title and rationale), one result per finding. Code scanning needs a
file location, and a database finding has none in the repository; the nearest honest one is
the config table that names the target (`[targets.NAME]` in the TOML file), so each result
points there and carries the database object as a logical location. The finding id is the
fingerprint, so a code-scanning view tracks the same problem across runs. Suppressed findings
are results with a SARIF suppression (and its reason); with --baseline, `baselineState` says
new or unchanged.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from checks.model import Finding, Report, Severity, not_examined
from checks.registry import load_registry
from checks.suppressions import GatedReport, as_gated
from console.formats.jsondoc import json_text
from console.version import version

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
LEVELS = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}


def render(report: Report, *, registry: Any = None, **_: Any) -> str:
    return json_text(sarif_document(report, registry=registry))


def sarif_document(report: Report, *, registry: Any = None) -> dict[str, Any]:
    gate = as_gated(report)
    catalog = _catalog(registry)
    everything = list(gate.findings) + [s.finding for s in gate.suppressed]
    rule_ids = sorted({f.check for f in everything} | {e.check for e in gate.errors})
    rules = [_rule(rule_id, catalog.get(rule_id), everything) for rule_id in rule_ids]
    index = {rule_id: i for i, rule_id in enumerate(rule_ids)}
    locator = _ConfigLocator(gate.config_path)
    results = [_result(f, index, gate, locator) for f in gate.findings]
    results += [
        _result(s.finding, index, gate, locator, suppression=s.suppression.reason) for s in gate.suppressed
    ]
    run: dict[str, Any] = {
        "tool": {"driver": {
            "name": "dbvitals",
            "version": version(),
            "rules": rules,
        }},
        "invocations": [_invocation(gate)],
        "results": results,
        "columnKind": "unicodeCodePoints",
    }
    if locator.uri:
        run["originalUriBaseIds"] = {"SRCROOT": {"uri": Path.cwd().as_uri() + "/"}}
    return {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}


def _rule(rule_id: str, check: Any, findings: list[Finding]) -> dict[str, Any]:
    sample = next((f for f in findings if f.check == rule_id), None)
    title = getattr(check, "title", None) or (sample.title if sample else rule_id)
    rule: dict[str, Any] = {"id": rule_id, "name": _pascal(rule_id), "shortDescription": {"text": title}}
    rationale = getattr(check, "rationale", None)
    if rationale:
        rule["fullDescription"] = {"text": rationale}
        rule["help"] = {"text": rationale}
    severity = getattr(check, "severity", None) or (sample.severity if sample else None)
    if severity is not None:
        rule["defaultConfiguration"] = {"level": LEVELS[Severity(severity)]}
        rule["properties"] = {"severity": Severity(severity).value, "tags": ["database", rule_id.split(".")[0]]}
    return rule


def _result(finding: Finding, index: dict[str, int], gate: GatedReport, locator: _ConfigLocator,
            *, suppression: str | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": finding.check,
        "ruleIndex": index[finding.check],
        "level": LEVELS[finding.severity],
        "message": {"text": f"{finding.target}: {finding.object}: {finding.title}. {finding.message}".strip()},
        "locations": [_location(finding, locator)],
        "partialFingerprints": {"dbvitalsFindingId/v1": finding.id},
        "properties": _jsonable({
            "findingId": finding.id,
            "severity": finding.severity.value,
            "target": finding.target,
            "object": finding.object,
            "evidence": finding.evidence,
            "fix": finding.fix.to_dict() if finding.fix else None,
        }),
    }
    if gate.baseline is not None:
        result["baselineState"] = "new" if gate.is_new(finding) else "unchanged"
    if suppression is not None:
        result["suppressions"] = [{"kind": "external", "status": "accepted", "justification": suppression}]
    return result


def _location(finding: Finding, locator: _ConfigLocator) -> dict[str, Any]:
    location: dict[str, Any] = {
        "logicalLocations": [{
            "name": finding.object,
            "fullyQualifiedName": f"{finding.target}/{finding.object}",
            "kind": "resource",
        }],
    }
    if locator.uri:
        artifact: dict[str, Any] = {"uri": locator.uri}
        if locator.relative:
            artifact["uriBaseId"] = "SRCROOT"
        location["physicalLocation"] = {
            "artifactLocation": artifact,
            "region": {"startLine": locator.line_of(finding.target)},
        }
    return location


def _invocation(gate: GatedReport) -> dict[str, Any]:
    partial = gate.partial()
    invocation: dict[str, Any] = {"executionSuccessful": not gate.errors and not gate.partial_fails()}
    notifications = [
        {"level": "error", "message": {"text": f"{e.target}: {e.check}: {e.kind}: {e.message}"},
         "descriptor": {"id": e.check}}
        for e in gate.errors
    ]
    # A check cut short by its budget: what it did not examine, as a notification and a property.
    notifications += [
        {"level": "warning" if gate.allow_partial else "error",
         "message": {"text": f"{r['target']}: {r['check']}: partial: {not_examined(r)}"},
         "descriptor": {"id": r["check"]},
         "properties": {"outcome": "partial", "target": r["target"], "skipped": r.get("skipped", [])}}
        for r in partial
    ]
    if notifications:
        invocation["toolExecutionNotifications"] = notifications
    if partial:
        invocation["properties"] = {"partial": [{"target": r["target"], "check": r["check"],
                                                 "skipped": r.get("skipped", [])} for r in partial],
                                    "allow_partial": gate.allow_partial}
    if gate.expired:
        invocation["toolConfigurationNotifications"] = [
            {"level": "warning", "message": {"text": e.describe()}} for e in gate.expired
        ]
    return invocation


class _ConfigLocator:
    """The config file as an artifact, and the line of each target's table in it."""

    def __init__(self, config_path: str | None) -> None:
        self.uri: str | None = None
        self.relative = False
        self.lines: list[str] = []
        if not config_path:
            return
        path = Path(config_path)
        try:
            self.lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            return
        absolute = path.resolve()
        try:
            self.uri = absolute.relative_to(Path.cwd().resolve()).as_posix()
            self.relative = True
        except ValueError:
            self.uri = absolute.as_uri()

    def line_of(self, target: str) -> int:
        table = re.compile(rf"^\s*\[\s*targets\s*\.\s*\"?{re.escape(target)}\"?\s*[\].]")
        for number, line in enumerate(self.lines, 1):
            if table.match(line):
                return number
        return 1


def _catalog(registry: Any) -> dict[str, Any]:
    if registry is None:
        registry = load_registry()
    return dict(registry.checks)


def _pascal(check_id: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", check_id) if part)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
