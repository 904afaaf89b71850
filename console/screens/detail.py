"""One finding: what, why it matters, the evidence, and the fix with its safety, lock and
inverse. `a` applies the fix where the target allows it."""

from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from checks.model import Finding, FixSafety
from console.widgets.evidence_table import EvidenceTable
from console.widgets.fix_view import SAFETY_VARIABLES, SAFETY_WORDS, StepsView
from console.widgets.styles import SEVERITY_LABELS


class FindingDetailScreen(Screen):
    BINDINGS = [
        Binding("escape,backspace", "app.pop_screen", "Back"),
        Binding("a", "apply_fix", "Apply fix"),
        Binding("c", "copy_fix", "Copy fix"),
        Binding("y", "copy_evidence", "Copy evidence"),
    ]

    def __init__(self, finding: Finding, rationale: str | None, fix_allowed: bool, why_not: str | None) -> None:
        super().__init__(classes="detail")
        self.finding = finding
        self.rationale = rationale
        self.fix_allowed = fix_allowed
        self.why_not = why_not

    def compose(self) -> ComposeResult:
        f = self.finding
        sev = f.severity
        with VerticalScroll(id="detail-body"):
            yield Static(
                f"[$severity-{sev.value} b reverse] {SEVERITY_LABELS[sev]} [/] [b]{escape(f.title)}[/b]", id="detail-title"
            )
            yield Static(
                f"[$text-muted]target[/] {escape(f.target)}  [$text-muted]check[/] {escape(f.check)}  "
                f"[$text-muted]id[/] {f.id}\n[$text-muted]object[/] {escape(f.object)}",
                id="detail-meta",
            )
            yield Static(escape(f.message), id="detail-message")
            if self.rationale:
                yield Static("Why it matters", classes="section")
                yield Static(escape(self.rationale), id="detail-rationale")
            yield Static("Evidence", classes="section")
            yield EvidenceTable(f.evidence, id="detail-evidence")
            yield Static("Fix", classes="section")
            yield from self._fix()
            yield Static("", id="fix-outcome")
        yield Footer()

    def _fix(self) -> ComposeResult:
        fix = self.finding.fix
        if fix is None:
            yield Static("No automatic fix: the message above says what to do.", classes="muted")
            return
        variable = SAFETY_VARIABLES[fix.safety]
        lines = [f"[b]{escape(fix.summary)}[/b]", f"[$text-muted]safety[/] [${variable} b]{SAFETY_WORDS[fix.safety]}[/]"]
        if fix.lock:
            lines.append(f"[$text-muted]lock / impact[/] {escape(fix.lock)}")
        if fix.notes:
            lines.append(f"[$text-muted]notes[/] {escape(fix.notes)}")
        if fix.safety is FixSafety.MANUAL:
            lines.append("[$text-muted]apply[/] by hand; dbvitals never runs a manual fix")
        elif self.fix_allowed:
            lines.append("[$text-muted]apply[/] press [b]a[/b]: you will see exactly what runs before anything does")
        else:
            lines.append(f"[$text-muted]apply[/] not here: {escape(self.why_not or 'fixes are off for this target')}")
        yield Static("\n".join(lines), id="fix-summary")
        yield StepsView(fix.steps, id="fix-steps")
        if fix.inverse:
            yield Static("Inverse (undo)", classes="subsection")
            yield StepsView(fix.inverse, id="fix-inverse")
        else:
            yield Static("[$text-muted]inverse[/] none recorded", classes="subsection")

    def show_outcome(self, text: str) -> None:
        self.query_one("#fix-outcome", Static).update(text)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "apply_fix":
            fix = self.finding.fix
            return fix is not None and fix.safety is not FixSafety.MANUAL and self.fix_allowed
        if action == "copy_fix":
            return self.finding.fix is not None
        return True

    def action_apply_fix(self) -> None:
        self.app.start_fix(self.finding)

    def action_copy_fix(self) -> None:
        self.app.copy_fix(self.finding)

    def action_copy_evidence(self) -> None:
        self.app.copy_evidence(self.finding)
