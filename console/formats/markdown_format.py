"""Markdown, for a pull-request comment: a verdict first, then the findings that fail the gate,
then everything else folded away. GitHub-flavoured (tables, <details>)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from checks.display import terminal_safe
from checks.engines import adapter_for_language, step_text
from checks.model import Finding, FixSafety, Report, Severity, not_examined
from checks.suppressions import as_gated
from checks.units import counted


def render(report: Report, **_: Any) -> str:
    gate = as_gated(report)
    failing = gate.gating()
    failing_ids = {f.id for f in failing}
    partial = gate.partial()
    verdict = ("fails" if failing or any(e.kind in {"error", "timeout"} for e in gate.errors) or gate.partial_fails()
               else "passes")
    mark = "❌" if verdict == "fails" else "✅"
    counts = Counter(f.severity for f in gate.findings)
    summary = ", ".join(f"{counts[s]} {s.value}" for s in Severity if counts[s]) or "no findings"
    lines = [
        f"## {mark} dbvitals: the gate {verdict}",
        "",
        f"{counted(len(gate.findings), 'finding')} ({summary}) on {counted(len(gate.targets), 'target')}; "
        f"{len(failing)} fail the gate (at least `{gate.fail_on}`"
        + (", not in the baseline" if gate.baseline is not None else "") + ")"
        + (f"; {len(gate.suppressed)} suppressed" if gate.suppressed else "")
        + f"; {counted(len(gate.checks), 'check run')} in {gate.duration_ms / 1000:.1f}s.",
        "",
    ]
    if gate.expired:
        lines += ["> [!WARNING]", *(f"> {markdown_escape(e.describe())}" for e in gate.expired), ""]
    unreachable = [t for t in gate.targets if not t.reachable]
    if unreachable or gate.errors:
        lines += ["### Could not check", ""]
        lines += [f"- **{markdown_escape(t.name)}**: {t.state.value}: {markdown_escape(t.error or '')}" for t in unreachable]
        lines += [f"- **{markdown_escape(e.target)}** `{e.check}`: {e.kind}: {markdown_escape(e.message)}" for e in gate.errors]
        lines.append("")
    if partial:
        lines += ["### Partial: cut short by a budget" + (" (allowed by --allow-partial)" if gate.allow_partial else ""),
                  ""]
        lines += [f"- **{markdown_escape(r['target'])}** `{r['check']}`: partial: {markdown_escape(not_examined(r))}"
                  for r in partial]
        lines.append("")
    if failing:
        lines += ["### Failing the gate", "", *_table(failing, gate), ""]
        lines += [_details(f) for f in failing]
        lines.append("")
    others = [f for f in gate.findings if f.id not in failing_ids]
    if others:
        label = "Other findings (below the threshold" + (" or in the baseline" if gate.baseline is not None else "") + ")"
        lines += ["<details>", f"<summary>{label}: {len(others)}</summary>", "", *_table(others, gate), "", "</details>", ""]
    if gate.suppressed:
        lines += ["<details>", f"<summary>Suppressed: {len(gate.suppressed)}</summary>", "",
                  "| id | target | check | object | reason | until |", "|---|---|---|---|---|---|"]
        for s in gate.suppressed:
            f = s.finding
            until = s.suppression.expires.isoformat() if s.suppression.expires else "no expiry"
            lines.append(f"| `{f.id}` | {_cell(f.target)} | `{f.check}` | {_cell(f.object)} | {_cell(s.suppression.reason)} | {until} |")
        lines += ["", "</details>", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def _table(findings: list[Finding], gate: Any) -> list[str]:
    baseline = gate.baseline is not None
    head = "| severity | id | target | check | object | finding | fix |" + (" new |" if baseline else "")
    rule = "|---|---|---|---|---|---|---|" + ("---|" if baseline else "")
    rows = [head, rule]
    for f in findings:
        fix = _fix_cell(f)
        row = (f"| {f.severity.value} | `{f.id}` | {_cell(f.target)} | `{f.check}` | {_cell(f.object)} | "
               f"{_cell(f.title)} | {fix} |")
        if baseline:
            row += " yes |" if gate.is_new(f) else " no |"
        rows.append(row)
    return rows


def _fix_cell(f: Finding) -> str:
    if f.fix is None:
        return ""
    # dbvitals never applies a manual fix: pointing at `dbvitals fix` would only earn a refusal.
    if f.fix.safety is FixSafety.MANUAL:
        return "manual: apply by hand"
    return f"{f.fix.safety.value}: `dbvitals fix {f.id}`"


def _details(f: Finding) -> str:
    body = [f"<details><summary><code>{f.id}</code> {_html(f.title)}</summary>", "", markdown_escape(f.message), ""]
    if f.evidence:
        body += ["Evidence:", "", "```json", terminal_safe(json.dumps(f.evidence, indent=2, default=str, ensure_ascii=False), keep_newlines=True), "```", ""]
    if f.fix is not None:
        language = adapter_for_language(f.fix.steps[0].language).fence if f.fix.steps else ""
        body += [f"Fix ({f.fix.safety.value}" + (f"; {markdown_escape(f.fix.lock)}" if f.fix.lock else "") + f"): {markdown_escape(f.fix.summary)}", ""]
        if f.fix.steps:
            body += [f"```{language}", *(step_text(s) for s in f.fix.steps), "```", ""]
    body.append("</details>")
    return "\n".join(body)


def _cell(text: str) -> str:
    return markdown_escape(text).replace("|", "\\|").replace("\n", " ")


def markdown_escape(text: str) -> str:
    """Keep database names (with _ and *) from turning into emphasis, and HTML from rendering."""
    return _html(text).replace("\\", "\\\\").replace("*", "\\*").replace("_", "\\_").replace("`", "\\`")


def _html(text: str) -> str:
    text = terminal_safe(text)  # an ESC or a newline in a name is shown, never passed on
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
