"""One session (operation, client) of the activity view, as the refresh that showed it read it:
every field the engine names (whole statement, locks held and awaited, client, ages, wait
event) and whom it blocks and waits on. Wrapped to the terminal's width; scrolls when long."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from checks.activity import relation
from checks.display import terminal_safe
from console.keys import KeySection
from console.widgets.keys_bar import KeysBar


class SessionDetailScreen(Screen[None]):
    KEYS = KeySection("session detail", 75)
    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back", tooltip="Back to the activity view"),
        Binding("j", "scroll('down')", "Down", show=False, tooltip="Scroll down (also Down, PgDn)"),
        Binding("k", "scroll('up')", "Up", show=False, tooltip="Scroll up (also Up, PgUp)"),
    ]
    DEFAULT_CSS = """
    SessionDetailScreen #session-detail { padding: 0 1; }
    SessionDetailScreen #session-title { background: $panel; }
    """

    def __init__(self, target: str, row: dict[str, Any], fields: list[tuple[str, str]], taken_at: str) -> None:
        super().__init__()
        self.target = target
        self.row = row
        self.fields = fields
        self.taken_at = taken_at

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="session-detail"):
            yield Static(f"[b]{escape(terminal_safe(self.target))}[/b] {escape(self.fields[0][1] if self.fields else 'id')} "
                         f"[b]{escape(terminal_safe(str(self.row.get('id', ''))))}[/b]"
                         f"  [$text-muted]as read at {escape(self.taken_at)}[/]", id="session-title")
            yield Static(self.text(), id="session-fields")
        yield KeysBar()

    def text(self) -> str:
        lines = []
        said = relation(self.row)
        if said:
            lines.append(f"[$text-muted]{'blocking':<14}[/] {escape(said)}")
        for key, label in self.fields:
            lines.append(f"[$text-muted]{label:<14}[/] {_value(self.row.get(key))}")
        return "\n".join(lines)

    def action_scroll(self, direction: str) -> None:
        body = self.query_one("#session-detail", VerticalScroll)
        if direction == "down":
            body.scroll_down(animate=False)
        else:
            body.scroll_up(animate=False)


def _value(value: Any) -> str:
    """One field as the detail shows it: lists one item a line, names and statements escaped."""
    if value is None or value == "" or value == []:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return "\n".join(f"{'':15}{escape(terminal_safe(str(item)))}" for item in value).lstrip()
    return escape(terminal_safe(str(value)))
