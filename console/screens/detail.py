"""One finding: what, the one line that proves it, the evidence (wrapped, never cut off), why
it matters, and the fix with its safety, lock and inverse. `a` applies the fix where the
target allows it."""

from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from checks.model import Finding, FixSafety
from console.keys import KeySection
from console.messages import ApplyFix, CopyEvidence, CopyFix
from console.widgets.evidence_view import EvidenceView, proof_line
from console.widgets.findings_table import stale_time
from console.widgets.fix_view import SAFETY_VARIABLES, StepsView, safety_reason
from console.widgets.styles import SEVERITY_LABELS
from console.widgets.targets_table import age_text
from console.widgets.trend import Trend, TrendView
from console.widgets.keys_bar import KeysBar


class FindingDetailScreen(Screen):
    KEYS = KeySection("finding detail", 30)
    BINDINGS = [
        Binding("escape,backspace,q", "app.pop_screen", "Back", tooltip="Back to the findings"),
        Binding("a", "apply_fix", "Apply", tooltip="Apply this fix (asks first)"),
        Binding("c", "copy_fix", "Copy", tooltip="Copy the fix (OSC 52), its inverse commented out"),
        Binding("y", "copy_evidence", "Evid", tooltip="Copy the evidence as JSON (OSC 52)"),
        Binding("j", "scroll('down')", "Down", show=False, tooltip="Scroll down (also Down, PgDn, Space)"),
        Binding("k", "scroll('up')", "Up", show=False, tooltip="Scroll up (also Up, PgUp)"),
    ]

    def __init__(self, finding: Finding, rationale: str | None, fix_allowed: bool, why_not: str | None,
                 stale_since: float | None = None, seen_ago: float | None = None) -> None:
        super().__init__(classes="detail")
        self.finding = finding
        self.rationale = rationale
        self.fix_allowed = fix_allowed
        self.why_not = why_not
        self.stale_since = stale_since
        self.seen_ago = seen_ago  # seconds since a check last reported it, when the screen opened
        self.fixed = False
        # Built here, so a trend read before the screen is composed still lands in it.
        self.trend = TrendView(id="detail-trend")

    def compose(self) -> ComposeResult:
        f = self.finding
        sev = f.severity
        with VerticalScroll(id="detail-body"):
            yield Static(
                f"[$severity-{sev.value} b reverse] {SEVERITY_LABELS[sev]} [/] [b]{escape(f.title)}[/b]", id="detail-title"
            )
            yield Static(f"[$accent b]▸[/] {escape(proof_line(f))}", id="detail-proof")
            stale = ""
            if self.seen_ago is not None and self.stale_since is None:
                stale = f"\n[$text-muted]seen[/] {age_text(self.seen_ago)} ago (when its check last reported it)"
            if self.stale_since is not None:
                stale = (f"\n[$warning b]stale[/] last confirmed at {stale_time(self.stale_since)}: "
                         "the target stopped answering since")
            yield Static(
                f"[$text-muted]target[/] {escape(f.target)}  [$text-muted]check[/] {escape(f.check)}  "
                f"[$text-muted]id[/] {f.id}\n[$text-muted]object[/] {escape(f.object)}{stale}",
                id="detail-meta",
            )
            yield Static(escape(f.message), id="detail-message")
            yield Static("Evidence", classes="section")
            yield EvidenceView(f.evidence, id="detail-evidence")
            yield Static("Trend", classes="section")
            yield self.trend
            if self.rationale:
                yield Static("Why it matters", classes="section")
                yield Static(escape(self.rationale), id="detail-rationale")
            yield Static("Fix", classes="section")
            yield from self._fix()
            yield Static("", id="fix-outcome")
        yield KeysBar()

    def _fix(self) -> ComposeResult:
        fix = self.finding.fix
        if fix is None:
            yield Static("No automatic fix: the message above says what to do.", classes="muted")
            return
        variable = SAFETY_VARIABLES[fix.safety]
        lines = [f"[b]{escape(fix.summary)}[/b]", f"[$text-muted]safety[/] [${variable} b]{escape(safety_reason(fix))}[/]"]
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

    def show_trend(self, trend: Trend | None, why_none: str = "") -> None:
        """The finding's figure across the recorded snapshots, once they have been read."""
        self.trend.show(trend, why_none)

    def show_outcome(self, text: str, *, fixed: bool = False) -> None:
        self.query_one("#fix-outcome", Static).update(text)
        if fixed:
            # Nothing left to apply: the footer stops offering it.
            self.fixed = True
            self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "apply_fix":
            fix = self.finding.fix
            return fix is not None and fix.safety is not FixSafety.MANUAL and self.fix_allowed and not self.fixed
        if action == "copy_fix":
            return self.finding.fix is not None
        return True

    def action_scroll(self, direction: str) -> None:
        body = self.query_one("#detail-body", VerticalScroll)
        body.scroll_relative(y=1 if direction == "down" else -1, animate=False)

    def action_apply_fix(self) -> None:
        self.post_message(ApplyFix(self.finding))

    def action_copy_fix(self) -> None:
        self.post_message(CopyFix(self.finding))

    def action_copy_evidence(self) -> None:
        self.post_message(CopyEvidence(self.finding))
