"""JUnit XML, for CI test reports: one test suite per target, one test case per check run.

A test case fails when its check found something that fails the gate (at least --fail-on,
and not in the baseline); other findings are listed in its system-out, so the report agrees
with the exit code. A check that raised or timed out is an error, and so is one cut short by its
budget (outcome partial: the error says what it did not examine) unless --allow-partial; one that
did not run (its target was unreachable) is skipped.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from typing import Any

from checks.display import terminal_safe
from checks.model import Finding, Report, not_examined
from checks.suppressions import as_gated
from checks.units import counted

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def render(report: Report, **_: Any) -> str:
    gate = as_gated(report)
    failing_ids = {f.id for f in gate.gating()}
    findings: dict[tuple[str, str], list[Finding]] = defaultdict(list)
    for finding in gate.findings:
        findings[(finding.target, finding.check)].append(finding)
    errors = {(e.target, e.check): e for e in gate.errors}
    runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in gate.checks:
        runs[row["target"]].append(row)
    for pair in set(findings) | set(errors):  # findings or errors without a row in `checks`
        if not any(r["check"] == pair[1] for r in runs[pair[0]]):
            runs[pair[0]].append({"target": pair[0], "check": pair[1], "duration_ms": 0.0})

    root = ET.Element("testsuites", name="dbvitals")
    totals: defaultdict[str, int] = defaultdict(int)
    statuses = {t.name: t for t in gate.targets}
    for target in [t.name for t in gate.targets] + sorted(set(runs) - set(statuses)):
        suite = ET.SubElement(root, "testsuite", name=target)
        counts: defaultdict[str, int] = defaultdict(int)
        time_s = 0.0
        for row in sorted(runs[target], key=lambda r: r["check"]):
            check = row["check"]
            seconds = (row.get("duration_ms") or 0.0) / 1000
            time_s += seconds
            case = ET.SubElement(suite, "testcase", classname=f"dbvitals.{target}", name=check, time=f"{seconds:.3f}")
            counts["tests"] += 1
            error = errors.get((target, check))
            found = findings.get((target, check), [])
            failing = [f for f in found if f.id in failing_ids]
            if error is not None and error.kind == "skipped":
                ET.SubElement(case, "skipped", message=error.message)
                counts["skipped"] += 1
            elif error is not None:
                node = ET.SubElement(case, "error", message=f"{error.kind}: {error.message}", type=error.kind)
                node.text = error.message
                counts["errors"] += 1
            elif row.get("outcome") == "partial" and not gate.allow_partial:
                # Cut short by its budget: it did not look at everything, so it does not pass.
                said = not_examined(row, limit=3)
                node = ET.SubElement(case, "error", message=f"partial: {said}", type="partial")
                node.text = "\n".join([f"{s.get('what')}: {s.get('why')}" for s in row.get("skipped", [])]
                                      + [_describe(f) for f in failing])
                counts["errors"] += 1
            elif failing:
                worst = max(failing, key=lambda f: f.severity.rank)
                node = ET.SubElement(
                    case, "failure", type=worst.severity.value,
                    message=f"{counted(len(failing), 'finding')} failing the gate (worst: {worst.severity.value}): {worst.title}",
                )
                node.text = "\n\n".join(_describe(f) for f in failing)
                counts["failures"] += 1
            passing = [f for f in found if f.id not in failing_ids]
            allowed = row.get("outcome") == "partial" and gate.allow_partial
            if passing or allowed:
                out = ET.SubElement(case, "system-out")
                out.text = "\n\n".join([f"partial (allowed by --allow-partial): {not_examined(row)}"] * allowed
                                         + [_describe(f, known=not gate.is_new(f)) for f in passing])
        status = statuses.get(target)
        if status is not None and not status.reachable:
            props = ET.SubElement(suite, "properties")
            ET.SubElement(props, "property", name="state", value=status.state.value)
            ET.SubElement(props, "property", name="error", value=status.error or "")
        for key in ("tests", "failures", "errors", "skipped"):
            suite.set(key, str(counts[key]))
            totals[key] += counts[key]
        suite.set("time", f"{time_s:.3f}")
    for key in ("tests", "failures", "errors", "skipped"):
        root.set(key, str(totals[key]))
    root.set("time", f"{gate.duration_ms / 1000:.3f}")
    ET.indent(root)
    xml = ET.tostring(root, encoding="unicode")
    # XML 1.0 cannot carry most control characters, and a terminal must not get them: escape
    # them visibly (ElementTree writes them raw). A raw CR too: a parser reads it as a line break,
    # so a name holding one could forge a line of the report.
    xml = _CONTROL.sub(lambda m: terminal_safe(m.group()), xml)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + xml + "\n"


def _describe(finding: Finding, *, known: bool = False) -> str:
    head = f"[{finding.severity.value}] {finding.id} {terminal_safe(finding.object)}: {terminal_safe(finding.title)}"
    if known:
        head += " (in the baseline)"
    lines = [head, finding.message]
    if finding.fix is not None:
        lines.append(f"fix ({finding.fix.safety.value}): {finding.fix.summary} -- dbvitals fix {finding.id}")
    return "\n".join(lines)
