"""While an action runs (a fix, an undo, a cancel, a terminate): what the pipeline reports, line by
line, then its outcome, and the next action to try when the outcome offers one."""

from __future__ import annotations

from rich.markup import escape
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import LoadingIndicator, RichLog, Static

from console.keys import KeySection


class FixProgressModal(ModalScreen[str | None]):
    """Dismissed with the offered next action ("terminate") when the user takes it, else None."""

    KEYS = KeySection("progress", 45)

    BINDINGS = [
        Binding("escape,enter,q", "close", "Close", tooltip="Close, once it has finished"),
        Binding("t", "next_action", "Next action", tooltip="Take the next action the outcome offers"),
    ]

    def __init__(self, title: str, target: str, verb: str = "Applying") -> None:
        super().__init__(classes="fix-progress")
        self.fix_title = title
        self.target = target
        self.verb = verb
        self.done = False
        self.offer: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="progress-body"):
            yield Static(f"[b]{self.verb}[/b] {escape(self.fix_title)} on [b]{escape(self.target)}[/b]", id="progress-title")
            yield LoadingIndicator(id="progress-spinner")
            # Wrapped: at 80 columns a step's statement is read whole, not cut at the edge.
            yield RichLog(id="progress-log", auto_scroll=True, wrap=True, markup=False)
            yield Static("", id="progress-outcome")

    def add_line(self, line: str) -> None:
        self.query_one(RichLog).write(Text(line))

    def finish(self, markup: str, *, offer: str | None = None) -> None:
        self.done = True
        self.offer = offer
        self.query_one(LoadingIndicator).display = False
        keys = f"[b]t[/b] to {escape(offer)} instead (asks first); " if offer else ""
        self.query_one("#progress-outcome", Static).update(markup + f"\n[$text-muted]{keys}Enter or Esc closes[/]")
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Closing while the action runs would hide its outcome; it cannot be cancelled midway.
        if action == "next_action":
            return self.done and self.offer is not None
        return self.done if action == "close" else True

    def action_next_action(self) -> None:
        self.dismiss(self.offer)

    def action_close(self) -> None:
        self.dismiss(None)
