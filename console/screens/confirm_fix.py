"""The last look before a fix (or an undo) runs: exactly which statements, on which target and
database, their safety, lock and inverse. Unsafe ones and production targets need the
target's name typed, so a reflexive Enter cannot change a production database.

At 80×24 the box fills the screen: where and how risky stay fixed at the top, then one line
per step (what, how much, its lock) and per step of the inverse, so both are seen without
scrolling; `v` (F2 while typing the target's name) shows the full text of every step instead (a Redis key scan is a page of bash
and python), scrolled with j/k. The prompt and the buttons stay at the bottom inside the box,
and the footer shows this dialog's keys. The screen behind does not show through.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from checks.model import Fix, FixSafety, FixStep
from console.keys import KeySection
from console.widgets.fix_view import SAFETY_VARIABLES, StepsView, safety_reason, step_summary
from console.widgets.keys_bar import KeysBar


@dataclass
class Confirmation:
    """What a confirmation shows, whether for a fix or an undo."""

    verb: str  # "Apply" / "Undo"
    title: str
    target: str
    where: str  # the masked URL
    object: str
    safety: FixSafety
    lock: str | None
    steps: tuple[FixStep, ...]
    inverse: tuple[FixStep, ...] = ()
    notes: str | None = None
    refusals: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    production: bool = False


class ConfirmFixModal(ModalScreen[bool]):
    KEYS = KeySection("confirm fix", 40)
    BINDINGS = [
        Binding("y", "apply", "Yes, run it", tooltip="Run it (when no name needs typing)"),
        Binding("n,escape,q", "cancel", "No", tooltip="Cancel: nothing runs"),
        Binding("v,f2", "toggle_full", "Full text",
                tooltip="The full text of every step, or back to one line each (F2 while typing the name)"),
        Binding("j", "scroll(1)", "Down", show=False, tooltip="Scroll the steps down"),
        Binding("k", "scroll(-1)", "Up", show=False, tooltip="Scroll the steps up"),
    ]
    DEFAULT_CSS = """
    ConfirmFixModal { background: $background; }
    ConfirmFixModal #confirm-summary { height: auto; }
    ConfirmFixModal .step-summary { max-height: 2; padding-left: 1; }
    """

    def __init__(self, plan: Any = None, *, target: str = "", where: str = "", production: bool = False,
                 confirmation: Confirmation | None = None) -> None:
        super().__init__(classes="confirm-fix")
        self.plan = plan
        self.confirmation = confirmation or _from_plan(plan, target, where, production)
        c = self.confirmation
        self.target = c.target
        self.safety = c.safety
        self.must_type = c.production or c.safety is FixSafety.UNSAFE

    def compose(self) -> ComposeResult:
        c = self.confirmation
        with Vertical(id="confirm-body"):
            badges = []
            if c.production:
                badges.append("[$production b reverse] PRODUCTION [/]")
            if c.safety is FixSafety.UNSAFE:
                badges.append("[$error b reverse] UNSAFE [/]")
            yield Static(" ".join([*badges, f"[b]{escape(c.verb)}:[/b] {escape(c.title)}"]), id="confirm-title")
            fix = Fix(summary=c.title, steps=c.steps, safety=c.safety, lock=c.lock, notes=c.notes)
            yield Static(
                f"[$text-muted]target[/] [b]{escape(c.target)}[/b] [$text-muted]at[/] {escape(c.where)}\n"
                f"[$text-muted]object[/] {escape(c.object)}\n"
                f"[$text-muted]safety[/] [${SAFETY_VARIABLES[c.safety]} b]{escape(safety_reason(fix))}[/]"
                + (f"\n[$text-muted]lock[/]   {escape(c.lock)}" if c.lock else ""),
                id="confirm-where",
            )
            with VerticalScroll(id="confirm-steps-pane"):
                with Vertical(id="confirm-summary"):
                    yield from _summary("Will run", c.steps)
                    if c.inverse:
                        yield from _summary("Inverse (undo)", c.inverse)
                with Vertical(id="confirm-full"):
                    yield Static("[b]Will run[/b] [$text-muted](v or F2: one line each)[/]", classes="section")
                    yield StepsView(c.steps, id="confirm-steps")
                    if c.inverse:
                        yield Static("[b]Inverse (undo)[/b]", classes="section")
                        yield StepsView(c.inverse, id="confirm-inverse")
                if not c.inverse and c.verb == "Apply":
                    yield Static("[$text-muted]No inverse recorded: this cannot be undone from the journal[/]")
                for warning in c.warnings:
                    yield Static(f"[$warning b]Warning:[/] {escape(warning)}", classes="confirm-warning")
            if c.refusals:
                yield Static("[$error b]Refused:[/] " + "; ".join(escape(r) for r in c.refusals), id="confirm-refusals")
            elif self.must_type:
                reason = "an unsafe change" if c.safety is FixSafety.UNSAFE else "a production target"
                yield Static(f"This is {reason}: type [b]{escape(c.target)}[/b] and press Enter.", id="confirm-prompt")
                yield Input(placeholder=c.target, id="confirm-name")
            else:
                yield Static("[b]y[/b] or Enter runs it; [b]n[/b] or Esc cancels.", id="confirm-prompt")
            with Horizontal(id="confirm-buttons"):
                if not c.refusals:  # a refused action offers nothing to press but Cancel
                    yield Button(c.verb, id="apply", variant="error" if self.must_type else "primary", compact=True,
                                 disabled=self.must_type)
                yield Button("Cancel", id="cancel", compact=True)
        yield KeysBar()

    def on_mount(self) -> None:
        self.query_one("#confirm-full").display = False
        if self.query("#confirm-name"):
            self.query_one("#confirm-name", Input).focus()
        else:
            self.query_one("#cancel" if self.confirmation.refusals else "#apply", Button).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_one("#apply", Button).disabled = event.value.strip() != self.target

    def on_input_submitted(self, event: Input.Submitted) -> None:
        typed = event.value.strip()
        if typed == self.target:
            self.dismiss(True)
            return
        # A wrong name is said, never silently ignored.
        said = f"you typed [b]{escape(typed)}[/b], not" if typed else "nothing typed; type"
        self.query_one("#confirm-prompt", Static).update(
            f"[$error b]Not confirmed:[/] {said} [b]{escape(self.target)}[/b]. Nothing ran. Type it again, or Esc."
        )

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "apply" and not event.button.disabled)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "apply":
            return not self.must_type and not self.confirmation.refusals
        return True

    def action_apply(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)

    def action_toggle_full(self) -> None:
        full = self.query_one("#confirm-full")
        full.display = not full.display
        self.query_one("#confirm-summary").display = not full.display
        self.query_one("#confirm-steps-pane", VerticalScroll).scroll_home(animate=False)

    def action_scroll(self, lines: int) -> None:
        self.query_one("#confirm-steps-pane", VerticalScroll).scroll_relative(y=lines, animate=False)


def _summary(heading: str, steps: tuple[FixStep, ...]) -> Iterator[Static]:
    """A heading, then each step in at most two lines (names from the database are data: no markup)."""
    yield Static(f"[b]{escape(heading)}[/b] [$text-muted](v or F2: the full text)[/]")
    for number, step in enumerate(steps, 1):
        yield Static(f"{number}. {step_summary(step)}", classes="step-summary", markup=False)


def _from_plan(plan: Any, target: str, where: str, production: bool) -> Confirmation:
    finding = plan.finding or plan.requested
    return Confirmation(
        verb="Apply", title=finding.title, target=target, where=where, object=finding.object,
        safety=FixSafety(plan.safety) if plan.safety else FixSafety.MANUAL, lock=plan.lock,
        steps=tuple(plan.steps), inverse=tuple(plan.inverse or ()), notes=getattr(plan, "notes", None),
        refusals=list(plan.refusals or ()), production=production,
    )
