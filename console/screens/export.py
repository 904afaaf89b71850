"""`e`: the findings now shown (filter applied) to a JSON or Markdown file, for a ticket or
a hand-over. The path is shown in full and can be edited before anything is written; the
dialog then says where the file went, whole, instead of a toast that cuts it."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from checks.model import Finding, Report, TargetStatus
from checks.secrets import mask_tree
from console.keys import KeySection
from console.widgets.fix_view import fix_text
from console.widgets.keys_bar import KeysBar

FORMATS = {"json": "json", "markdown": "md"}


def export_text(findings: Sequence[Finding], targets: Sequence[TargetStatus], fmt: str, description: str = "") -> str:
    findings, targets = mask_tree(list(findings)), mask_tree(list(targets))
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
        lines += [f"| {t.name} | {t.kind} | {t.environment or ''} | {t.state.value} | {t.server_version or ''} |"
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


def default_path(fmt: str, directory: Path | None = None) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return (directory or Path.cwd()) / f"dbvitals-findings-{stamp}.{FORMATS[fmt]}"


def format_of(path: str) -> str:
    """Markdown for .md/.markdown, JSON otherwise."""
    return "markdown" if path.lower().endswith((".md", ".markdown")) else "json"


def write_export(findings: Sequence[Finding], targets: Sequence[TargetStatus], path: Path, description: str = "") -> Path:
    path = path.expanduser()
    text = export_text(findings, targets, format_of(str(path)), description)
    # Findings name databases, users and hosts: readable by the owner only, like the journal.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a file that was already there keeps its mode otherwise
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    return path.resolve()


class ExportModal(ModalScreen[None]):
    """Edit the path (its extension picks the format), Enter writes, Esc closes."""

    KEYS = KeySection("export", 50)

    BINDINGS = [
        Binding("escape", "close", "Close", tooltip="Close: nothing more is written"),
        Binding("enter", "noop", "Write", tooltip="Write the file at the path typed (.json or .md)"),
        Binding("tab", "app.focus_next", "Buttons", show=False,
                tooltip="To the JSON / Markdown buttons, which set the extension"),
    ]

    def __init__(self, count: int, write: Callable[[Path], Awaitable[Path]], path: Path | None = None) -> None:
        super().__init__(classes="export")
        self.count = count
        self.write = write
        self.path = path or default_path("json")
        self.written: Path | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="export-body"):
            yield Static(f"Export the {self.count:,} findings shown to this file (.json or .md), then Enter:")
            yield Input(str(self.path), id="export-path")
            yield Static("", id="export-result")
            with Horizontal(id="export-buttons"):
                yield Button("JSON", id="json", compact=True)
                yield Button("Markdown", id="md", compact=True)
                yield Button("Write", id="write", variant="primary", compact=True)
                yield Button("Close", id="close", compact=True)
        yield KeysBar()

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def action_noop(self) -> None:
        """Enter is the Input's own: listed so the footer and `?` say what it does."""

    def action_extension(self, suffix: str) -> None:
        box = self.query_one(Input)
        box.value = str(Path(box.value).with_suffix("." + suffix))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id in {"json", "md"}:
            self.action_extension(event.button.id)
        elif event.button.id == "write":
            self.run_worker(self._write(self.query_one(Input).value), exclusive=True)
        else:
            self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.run_worker(self._write(event.value), exclusive=True)

    async def _write(self, value: str) -> None:
        result = self.query_one("#export-result", Static)
        if not value.strip():
            result.update("[$error b]No path:[/] type where the file goes.")
            return
        try:
            written = await self.write(Path(value.strip()))
        except OSError as exc:
            result.update(f"[$error b]Not written:[/] {escape(str(exc))}")
            return
        self.written = written
        result.update(f"[$success b]Written[/] {self.count:,} findings to\n{escape(str(written))}\n"
                      "[$text-muted]Esc closes[/]")

    def action_close(self) -> None:
        self.dismiss(None)
