"""Every fix dbvitals applied, from the append-only journal: when, where, what, outcome, entry.
Enter opens an entry in full; `u` (or `z`, as in lazygit) undoes it after the same
confirmation a fix gets. At 80 columns the table keeps what identifies an entry and how it
ended; wider terminals add the check, kind, user and duration."""

from __future__ import annotations

import datetime as dt
from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Static
from typing import Any

from checks.model import FixStep
from console.commands.history import state_text
from console.keys import KeySection
from console.messages import UndoEntry
from console.widgets.fix_view import StepsView
from console.widgets.keys_bar import KeysBar


# (key, header); the narrow set first, in the order shown at 80 columns.
# At 80 columns the entry id (which repeats the date) is said under the table for the selected row.
NARROW = (("when", "When"), ("target", "Target"), ("what", "What was done"), ("outcome", "Outcome"))
WIDE = (("when", "When"), ("target", "Target"), ("what", "What was done"), ("outcome", "Outcome"),
        ("duration", "Time"), ("user", "User"), ("id", "Entry"))
WIDE_FROM = 110
UNDO_KEYS = "u,z"


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def undone_map(entries: list[Any]) -> dict[str, str]:
    """Fix entry id -> the undo entry that reversed it."""
    return {e.undoes: e.id for e in entries if getattr(e, "undoes", None) and e.outcome in {"fixed", "not_fixed"}}


def _when(iso: str) -> str:
    """Local time with the year (a journal outlives the year); the zone is in the column's header."""
    try:
        return dt.datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError):
        return str(iso or "")[:16]


def local_zone() -> str:
    return dt.datetime.now().astimezone().strftime("%Z")


def what_done(entry: Any, by_id: dict[str, Any]) -> str:
    """"fix of postgres.fk-missing-index on public.t", "terminate session 123", "undo of fix of …"."""
    finding = entry.finding or {}
    if entry.undoes:
        original = by_id.get(entry.undoes)
        return "undo of " + (what_done(original, {}) if original is not None else f"entry {entry.undoes}")
    if entry.kind == "fix":
        return f"fix of {finding.get('check', '?')} on {finding.get('object', '?')}"
    return str(finding.get("title") or f"{entry.kind} {finding.get('object', '')}")


def entry_fields(entry: Any, undone_by: str | None, by_id: dict[str, Any] | None = None) -> dict[str, str]:
    finding = entry.finding or {}
    return {
        "when": _when(entry.started_at),
        "what": what_done(entry, by_id or {}),
        "kind": f"undo {entry.undoes}" if entry.undoes else entry.kind,
        "user": entry.user or "",
        "target": entry.target,
        "check": finding.get("check", ""),
        "object": finding.get("object", ""),
        "outcome": state_text(entry, undone_by),
        "duration": "" if entry.duration_ms is None else f"{entry.duration_ms / 1000:.1f}s",
        "id": entry.id,
    }


class FixHistoryScreen(Screen):
    KEYS = KeySection("fix history", 60)
    BINDINGS = [
        Binding("enter", "open", "Open", tooltip="The entry in full: steps, inverse, message"),
        Binding(UNDO_KEYS, "undo", "Undo", tooltip="Undo the entry: its inverse, after a confirmation"),
        Binding("escape,h,q", "app.pop_screen", "Back", tooltip="Back to the findings"),
        Binding("j", "cursor(1)", "Down", show=False, tooltip="Next entry (also Down)"),
        Binding("k", "cursor(-1)", "Up", show=False, tooltip="Previous entry (also Up)"),
    ]

    def __init__(self, entries: list[Any], problem: str | None = None, *, journal: str = "",
                 config: str | None = None) -> None:
        super().__init__(classes="history")
        self.entries = entries
        self.problem = problem
        self.journal = journal
        self.config = config
        self._columns: tuple[tuple[str, str], ...] = ()

    def compose(self) -> ComposeResult:
        yield Static(self._title(), id="history-title", classes="pane-title")
        yield DataTable(id="history", cursor_type="row", zebra_stripes=True)
        yield Static("", id="history-selected", classes="muted")
        yield KeysBar()

    def _title(self) -> str:
        count = len(self.entries)
        title = f"[b]Fix history[/b] {count} entr{'y' if count == 1 else 'ies'}, newest first"
        if self.journal:
            title += f"\n[$text-muted]journal[/] {escape(self.journal)}"
        if self.config:
            # The same undo from a shell needs the config this console runs on.
            title += f"\n[$text-muted]config[/]  {escape(self.config)}"
        if self.problem:
            title += f"\n[$warning]{escape(self.problem)}[/]"
        return title

    def on_mount(self) -> None:
        self._fill()
        self.query_one(DataTable).focus()

    def on_resize(self) -> None:
        if self._wanted() != self._columns:
            self._fill()

    def _wanted(self) -> tuple[tuple[str, str], ...]:
        return WIDE if self.app.size.width >= WIDE_FROM else NARROW

    def _fill(self) -> None:
        table = self.query_one(DataTable)
        table.clear(columns=True)
        self._columns = self._wanted()
        undone = undone_map(self.entries)
        by_id = {e.id: e for e in self.entries}
        rows = []
        for entry in reversed(self.entries):
            fields = entry_fields(entry, undone.get(entry.id), by_id)
            if self._columns is NARROW and undone.get(entry.id):
                fields["outcome"] = f"{entry.outcome}, undone"  # by which entry: Enter shows it
            rows.append((entry.id, fields))
        widths = {key: max([len(label) + (len(local_zone()) + 3 if key == "when" else 0), *(len(f[key]) for _, f in rows)])
                  for key, label in self._columns}
        # What was done gives way so that the outcome and the entry id always stay on screen.
        widths["target"] = min(widths["target"], 12)
        others = sum(w for key, w in widths.items() if key != "what") + 2 * len(widths) + 2
        widths["what"] = max(10, min(widths["what"], self.app.size.width - others))
        for key, label in self._columns:
            table.add_column(f"{label} ({local_zone()})" if key == "when" else label, key=key, width=widths[key])
        for entry_id, fields in rows:
            table.add_row(*(_fit(fields[key], widths[key]) for key, _ in self._columns), key=entry_id)

    def reload(self, entries: list[Any]) -> None:
        """After an undo: the new entry on top, the cursor back there."""
        self.entries = entries
        self.query_one("#history-title", Static).update(self._title())
        self._fill()

    def selected(self) -> Any | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return next((e for e in self.entries if e.id == key.value), None)

    def action_cursor(self, delta: int) -> None:
        table = self.query_one(DataTable)
        table.move_cursor(row=table.cursor_row + delta)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        entry = self.selected()
        self.query_one("#history-selected", Static).update(
            "" if entry is None else f"entry {escape(entry.id)} · Enter: in full · "
            + ("u: undo" if entry.inverse else "cannot be undone: no inverse recorded"))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        entry = self.selected()
        if entry is not None:
            undone = undone_map(self.entries).get(entry.id)
            self.app.push_screen(HistoryEntryScreen(entry, undone, self.config))

    def action_undo(self) -> None:
        entry = self.selected()
        if entry is not None:
            self.post_message(UndoEntry(entry.id))


