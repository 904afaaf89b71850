"""`e`: the findings now shown (filter applied) to a JSON or Markdown file in the working
directory, for a ticket or a hand-over."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from checks.model import Finding, Report, TargetStatus
from console.widgets.fix_view import fix_text

FORMATS = {"json": "json", "markdown": "md"}


def export_text(findings: Sequence[Finding], targets: Sequence[TargetStatus], fmt: str, description: str = "") -> str:
    if fmt == "json":
        doc = Report(targets=list(targets), findings=list(findings), errors=[], duration_ms=0).to_dict()
        doc.pop("duration_ms")
        doc["filter"] = description or None
        return json.dumps(doc, indent=2, default=str) + "\n"
    lines = ["# dbvitals findings", ""]
    if description:
        lines += [f"Filter: {description}", ""]
    if targets:
        lines += ["| target | kind | environment | state | version |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| {t.name} | {t.kind.value} | {t.environment or ''} | {t.state.value} | {t.server_version or ''} |"
                  for t in targets]
        lines.append("")
    lines += ["| severity | target | check | object | title |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {f.severity.value} | {f.target} | {f.check} | {_md(f.object)} | {_md(f.title)} |" for f in findings]
    for f in findings:
        lines += ["", f"## {f.severity.value.upper()}: {f.title}", "",
                  f"`{f.target}` · `{f.check}` · `{f.object}` · id `{f.id}`", "", f.message, ""]
        if f.evidence:
            lines += ["```json", json.dumps(f.evidence, indent=2, default=str), "```", ""]
        if f.fix:
            lines += [f"Fix ({f.fix.safety.value}): {f.fix.summary}", "", "```", fix_text(f.fix).rstrip(), "```"]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def write_export(findings: Sequence[Finding], targets: Sequence[TargetStatus], fmt: str,
                 directory: Path | None = None, description: str = "") -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = (directory or Path.cwd()) / f"dbvitals-findings-{stamp}.{FORMATS[fmt]}"
    path.write_text(export_text(findings, targets, fmt, description), encoding="utf-8")
    return path


class ExportModal(ModalScreen[str | None]):
    """Returns "json", "markdown", or None when cancelled."""

    BINDINGS = [
        Binding("j", "choose('json')", "JSON"),
        Binding("m", "choose('markdown')", "Markdown"),
        Binding("escape", "choose(None)", "Cancel"),
    ]

    def __init__(self, count: int) -> None:
        super().__init__(classes="export")
        self.count = count

    def compose(self) -> ComposeResult:
        with Vertical(id="export-body"):
            yield Static(f"Export the {self.count:,} findings shown to the current directory as:")
            with Horizontal(id="export-buttons"):
                yield Button("JSON (j)", id="json", variant="primary")
                yield Button("Markdown (m)", id="markdown")
                yield Button("Cancel", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None if event.button.id == "cancel" else event.button.id)

    def action_choose(self, fmt: str | None) -> None:
        self.dismiss(fmt)
