"""Every configured target: kind, environment, state, latency, version, connections, and
its finding counts by severity, updated cell by cell as results arrive."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from rich.text import Text
from textual.widgets import DataTable

from checks.model import Severity, TargetState, TargetStatus
from console.widgets.styles import theme_style

COLUMNS = (
    ("target", "Target"),
    ("kind", "Kind"),
    ("env", "Env"),
    ("state", "State"),
    ("findings", "Findings"),
    ("latency", "Latency"),
    ("conns", "Conns"),
    ("version", "Version"),
)

STATE_LABELS = {
    TargetState.CONNECTED: "up",
    TargetState.REFUSED: "down: refused",
    TargetState.TIMEOUT: "down: timeout",
    TargetState.AUTH_FAILED: "down: auth failed",
    TargetState.TLS_ERROR: "down: TLS error",
    TargetState.UNKNOWN_HOST: "down: unknown host",
    TargetState.ERROR: "down: error",
}
_SHORT = {Severity.CRITICAL: "C", Severity.HIGH: "H", Severity.MEDIUM: "M", Severity.LOW: "L", Severity.INFO: "I"}


@dataclass
class TargetRow:
    """What the console knows of one target; None means not known yet."""

    name: str
    kind: str
    environment: str | None
    production: bool
    status: TargetStatus | None = None
    running: bool = False
    used: int | None = None
    allowed: int | None = None
    counts: Counter[Severity] | None = None


class TargetsTable(DataTable):
    """The targets view. Enter on a row shows that target's findings; `R` re-runs it."""

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = False
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def show(self, row: TargetRow) -> None:
        cells = self._cells(row)
        if row.name in self.rows:
            for (key, _), value in zip(COLUMNS, cells):
                self.update_cell(row.name, key, value, update_width=True)
        else:
            self.add_row(*cells, key=row.name)

    def selected_target(self) -> str | None:
        if not self.row_count:
            return None
        key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        return key.value

    def _cells(self, row: TargetRow) -> list[Text | str]:
        app = self.app
        env = Text(row.environment or "—")
        if row.production:
            env = Text(f" {(row.environment or 'production').upper()} ", style=theme_style(app, "production", bold=True, reverse=True))
        status = row.status
        if status is None:
            state = Text("checking…" if row.running else "not run", style=theme_style(app, "state-pending"))
        else:
            label = STATE_LABELS.get(status.state, status.state.value)
            style = "state-up" if status.reachable else "state-down"
            state = Text(label + (" …" if row.running else ""), style=theme_style(app, style, bold=not status.reachable))
        latency = "—" if status is None or status.latency_ms is None else f"{status.latency_ms:.0f} ms"
        version = "—" if status is None or not status.server_version else status.server_version.split()[0][:12]
        if row.used is None and row.allowed is None:
            conns = "—"
        else:
            conns = f"{'?' if row.used is None else row.used}/{'?' if row.allowed is None else row.allowed}"
        return [Text(row.name, style="bold"), row.kind, env, state, self._counts(row), latency, conns, version]

    def _counts(self, row: TargetRow) -> Text:
        if row.counts is None:
            return Text("—")
        present = [(s, n) for s in Severity if (n := row.counts.get(s, 0))]
        if not present:
            return Text("none", style=theme_style(self.app, "state-up"))
        text = Text()
        for severity, count in present:
            if text:
                text.append(" ")
            text.append(f"{count}{_SHORT[severity]}", style=theme_style(self.app, f"severity-{severity.value}", bold=True))
        return text
