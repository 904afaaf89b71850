"""`?`: every binding of every screen, generated from the bindings themselves so the list
can never drift from what the keys do. One section per screen; each description wraps, so
nothing is cut off at 80 columns."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

FILTER_SYNTAX = (
    "In the / filter: words match target, check, object, title and message; "
    "sev:high,critical  target:orders  check:postgres.*  narrow further."
)


def key_label(binding: Binding) -> str:
    names = {"slash": "/", "question_mark": "?", "escape": "esc", "left_square_bracket": "[",
             "right_square_bracket": "]", "plus": "+", "minus": "-", "space": "space"}
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
            yield Static("[b]dbvitals keys[/b]  (Esc or q closes; j/k scroll)", id="help-title")
            for where, bindings in self.sections:
                yield Static(f"[b]{where}[/b]", classes="help-section")
                yield Static(self._keys(bindings), classes="help-keys")
            yield Static(FILTER_SYNTAX, id="help-filter")

    @property
    def rows(self) -> list[tuple[str, str, str]]:
        """(where, keys, what they do) for every binding listed."""
        return [(where, key_label(b), binding_help(b)) for where, bindings in self.sections for b in bindings]

    @staticmethod
    def _keys(bindings: list[Binding]) -> Table:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True, min_width=12, style="bold")
        grid.add_column(ratio=1)
        for binding in bindings:
            grid.add_row(key_label(binding), Text(binding_help(binding)))
        return grid

    def action_scroll_keys(self, lines: int) -> None:
        self.query_one("#help-body", VerticalScroll).scroll_relative(y=lines, animate=False)

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
