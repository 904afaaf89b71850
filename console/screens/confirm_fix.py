"""The last look before a fix runs: exactly which statements, on which target and database,
their safety, lock and inverse. Unsafe fixes and production targets need the target's name
typed, so a reflexive Enter cannot change a production database."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from checks.model import FixSafety
from console.widgets.fix_view import SAFETY_VARIABLES, SAFETY_WORDS, StepsView


class ConfirmFixModal(ModalScreen[bool]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, plan: Any, *, target: str, where: str, production: bool) -> None:
        super().__init__(classes="confirm-fix")
        self.plan = plan
        self.target = target
        self.where = where
        self.production = production
        self.safety = FixSafety(plan.safety) if plan.safety else FixSafety.MANUAL
        self.must_type = production or self.safety is FixSafety.UNSAFE

    def compose(self) -> ComposeResult:
        plan = self.plan
        finding = plan.finding or plan.requested
        refusals = list(plan.refusals or ())
        with VerticalScroll(id="confirm-body"):
            yield Static(f"[b]Apply fix:[/b] {escape(finding.title)}", id="confirm-title")
            env = "[$production b reverse] PRODUCTION [/] " if self.production else ""
            yield Static(
                f"{env}[$text-muted]target[/] [b]{escape(self.target)}[/b]  [$text-muted]at[/] {escape(self.where)}\n"
                f"[$text-muted]object[/] {escape(finding.object)}\n"
                f"[$text-muted]safety[/] [${SAFETY_VARIABLES[self.safety]} b]{SAFETY_WORDS[self.safety]}[/]"
                + (f"\n[$text-muted]lock / impact[/] {escape(plan.lock)}" if plan.lock else ""),
                id="confirm-where",
            )
            yield Static("[b]Will run[/b]", classes="section")
            yield StepsView(plan.steps, id="confirm-steps")
            yield Static("[b]Inverse (undo)[/b]" if plan.inverse else "[$text-muted]No inverse recorded[/]", classes="section")
            if plan.inverse:
                yield StepsView(plan.inverse, id="confirm-inverse")
            if refusals:
                yield Static(
                    "[$error b]Refused:[/] " + "; ".join(escape(r) for r in refusals), id="confirm-refusals"
                )
            elif self.must_type:
                reason = "an unsafe fix" if self.safety is FixSafety.UNSAFE else "a production target"
                yield Static(f"This is {reason}: type [b]{escape(self.target)}[/b] to confirm.", id="confirm-prompt")
                yield Input(placeholder=self.target, id="confirm-name")
        with Horizontal(id="confirm-buttons"):
            yield Button("Apply", id="apply", variant="error" if self.must_type else "primary",
                         disabled=bool(refusals) or self.must_type)
            yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        if self.query("#confirm-name"):
            self.query_one("#confirm-name", Input).focus()
        else:
            self.query_one("#cancel" if self.plan.refusals else "#apply", Button).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_one("#apply", Button).disabled = event.value.strip() != self.target

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.value.strip() == self.target:
            self.dismiss(True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "apply" and not event.button.disabled)

    def action_cancel(self) -> None:
        self.dismiss(False)
