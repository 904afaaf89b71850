"""`?`: every binding of every screen, generated from the bindings themselves so the list
can never drift from what the keys do."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

FILTER_SYNTAX = (
    "In the / filter: words match target, check, object, title and message; "
    "sev:high,critical  target:orders  check:postgres.*  narrow further."
)


def key_label(binding: Binding) -> str:
    names = {"slash": "/", "question_mark": "?", "escape": "esc", "enter": "enter", "backspace": "backspace",
             "ctrl+p": "ctrl+p", "tab": "tab", "shift+tab": "shift+tab"}
    return ", ".join(names.get(k, k) for k in binding.key.split(","))


def binding_help(binding: Binding) -> str:
    """The whole sentence: the footer's word is the description, the tooltip says it in full."""
    return binding.tooltip or binding.description or binding.action


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,question_mark,q", "dismiss_help", "Close"),
        Binding("j,down", "scroll_keys(1)", "Down", show=False),
        Binding("k,up", "scroll_keys(-1)", "Up", show=False),
        Binding("pagedown,space", "scroll_keys(10)", "Page down", show=False),
        Binding("pageup", "scroll_keys(-10)", "Page up", show=False),
    ]

    def __init__(self, sections: list[tuple[str, list[Binding]]]) -> None:
        super().__init__(classes="help")
        self.sections = sections

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body"):
            yield Static("[b]dbvitals keys[/b]  (Esc closes; Ctrl+P opens the command palette)", id="help-title")
            yield DataTable(id="help-keys", cursor_type="row", show_cursor=False)
            yield Static(FILTER_SYNTAX, id="help-filter")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("Where", "Key", "Does")
        for where, bindings in self.sections:
            for binding in bindings:
                table.add_row(where, key_label(binding), binding_help(binding))

    def action_scroll_keys(self, lines: int) -> None:
        self.query_one("#help-body", VerticalScroll).scroll_relative(y=lines, animate=False)

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
