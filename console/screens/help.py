"""`?`: every binding of every screen, from the key registry (console/keys.py), which walks the
screens' own BINDINGS: the list can never drift from what the keys do, and no list of screens
is kept here. One section per screen; each description wraps, so nothing is cut off at 80
columns."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from console.keys import KeySection, KeysOf, binding_help, key_label
from console.widgets.keys_bar import KeysBar

FILTER_SYNTAX = (
    "In the / filter (findings and activity): words match anywhere; field:value narrows "
    "(sev:high,critical  target:orders  check:postgres.*  state:stale; in the activity view its "
    "columns: state:active  app:psql); /re/ is a regular expression; !term negates. The box is the "
    "whole filter: an unknown field or value is said beside it; Esc clears it."
)


class HelpScreen(ModalScreen[None]):
    KEYS = KeySection("help", 90)
    BINDINGS = [
        Binding("escape,question_mark,q", "dismiss_help", "Close", tooltip="Close this list"),
        Binding("j,down", "scroll_keys(1)", "Down", show=False, tooltip="Scroll down"),
        Binding("k,up", "scroll_keys(-1)", "Up", show=False, tooltip="Scroll up"),
        Binding("pagedown,space", "scroll_keys(10)", "Page down", show=False, tooltip="Scroll a page down"),
        Binding("pageup", "scroll_keys(-10)", "Page up", show=False, tooltip="Scroll a page up"),
    ]

    def __init__(self, sections: Sequence[KeysOf], current: type | None = None) -> None:
        """`current`: the screen `?` was pressed on; its keys are listed first."""
        super().__init__(classes="help")
        here = [keys for keys in sections if current is not None and issubclass(current, keys.owner)]
        self.sections = [*here, *(keys for keys in sections if keys not in here)]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body"):
            yield Static("[b]dbvitals keys[/b]  (Esc or q closes; j/k scroll)", id="help-title")
            for keys in self.sections:
                yield Static(f"[b]{keys.section.title}[/b]", classes="help-section")
                yield Static(self._keys(keys.bindings), classes="help-keys")
            yield Static(FILTER_SYNTAX, id="help-filter")
        yield KeysBar()

    @property
    def rows(self) -> list[tuple[str, str, str]]:
        """(where, keys, what they do) for every binding listed."""
        return [(keys.section.title, key_label(b), binding_help(b)) for keys in self.sections for b in keys.bindings]

    @staticmethod
    def _keys(bindings: Sequence[Binding]) -> Table:
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
