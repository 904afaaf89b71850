"""Every configured target: kind, environment, state and how old that answer is, finding
counts by severity, connections, latency, version; updated cell by cell as results arrive.
Narrow terminals drop the version, then the latency, so the rest never scrolls sideways."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from checks.model import Severity, TargetState, TargetStatus
from console.keys import KeySection
from console.widgets.styles import theme_style

COLUMNS = (
    ("target", "Target"),
    ("kind", "Kind"),
    ("env", "Env"),
    ("state", "State · age"),
    ("findings", "Findings"),
    ("conns", "Conns"),
    ("latency", "Latency"),
    ("version", "Version"),
)
# Below this terminal width a column is left out.
DROP_BELOW = {"version": 110, "latency": 96}

STATE_LABELS = {
    TargetState.CONNECTED: "up",
    TargetState.REFUSED: "down: refused",
    TargetState.RESET: "down: reset",
    TargetState.CLOSED: "down: closed",
    TargetState.TIMEOUT: "down: timeout",
    TargetState.AUTH_FAILED: "down: auth failed",
    TargetState.TLS_ERROR: "down: TLS error",
    TargetState.PROTOCOL_ERROR: "down: protocol",
    TargetState.UNKNOWN_HOST: "down: unknown host",
    TargetState.SSH_ERROR: "down: ssh bastion",
    TargetState.ERROR: "down: error",
    TargetState.SKIPPED: "skipped: server full",
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
    answered_at: float | None = None  # when the target last answered a probe or a check run, or failed to


def age_text(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m"
    return f"{seconds // 3600:.0f}h"


class TargetsTable(DataTable):
    """The targets view. Enter on a row shows that target's findings; `R` re-runs it."""

    KEYS = KeySection("targets table", 12)
    BINDINGS: ClassVar = [
        Binding("down,j", "cursor_down", "Down", show=False, tooltip="The target below"),
        Binding("up,k", "cursor_up", "Up", show=False, tooltip="The target above"),
        Binding("enter", "select_cursor", "Show", show=False, tooltip="Show only this target's findings"),
    ]

    def __init__(self, *, clock: Callable[[], float], **kwargs) -> None:
        super().__init__(**kwargs)
        self.clock = clock
        self._keys: list[str] = []
        self._rows: dict[str, TargetRow] = {}

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = False
        self._build(self.app.size.width)

    def on_resize(self) -> None:
        if self._visible(self.app.size.width) != self._keys:
            self._build(self.app.size.width)

    def _visible(self, width: int) -> list[str]:
        return [key for key, _ in COLUMNS if width >= DROP_BELOW.get(key, 0)]

    def _build(self, width: int) -> None:
        cursor = self.cursor_row
        self.clear(columns=True)
        self._keys = self._visible(width)
        labels = dict(COLUMNS)
        for key in self._keys:
            self.add_column(labels[key], key=key)
        for row in self._rows.values():
            self.add_row(*self._cells(row), key=row.name)
        if self.row_count:
            self.move_cursor(row=min(cursor, self.row_count - 1))

    def show(self, row: TargetRow) -> None:
        self._rows[row.name] = row
        cells = self._cells(row)
        if row.name in self.rows:
            for key, value in zip(self._keys, cells):
                self.update_cell(row.name, key, value, update_width=True)
        else:
            self.add_row(*cells, key=row.name)

    def tick(self) -> None:
        """Redraw the ages: the state cells only."""
        for name, row in self._rows.items():
            if name in self.rows:
                self.update_cell(name, "state", self._state(row), update_width=True)

    def selected_target(self) -> str | None:
        if not self.row_count:
            return None
        key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        return key.value

    def _state(self, row: TargetRow) -> Text:
        app = self.app
        status = row.status
        if status is None:
            return Text("checking…" if row.running else "not run", style=theme_style(app, "state-pending"))
        label = STATE_LABELS.get(status.state, status.state.value)
        style = "state-up" if status.reachable else "state-down"
        state = Text(label, style=theme_style(app, style, bold=not status.reachable))
        if row.answered_at is not None:
            state.append(f" · {age_text(max(self.clock() - row.answered_at, 0))}", style=theme_style(app, "state-pending"))
        if row.running:
            state.append(" …")
        return state

    def _cells(self, row: TargetRow) -> list[Text | str]:
        app = self.app
        env = Text(row.environment or "—")
        if row.production:
            env = Text(f" {(row.environment or 'production').upper()} ", style=theme_style(app, "production", bold=True, reverse=True))
        status = row.status
        latency = "—" if status is None or status.latency_ms is None else f"{status.latency_ms:.0f} ms"
        version = "—" if status is None or not status.server_version else status.server_version.split()[0][:12]
        if row.used is None and row.allowed is None:
            conns = Text("—")
        else:
            conns = Text(f"{'?' if row.used is None else row.used}/{'?' if row.allowed is None else row.allowed}")
            if status is not None and not status.reachable:
                # Measured before the target went down: say so rather than show it as current.
                conns = Text(f"{conns.plain} old", style=theme_style(app, "state-pending"))
        cells: dict[str, str | Text] = {"target": Text(row.name, style="bold"), "kind": row.kind, "env": env, "state": self._state(row),
                 "findings": self._counts(row), "latency": latency, "conns": conns, "version": version}
        return [cells[key] for key in self._keys]

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
