"""The human report: one table per target, worst findings first, as wide as the terminal
(120 columns when piped), never breaking a word inside a cell."""

from __future__ import annotations

import io
from collections import Counter
from typing import Any

from rich.console import Console
from rich.padding import Padding
from rich.text import Text

from checks.display import terminal_safe as safe
from checks.model import Report, Severity, TargetState, not_examined
from checks.runner import sort_findings
from checks.suppressions import GatedReport
from console.textwidth import Column, fitted, terminal_width

# Terminal styles for the headless report; the console takes its colours from themes/.
SEVERITY_STYLE = {
    Severity.CRITICAL: "bold white on red",
    Severity.HIGH: "bold red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}


def render(report: Report, *, color: bool = False, width: int | None = None, **_: Any) -> str:
    width = width or terminal_width(default=120)
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=color, no_color=not color, highlight=False)
    for status in report.targets:
        findings = [f for f in report.findings if f.target == status.name]
        state = Text(status.state.value, style="green" if status.state is TargetState.CONNECTED else "bold red")
        head = Text.assemble(
            (status.name, "bold"), f" ({status.kind}", f", {safe(status.environment)}" if status.environment else "",
            ") ", state,
        )
        if status.latency_ms is not None:
            head.append(f"  {status.latency_ms:.1f} ms")
        if status.server_version:
            head.append(f"  v{safe(status.server_version)}")
        if status.role:
            head.append(f"  {safe(status.role)}")
        if status.error:
            head.append(f"  {safe(status.error)}", style="red")
        console.print(head)
        if not findings:
            console.print(Text("  no findings", style="green"))
        else:
            columns = [Column("severity", 9, words=False), Column("id", 8, words=False),
                       Column("check", 4, words=False), Column("object", 6, words=False), Column("finding", 9)]
            rows: list[list[str | Text]] = []
            for f in findings:
                fix = f" [fix: {f.fix.safety.value}]" if f.fix else ""
                rows.append([Text(f.severity.value, style=SEVERITY_STYLE[f.severity]), Text(f.id, style="dim"),
                             safe(f.check), safe(f.object), Text(safe(f.title) + fix)])
            console.print(Padding(fitted(columns, rows, width - 2), (0, 0, 0, 2)))
        console.print()
    if report.errors:
        console.print(Text("check errors:", style="bold red"))
        for error in report.errors:
            console.print(Text(f"  {error.target} {safe(error.check)}: {error.kind}: {safe(error.message)}"))
        console.print()
    partial = report.partial()
    if partial:
        console.print(Text("partial checks (cut short by a budget; they fail the gate unless --allow-partial):",
                           style="bold yellow"))
        for row in partial:
            console.print(Text(f"  {row['target']} {safe(row['check'])}: partial: {safe(not_examined(row))}"))
        console.print()
    counts = Counter(f.severity for f in report.findings)
    parts = [f"{counts[s]} {s.value}" for s in Severity if counts[s]]
    ran = len(report.checks)
    summary = (
        f"{len(report.findings)} finding{'s' if len(report.findings) != 1 else ''}"
        + (f" ({', '.join(parts)})" if parts else "")
        + f", {ran} check run{'s' if ran != 1 else ''} on {len(report.targets)} target"
        + ("s" if len(report.targets) != 1 else "")
        + f", {len(report.errors)} error{'s' if len(report.errors) != 1 else ''}"
        + (f", {len(partial)} partial" if partial else "")
        + f" in {report.duration_ms / 1000:.2f}s"
    )
    console.print(summary)
    if isinstance(report, GatedReport):
        _print_gate(console, report, width)
    return buffer.getvalue()


GATE_LIST_LIMIT = 20  # the end of a CI log names what failed; the tables above have the rest


def _print_gate(console: Console, report: GatedReport, width: int) -> None:
    """The last lines of a gate's log: whether it passed, and the findings that failed it."""
    failing = report.gating()
    against = f"--fail-on {report.fail_on}" + (f", new since {safe(report.baseline)}" if report.baseline else "")
    reasons = []
    if failing:
        reasons.append(f"{len(failing)} finding{'s' if len(failing) != 1 else ''}")
    if report.partial_fails():
        reasons.append("partial checks (--allow-partial accepts them)")
    if any(e.kind in {"error", "timeout"} for e in report.errors):
        reasons.append("check errors")
    if not reasons:
        console.print(Text(f"gate passed ({against})", style="green"))
        return
    console.print(Text(f"gate failed ({against}): {', '.join(reasons)}", style="bold red"))
    if not failing:
        return
    columns = [Column("severity", 9, words=False), Column("target", 8, words=False), Column("check", 7, words=False),
               Column("object", 5, words=False), Column("id", 4, words=False)]
    rows: list[list[str | Text]] = [
        [Text(f.severity.value, style=SEVERITY_STYLE[f.severity]), safe(f.target), safe(f.check), safe(f.object),
         Text(f.id, style="dim")]
        for f in sort_findings(failing)[:GATE_LIST_LIMIT]
    ]
    console.print(Padding(fitted(columns, rows, width - 2), (0, 0, 0, 2)))
    if len(failing) > GATE_LIST_LIMIT:
        console.print(f"  and {len(failing) - GATE_LIST_LIMIT} more (listed above)")