class HistoryEntryScreen(Screen):
    """One journal entry in full."""
    KEYS = KeySection("history entry", 65)
    BINDINGS = [
        Binding(UNDO_KEYS, "undo", "Undo", tooltip="Undo this entry: its inverse, after a confirmation"),
        Binding("escape,backspace,q", "app.pop_screen", "Back", tooltip="Back to the history"),
        Binding("j", "scroll(1)", "Down", show=False, tooltip="Scroll down"),
        Binding("k", "scroll(-1)", "Up", show=False, tooltip="Scroll up"),
    ]

    def __init__(self, entry: Any, undone_by: str | None, config: str | None) -> None:
        super().__init__(classes="history-entry")
        self.entry = entry
        self.undone_by = undone_by
        self.config = config

    def compose(self) -> ComposeResult:
        e = self.entry
        finding = e.finding or {}
        rows = [
            ("entry", f"{e.id} ({e.kind}{' of ' + e.undoes if e.undoes else ''})"),
            ("outcome", state_text(e, self.undone_by)
             + ("" if e.verified is None else f", verified: {'yes' if e.verified else 'no'}")),
            ("started", f"{e.started_at} by {e.user} on {e.host}"),
            ("finished", (e.finished_at or "—")
             + (f" ({e.duration_ms / 1000:.2f}s)" if e.duration_ms is not None else "")),
            ("target", f"{e.target} ({e.engine}{', ' + e.environment if e.environment else ''}) {e.url}"),
            ("finding", f"{finding.get('id', '')} {finding.get('check', '')} [{finding.get('severity', '')}]"),
            ("object", str(finding.get("object", ""))),
            ("fix", e.summary),
            ("safety", e.safety + (f"; lock/impact: {e.lock}" if e.lock else "")),
            ("steps", f"{e.steps_done} of {len(e.steps)} applied"),
            ("message", e.message or ("the process stopped before it finished: check the target"
                                      if e.outcome is None else "")),
            *(("left", item) for item in e.leftovers),
        ]
        if e.inverse:
            rows.append(("shell", f"dbvitals undo {e.id}" + (f" --config {self.config}" if self.config else "")))
        else:
            rows.append(("undo", "cannot be undone: no inverse was recorded (a cancel or terminate has none)"))
        with VerticalScroll(id="entry-body"):
            yield Static(
                "\n".join(f"[$text-muted]{label:<9}[/] {escape(str(value))}" for label, value in rows),
                id="entry-fields",
            )
            yield Static("Steps", classes="section")
            yield StepsView([FixStep.from_dict(s) for s in e.steps], id="entry-steps")
            yield Static("Inverse (what undo runs)", classes="section")
            if e.inverse:
                yield StepsView([FixStep.from_dict(s) for s in e.inverse], id="entry-inverse")
            else:
                yield Static("[$text-muted]none recorded: this entry cannot be undone[/]")
        yield KeysBar()

    def action_undo(self) -> None:
        self.post_message(UndoEntry(self.entry.id))

    def action_scroll(self, lines: int) -> None:
        self.query_one("#entry-body", VerticalScroll).scroll_relative(y=lines, animate=False)
