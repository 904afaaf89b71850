"""Every fix dbvitals applied, from the append-only journal: when, who, where, what, outcome."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

COLUMNS = (("when", "When"), ("kind", "Kind"), ("target", "Target"), ("check", "Check"), ("object", "Object"),
           ("outcome", "Outcome"), ("duration", "ms"), ("user", "User"), ("id", "Entry"))


def entry_fields(entry: Any) -> dict[str, Any]:
    """Journal entries are dicts or objects with attributes; the finding may be nested."""
    data = entry.to_dict() if hasattr(entry, "to_dict") else dict(entry) if isinstance(entry, dict) else dict(vars(entry))
    finding = data.get("finding") or {}
    if not isinstance(finding, dict):
        finding = finding.to_dict() if hasattr(finding, "to_dict") else vars(finding)
    return {
        "when": str(data.get("when") or data.get("started_at") or "")[:19].replace("T", " "),
        "kind": data.get("kind") or "fix",
        "user": data.get("user") or "",
        "target": data.get("target") or finding.get("target") or "",
        "check": data.get("check") or finding.get("check") or "",
        "object": data.get("object") or finding.get("object") or "",
        "outcome": str(data.get("outcome") or "unfinished"),
        "duration": "" if data.get("duration_ms") is None else f"{float(data['duration_ms']):.0f}",
        "id": str(data.get("id", "")),
    }


class FixHistoryScreen(Screen):
    BINDINGS = [Binding("escape,h,q", "app.pop_screen", "Back")]

    def __init__(self, entries: list[Any], problem: str | None = None) -> None:
        super().__init__(classes="history")
        self.entries = entries
        self.problem = problem

    def compose(self) -> ComposeResult:
        count = len(self.entries)
        title = f"[b]Fix history[/b] {count} entr{'y' if count == 1 else 'ies'}, newest first"
        if self.problem:
            title += f"\n[$warning]{self.problem}[/]"
        yield Static(title, id="history-title", classes="pane-title")
        yield DataTable(id="history", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        for entry in reversed(self.entries):
            fields = entry_fields(entry)
            table.add_row(*(fields[key] for key, _ in COLUMNS))
        table.focus()
