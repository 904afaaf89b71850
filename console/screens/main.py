"""The one screen an on-call engineer lives in: targets on top, every finding below."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Header, Static

from rich.markup import escape

from checks.model import Finding, Severity
from console.widgets.evidence_view import proof_line
from console.filtering import Field, Query, with_field
from console.widgets.filter_box import FilterBox, literal
from console.widgets.keys_bar import KeysBar
from console.widgets.finding_store import SORT_KEYS, finding_fields, severity_counts
from console.widgets.findings_table import FindingsTable, stale_time
from console.widgets.styles import SEVERITY_LABELS
from console.keys import KeySection
from console.messages import ApplyFix, CopyEvidence, CopyFix, ExportFindings, OpenActivity, OpenFinding, RerunTarget
from console.widgets.targets_table import TargetRow, TargetsTable, age_text

if TYPE_CHECKING:  # the controller imports the screens it opens
    from console.controller import Controller

SEVERITY_KEYS = {"1": Severity.CRITICAL, "2": Severity.HIGH, "3": Severity.MEDIUM, "4": Severity.LOW, "5": Severity.INFO}
# Coalesces a burst of results (or keystrokes) into one refresh of the findings table.
REFRESH_DELAY = 0.05


SEVERITY_GROUP = Binding.Group("Sev", compact=True)


class MainScreen(Screen):
    """Reads the targets and findings from the controller; asks for everything else by message."""

    KEYS = KeySection("main", 10)
    # The footer names each key in a word; the tooltip is what `?` lists.
    BINDINGS = [
        Binding("enter", "open", "Open", tooltip="Open the selected finding: proof, evidence, fix"),
        Binding("slash", "filter", "Filter",
                tooltip="Filter: words, sev:high,critical, target:NAME, check:GLOB, state:stale, !term, /regex/"),
        *(Binding(key, f"toggle_severity('{sev.value}')", f"Only/also {sev.value}", group=SEVERITY_GROUP,
                  tooltip=f"Show only, or also, {sev.value} findings")
          for key, sev in SEVERITY_KEYS.items()),
        Binding("a", "apply_fix", "Apply", tooltip="Apply the selected finding's fix (asks first)"),
        Binding("c", "copy_fix", "Copy", tooltip="Copy the fix to the clipboard (OSC 52, works over SSH); its inverse commented out, so a paste never runs the undo"),
        Binding("y", "copy_evidence", "Evid", tooltip="Copy the evidence to the clipboard as JSON (OSC 52)"),
        Binding("t", "cycle_target", "Target", tooltip="Show one target's findings, then the next, then all"),
        Binding("C", "cycle_check", "Check", show=False, tooltip="Show one check's findings, then the next, then all"),
        Binding("x", "clear_filters", "Clear", tooltip="Clear every filter"),
        Binding("s", "cycle_sort", "Sort", tooltip="Sort by the next column (or click a header)"),
        Binding("S", "reverse_sort", "Reverse", show=False, tooltip="Reverse the sort"),
        Binding("R", "rerun_target", "Re-run", show=False, tooltip="Re-run the checks of the selected target"),
        Binding("A", "activity", "Activity",
                tooltip="What is running now on the selected target (as recorded, in a replay)"),
        Binding("e", "export", "Export", tooltip="Export the findings shown to a file you name"),
        Binding("tab", "app.focus_next", "Pane", show=False, tooltip="Move between the targets and the findings (Enter on a target shows its findings)"),
        Binding("escape", "clear_filters", "Clear", show=False, tooltip="Clear the filter"),
    ]

    def __init__(self, controller: Controller) -> None:
        super().__init__(id="main")
        self.controller = controller
        self.filter_query = Query()
        self._refresh_timer: Timer | None = None
        self._cycle_targets: list[str] = []
        self._cycle_checks: list[str] = []
        self._total = 0  # findings in the store when the table was last filled

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="targets-pane"):
            yield Static("Targets", id="targets-title", classes="pane-title")
            yield TargetsTable(id="targets", clock=self.controller.clock)
        yield Static("", id="findings-title", classes="pane-title")
        yield FindingsTable(id="findings")
        yield Static("", id="preview")
        yield FilterBox(self.filter_fields, id="filter",
                        placeholder="words · sev:high,crit · target:NAME · check:postgres.* · !word · /re/")
        yield KeysBar(also={"history", "rerun_all"}, why_off=self.why_off)

    def on_mount(self) -> None:
        targets = self.query_one(TargetsTable)
        for row in self.controller.targets.values():
            targets.show(row)
        self.query_one(FindingsTable).focus()
        self.update_title()

    # --- data arriving ---------------------------------------------------------------------

    def show_target(self, row: TargetRow) -> None:
        """One target's row redrawn (a no-op before the screen is composed or after it is gone)."""
        if not self.is_mounted:
            return
        tables = self.query(TargetsTable)
        if not tables:  # the app is shutting down
            return
        tables.first().show(row)
        self.update_title()

    def tick(self) -> None:
        """The age of every target's last answer, and of the selected finding, redrawn."""
        for table in self.query(TargetsTable):  # none while the app shuts down
            table.tick()
        for findings in self.query(FindingsTable):
            self.show_preview(findings.selected())  # its "seen … ago"

    def schedule_refresh(self) -> None:
        if self._refresh_timer is not None:
            self._refresh_timer.stop()
        self._refresh_timer = self.set_timer(REFRESH_DELAY, self.refresh_findings)

    def refresh_findings(self) -> None:
        self._refresh_timer = None
        table = self.query_one(FindingsTable)
        store = self.controller.store
        stale = {f.id: store.confirmed[(f.target, f.check)] for slot in store.stale for f in store.slots.get(slot, ())}
        table.show(store.select(self.filter_query, table.sort_column, table.sort_reverse), stale)
        self._total = len(store)
        self.update_title()
        self.show_preview(table.selected())

    def on_findings_table_highlighted(self, event: FindingsTable.Highlighted) -> None:
        self.show_preview(event.finding)
        self.query_one(KeysBar).refresh(layout=True)  # whether Apply can act on this one

    def why_off(self, action: str) -> str | None:
        """Why `a` cannot act on the selected finding, said in the footer beside it."""
        if action != "apply_fix" or self.controller.replaying:
            return None
        finding = self.query_one(FindingsTable).selected()
        if finding is None:
            return None
        if finding.target in self.controller.read_only_targets():
            return "read-only"  # the header names the read-only targets
        if finding.fix is None:
            return "no fix"
        return None

    def show_preview(self, finding: Finding | None) -> None:
        """The selected finding readable without opening it: its whole title, then its proof."""
        preview = self.query_one("#preview", Static)
        if finding is None:
            preview.update("")
            return
        table = self.query_one(FindingsTable)
        since = table.stale.get(finding.id)
        seen = self.controller.store.confirmed_at(finding)
        if since is not None:
            age = f"[$warning]stale since {stale_time(since)}[/] "
        elif seen is not None:
            age = f"[$text-muted]seen {age_text(max(self.controller.clock() - seen, 0))} ago[/] "
        else:
            age = ""
        preview.update(
            f"{age}[b]{escape(finding.title)}[/b] [$text-muted]{escape(finding.check)} · {escape(finding.object)}[/]\n"
            f"[$accent]▸[/] {escape(proof_line(finding))}"
        )

    def update_title(self) -> None:
        tables = self.query(FindingsTable)
        if not tables:  # the app is shutting down while a run still reports
            return
        table = tables.first()
        # Against the total the table was filled from: a result that arrived since is not "hidden".
        total = self._total
        counts = severity_counts(table.shown)
        parts = [f"[b]Findings[/b] {len(table.shown):,}" + (f" of {total:,}" if len(table.shown) != total else "")]
        badges = [
            f"[$severity-{sev.value} b]{counts[sev]} {SEVERITY_LABELS[sev]}[/]" for sev in Severity if counts.get(sev)
        ]
        if badges:
            parts.append(" ".join(badges))
        if table.stale:
            parts.append(f"[$warning]{len(table.stale)} stale[/]")
        if self.filter_query.active:
            parts.append(f"[$accent]filter:[/] {literal(self.filter_query.describe())} (x clears)")
        if self.filter_query.problems:
            parts.append(f"[$error]{literal(self.filter_query.problems[0])}[/]")
        self.query_one("#findings-title", Static).update(" · ".join(parts))
        running = self.controller.running_targets()
        title = f"[b]Targets[/b] {len(self.controller.targets)}"
        read_only = self.controller.read_only_targets()
        if read_only and not self.controller.replaying:
            title += f" · [$text-muted]read-only (allow_fixes off): {escape(', '.join(sorted(read_only)))}[/]"
        if running:
            title += f" · [$accent]checking {', '.join(sorted(running))}…[/]"
        self.query_one("#targets-title", Static).update(title)

    # --- filtering and sorting -------------------------------------------------------------

    def filter_fields(self) -> tuple[Field, ...]:
        return finding_fields(self.controller.targets, {row.kind for row in self.controller.targets.values()})

    def set_filter_text(self, text: str) -> None:
        """What a key that filters does: it writes the filter into the box, which applies it."""
        self.query_one(FilterBox).set_text(text)

    def filter_on(self, name: str, values: set[str] | frozenset[str]) -> None:
        """The box's terms on one field replaced by `values` (none: dropped)."""
        self.set_filter_text(with_field(self.query_one(FilterBox).text, name, values, self.filter_fields()))

    def on_filter_box_changed(self, event: FilterBox.Changed) -> None:
        self.filter_query = event.query
        self.schedule_refresh()

    def on_filter_box_closed(self, event: FilterBox.Closed) -> None:
        self.query_one(FindingsTable).focus()

    def action_filter(self) -> None:
        self.query_one(FilterBox).open()

    def action_toggle_severity(self, value: str) -> None:
        self.filter_on("severity", self.filter_query.values_of("severity") ^ {value})

    def action_cycle_target(self) -> None:
        self.filter_on("target", _next_choice([t.lower() for t in self.controller.targets], self._asked("target")))

    def action_cycle_check(self) -> None:
        self.filter_on("check", _next_choice(self.controller.store.checks(), self._asked("check")))

    def _asked(self, name: str) -> frozenset[str]:
        return frozenset(self.filter_query.values_of(name))

    def action_clear_filters(self) -> None:
        self.set_filter_text("")

    def action_cycle_sort(self) -> None:
        table = self.query_one(FindingsTable)
        table.sort_column = SORT_KEYS[(SORT_KEYS.index(table.sort_column) + 1) % len(SORT_KEYS)]
        self.refresh_findings()

    def action_reverse_sort(self) -> None:
        table = self.query_one(FindingsTable)
        table.sort_reverse = not table.sort_reverse
        self.refresh_findings()

    def on_findings_table_sort_requested(self, event: FindingsTable.SortRequested) -> None:
        table = self.query_one(FindingsTable)
        if table.sort_column == event.column:
            table.sort_reverse = not table.sort_reverse
        else:
            table.sort_column, table.sort_reverse = event.column, False
        self.refresh_findings()

    # --- acting on the selection -----------------------------------------------------------

    def selected_finding(self) -> Finding | None:
        """The finding under the cursor, after any refresh still waiting on its debounce:
        a key pressed right after a filter acts on what the filter shows."""
        if self._refresh_timer is not None:
            self._refresh_timer.stop()
            self.refresh_findings()
        return self.query_one(FindingsTable).selected()

    def on_findings_table_opened(self, event: FindingsTable.Opened) -> None:
        finding = self.selected_finding() if self._refresh_timer is not None else event.finding
        if finding is not None:
            self.post_message(OpenFinding(finding))

    def on_data_table_row_selected(self, event: TargetsTable.RowSelected) -> None:
        if isinstance(event.data_table, TargetsTable) and event.row_key.value:
            self.filter_on("target", {event.row_key.value})
            self.query_one(FindingsTable).focus()

    def action_open(self) -> None:
        finding = self.selected_finding()
        if finding is not None:
            self.post_message(OpenFinding(finding))

    def selected_target(self) -> str | None:
        targets = self.query_one(TargetsTable)
        if targets.has_focus:
            return targets.selected_target()
        finding = self.selected_finding()
        return finding.target if finding else targets.selected_target()

    def action_rerun_target(self) -> None:
        target = self.selected_target()
        if target:
            self.post_message(RerunTarget(target))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # A replay shows what was: nothing there can be applied or re-run.
        if action in {"apply_fix", "rerun_target"} and self.controller.replaying:
            return False
        return True

    def action_activity(self) -> None:
        target = self.selected_target()
        if target:
            self.post_message(OpenActivity(target))

    def action_apply_fix(self) -> None:
        finding = self.selected_finding()
        if finding:
            self.post_message(ApplyFix(finding))

    def action_copy_fix(self) -> None:
        finding = self.selected_finding()
        if finding:
            self.post_message(CopyFix(finding))

    def action_copy_evidence(self) -> None:
        finding = self.selected_finding()
        if finding:
            self.post_message(CopyEvidence(finding))

    def action_export(self, fmt: str = "json") -> None:
        self.post_message(ExportFindings(list(self.query_one(FindingsTable).shown), self.filter_query.describe(), fmt))


def _next_choice(options: list[str], current: frozenset[str]) -> frozenset[str]:
    """All → the first → the next → … → all again."""
    if not options:
        return frozenset()
    if len(current) != 1 or next(iter(current)) not in options:
        return frozenset({options[0]}) if not current else frozenset()
    index = options.index(next(iter(current))) + 1
    return frozenset({options[index]}) if index < len(options) else frozenset()
