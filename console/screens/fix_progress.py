"""While a fix runs: what the fix engine reports, line by line, then its outcome."""

from __future__ import annotations

from rich.markup import escape
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import LoadingIndicator, RichLog, Static


class FixProgressModal(ModalScreen[None]):
    BINDINGS = [Binding("escape,enter,q", "close", "Close", tooltip="Close, once it has finished")]

    def __init__(self, title: str, target: str, verb: str = "Applying") -> None:
        super().__init__(classes="fix-progress")
        self.fix_title = title
        self.target = target
        self.verb = verb
        self.done = False

    def compose(self) -> ComposeResult:
        with Vertical(id="progress-body"):
            yield Static(f"[b]{self.verb}[/b] {escape(self.fix_title)} on [b]{escape(self.target)}[/b]", id="progress-title")
            yield LoadingIndicator(id="progress-spinner")
            # Wrapped: at 80 columns a step's statement is read whole, not cut at the edge.
            yield RichLog(id="progress-log", auto_scroll=True, wrap=True, markup=False)
            yield Static("", id="progress-outcome")

    def add_line(self, line: str) -> None:
        self.query_one(RichLog).write(Text(line))

    def finish(self, markup: str) -> None:
        self.done = True
        self.query_one(LoadingIndicator).display = False
        self.query_one("#progress-outcome", Static).update(markup + "\n[$text-muted]Enter or Esc closes[/]")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Closing while the fix runs would hide its outcome; it cannot be cancelled midway.
        return self.done if action == "close" else True

    def action_close(self) -> None:
        self.dismiss(None)
