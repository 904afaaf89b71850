"""What is running now on one target: sessions and blocking, operations, clients and command
rates, refreshed on a timer by a worker over one session; or, when replaying, as recorded.
Under the table, the last minutes of the target as sparklines, from this view's own refreshes.

Cancel (`c`) and terminate (`K`) are unsafe actions (checks.actions.kill) on the highlighted
row of whichever view shows sessions (the tree of who blocks whom included): offered only where
the target allows fixes, confirmed by typing the target's name in the confirmation every action
shows, journalled, verified by reading the server again, and never aimed at dbvitals's own
sessions. `b` terminates the root blocker of the chain the highlighted session waits in.
"""

from __future__ import annotations

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.coordinate import Coordinate
from textual.screen import Screen
from textual.widgets import DataTable, Static
from typing import Any, ClassVar

from checks.actions.kill import kill_refusals
from checks.activity import ActivitySample, Justify, age_keys, detail_fields, for_engine, killable_in, root_blocker, trend_labels
from checks.activity.session import ActivityWatch
from checks.activity.trends import TrendHistory
from checks.display import terminal_safe as safe_line
from console.filtering import Field, Query
from console.formats.activity_text import cell_text
from console.keys import KeySection
from console.messages import StopSession
from console.screens.session_detail import SessionDetailScreen
from console.widgets.trends_view import TrendsView
from console.widgets.filter_box import FilterBox, literal
from console.widgets.keys_bar import KeysBar


INTERVALS = (1.0, 2.0, 5.0, 10.0, 30.0)


class ActivityScreen(Screen[None]):
    KEYS = KeySection("activity", 70)
    DEFAULT_CSS = """
    ActivityScreen #activity-header { height: 1; padding: 0 1; background: $panel; }
    ActivityScreen #activity-notes { height: auto; max-height: 2; padding: 0 1; color: $text-muted; }
    ActivityScreen #activity-table { height: 1fr; }
    ActivityScreen #activity-trends { border-top: hkey $panel; }
    """
    BINDINGS: ClassVar = [
        Binding("escape", "back", "Back", tooltip="Back to the findings"),
        Binding("q", "back", "Back", show=False, tooltip="Back to the findings"),
        Binding("n", "next_section", "Next view", tooltip="The next view: sessions and blocking, operations, clients, ..."),
        Binding("space", "pause", "Pause", tooltip="Pause or resume the refresh"),
        Binding("plus", "slower", "Slower", show=False, tooltip="Refresh less often (1, 2, 5, 10, 30 s)"),
        Binding("minus", "faster", "Faster", show=False, tooltip="Refresh more often"),
        Binding("slash", "filter", "Filter",
                tooltip="Filter the rows: words, COLUMN:VALUE (state:active, app:psql), !term, /regex/"),
        Binding("enter", "detail", "Detail", tooltip="The highlighted session whole: statement, locks, client, ages"),
        Binding("s", "sort", "Sort", tooltip="Sort by the next column (first: by age, oldest first)"),
        Binding("S", "reverse_sort", "Reverse", show=False, tooltip="Reverse the order of the sort"),
        Binding("c", "kill(False)", "Cancel",
                tooltip="Cancel the highlighted session's statement (Redis: CLIENT UNBLOCK ends the blocking "
                        "command it waits in; MongoDB: killOp). Asks first; where the target allows fixes"),
        Binding("K", "kill(True)", "Terminate",
                tooltip="Terminate the highlighted session (Redis: CLIENT KILL closes the connection). "
                        "Asks first; where the target allows fixes"),
        Binding("b", "kill_root_blocker", "Root blocker", show=False,
                tooltip="Terminate the root blocker of the chain the highlighted session waits in (asks first)"),
        Binding("j", "cursor_down", "Down", show=False, tooltip="Next row (also Down)"),
        Binding("k", "cursor_up", "Up", show=False, tooltip="Previous row (also Up)"),
    ]

    def __init__(self, target: str, engine: str, *, settings: Any = None, replay: ActivitySample | None = None,
                 replay_time: str | None = None, allow_kill: bool = False, interval: float = 2.0) -> None:
        super().__init__()
        self.target = target
        self.engine = engine
        self.settings = settings
        self.replay = replay
        self.replay_time = replay_time
        self.allow_kill = allow_kill and replay is None
        self.interval = interval
        self.paused = False
        self.section_index = 0
        self.sort_key: str | None = None  # None: the reader's order (a tree stays a tree)
        self.sort_descending = True
        self.filter_query = Query()
        self.sample: ActivitySample | None = replay
        self.trend_history = TrendHistory()
        self.activity_watch: Any = None
        self._timer: Any = None
        self._refreshing = False

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(id="activity-header")
            yield Static(id="activity-notes")
            yield DataTable(id="activity-table", cursor_type="row", zebra_stripes=False)
            yield TrendsView(trend_labels(for_engine(self.engine)), id="activity-trends")
            yield FilterBox(self.filter_fields, id="activity-filter",
                            placeholder="words · state:active · app:NAME · !word · /re/; Esc clears")
        yield KeysBar()

    def on_mount(self) -> None:
        self.query_one(TrendsView).display = False
        self._sort_by_age()
        if self.replay is None:

            self.activity_watch = ActivityWatch(self.settings, [self.target])
            self.refresh_sample()
            self._timer = self.set_interval(self.interval, self.refresh_sample)
        self.render_sample()

    async def on_unmount(self) -> None:
        if self.activity_watch is not None:
            await self.activity_watch.close()

    # --- data --------------------------------------------------------------------------------

    @work(group="activity", exit_on_error=False)
    async def refresh_sample(self) -> None:
        # A refresh still running when the next is due is skipped, never piled up.
        if self.paused or self._refreshing or self.activity_watch is None:
            return
        self._refreshing = True
        try:
            samples = await self.activity_watch.refresh()
        finally:
            self._refreshing = False
        self.sample = samples.get(self.target)
        if self.sample is not None:
            self.trend_history.add(self.sample)
        self.render_sample()

    @property
    def sections(self) -> list[tuple[str, str, list[tuple[str, str, Justify]], int]]:
        return for_engine(self.engine).LAYOUT

    def rows(self) -> list[dict[str, Any]]:
        if self.sample is None:
            return []
        section, _, columns, _ = self.sections[self.section_index]
        rows = list(self.sample.sections.get(section) or [])
        if self.filter_query.active:
            rows = [r for r in rows if self.filter_query.matches(*_filterable(r))]
        key = self.sort_key
        if key is not None:
            # Unknown values last, whichever the direction; equal ones keep the reader's order.
            known = [r for r in rows if r.get(key) is not None]
            known.sort(key=lambda r: _sortable(r.get(key)), reverse=self.sort_descending)
            rows = known + [r for r in rows if r.get(key) is None]
        return rows

    def _sort_by_age(self) -> None:
        """As a section opens: its age column, oldest first; else the order the reader gave."""
        self.sort_key = age_keys(for_engine(self.engine)).get(self.sections[self.section_index][0])
        self.sort_descending = True

    def highlighted(self) -> dict[str, Any] | None:
        """The row under the cursor, as the last refresh read it."""
        table = self.query_one("#activity-table", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
        return next((r for r in self.rows() if _row_key(r) == key), None)

    def render_sample(self) -> None:
        if not self.query("#activity-table"):  # not composed yet, or already gone
            return
        section, title, columns, _ = self.sections[self.section_index]
        status = ""
        if self.replay is not None:
            status = f"replay {self.replay_time or self.replay.taken_at}"
        elif self.sample is not None:
            status = f"{self.sample.taken_at[11:19]} UTC every {self.interval:g}s" + ("  PAUSED" if self.paused else "")
        elif self.activity_watch is not None and self.target in self.activity_watch.statuses:
            state = self.activity_watch.statuses[self.target]
            status = f"down: {state.state.value}"
        names = " ".join(f"[b]{t}[/]" if i == self.section_index else t
                         for i, (_, t, _, _) in enumerate(self.sections))
        self.query_one("#activity-header", Static).update(
            f"[b]{escape(safe_line(self.target))}[/] {escape(status)}  {escape(title)}"
            + (f"  /{literal(safe_line(self.filter_query.describe()))}" if self.filter_query.active else "")
        )
        notes = list(self.sample.notes) if self.sample else []
        error = None
        if self.sample is None and self.activity_watch is not None and self.target in self.activity_watch.statuses:
            error = self.activity_watch.statuses[self.target].error
        self.query_one("#activity-notes", Static).update(
            escape(safe_line("; ".join([*(n for n in notes), *([error] if error else [])])))
            or f"[$text-muted]views: {names}[/]"
        )
        table = self.query_one("#activity-table", DataTable)
        cursor = table.cursor_row
        table.clear(columns=True)
        arrow = " ▼" if self.sort_descending else " ▲"
        for index, (key, header, _) in enumerate(columns):
            table.add_column(header + (arrow if key == self.sort_key else ""), key=str(index))
        for row in self.rows():
            table.add_row(*(cell_text(row, key)[:120] for key, _, _ in columns), key=_row_key(row))
        if table.row_count:
            table.move_cursor(row=min(cursor, table.row_count - 1))
        if self.replay is None:
            self.query_one(TrendsView).show(self.trend_history)

    # --- actions -----------------------------------------------------------------------------

    def action_back(self) -> None:
        self.dismiss()

    def action_next_section(self) -> None:
        self.section_index = (self.section_index + 1) % len(self.sections)
        self._sort_by_age()
        self.query_one(FilterBox).reparse()  # another view, other columns
        self.render_sample()

    def action_pause(self) -> None:
        self.paused = not self.paused
        self.render_sample()

    def _set_interval(self, step: int) -> None:
        if self.replay is not None:
            return
        index = min(max(INTERVALS.index(self.interval) + step if self.interval in INTERVALS else 1, 0), len(INTERVALS) - 1)
        self.interval = INTERVALS[index]
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_interval(self.interval, self.refresh_sample)
        self.render_sample()

    def action_slower(self) -> None:
        self._set_interval(1)

    def action_faster(self) -> None:
        self._set_interval(-1)

    def action_sort(self) -> None:
        """The next column, largest (oldest) first; after the last, the reader's own order."""
        keys = [key for key, _, _ in self.sections[self.section_index][2] if key != "tree"]
        at = keys.index(self.sort_key) + 1 if self.sort_key in keys else 0
        self.sort_key = keys[at] if at < len(keys) else None
        self.sort_descending = True
        self.render_sample()

    def action_reverse_sort(self) -> None:
        self.sort_descending = not self.sort_descending
        self.render_sample()

    def action_detail(self) -> None:
        row = self.highlighted()
        if row is None or self.sample is None:
            return
        module = for_engine(self.engine)
        if self.sections[self.section_index][0] in killable_in(module):
            # A row of the tree or of a summary view carries a few fields: the session's own row has them all.
            sessions = self.sample.sections.get(module.KILLABLE or "", [])
            row = next((r for r in sessions if _row_key(r) == _row_key(row)), row)
        self.app.push_screen(SessionDetailScreen(self.target, row, detail_fields(for_engine(self.engine)),
                                                 self.sample.taken_at))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        # Enter on the table: the table takes the key first and says which row it was.
        event.stop()
        self.action_detail()

    def action_filter(self) -> None:
        self.query_one(FilterBox).open()

    def filter_fields(self) -> list[Field]:
        """The view's columns, by key and by their one-word heading, and the other fields of its rows."""
        section, _, columns, _ = self.sections[self.section_index]
        rows = (self.sample.sections.get(section) or []) if self.sample else []
        # The blocking tree's column is the pid.
        named = [("id" if key == "tree" else key, header) for key, header, _ in columns]
        fields = {key: Field(key, (header,) if " " not in header and header != key else ()) for key, header in named}
        for row in rows[:1]:
            fields.update({key: Field(key) for key in row if key not in fields})
        return list(fields.values())

    def on_filter_box_changed(self, event: FilterBox.Changed) -> None:
        self.filter_query = event.query
        self.render_sample()

    def on_filter_box_closed(self, event: FilterBox.Closed) -> None:
        self.query_one("#activity-table").focus()

    def action_cursor_down(self) -> None:
        self.query_one("#activity-table", DataTable).action_cursor_down()

    def action_cursor_up(self) -> None:
        self.query_one("#activity-table", DataTable).action_cursor_up()

    def action_kill(self, terminate: bool) -> None:
        """Cancel or terminate the highlighted row, in whichever view shows sessions: the app
        plans, confirms and performs it."""
        row = self._stoppable_row(terminate)
        if row is not None and self.sample is not None:
            self.post_message(StopSession(self.target, self.activity_watch, self.sample, str(row["id"]), terminate))

    def action_kill_root_blocker(self) -> None:
        """Terminate the session at the head of the chain the highlighted one waits in."""
        row = self._stoppable_row(True)
        if row is None or self.sample is None:
            return
        killable = for_engine(self.engine).KILLABLE or ""
        root = root_blocker(self.sample.sections.get(killable, []), str(row["id"]))
        if root is None:
            self.notify(f"{row['id']} waits on no one: it has no root blocker", severity="warning")
            return
        self.post_message(StopSession(self.target, self.activity_watch, self.sample, root, True))

    def _stoppable_row(self, terminate: bool) -> dict[str, Any] | None:
        """The highlighted row when it is a session that may be stopped here; else said, and None."""
        if self.replay is not None:
            self.notify("a replay shows what was running; nothing can be stopped in it", severity="warning")
            return None
        if self.sample is None or self.settings is None:
            return None
        problems = kill_refusals(self.settings, self.target, terminate=terminate, allow_unsafe=True)
        if problems:
            self.notify(problems[0], title="Refused", severity="warning", timeout=8)
            return None
        module = for_engine(self.engine)
        if module.KILLABLE is None:
            self.notify(f"nothing on a {self.engine} target can be cancelled or terminated", title="Refused",
                        severity="warning", timeout=8)
            return None
        if self.sections[self.section_index][0] not in killable_in(module):
            # A row here is not a session (an application, a command): go where sessions are.
            self.section_index = [s[0] for s in self.sections].index(module.KILLABLE)
            self._sort_by_age()
            self.render_sample()
            self.notify("rows in that view are not sessions: choose one here, then press the key again")
            return None
        return self.highlighted()


def _row_key(row: dict[str, Any]) -> str:
    return str(row.get("id", id(row)))


def _filterable(row: dict[str, Any]) -> tuple[dict[str, str], str]:
    fields = {key: "" if value is None else str(value).lower() for key, value in row.items()}
    return fields, "\n".join(cell_text(row, key).lower() for key in row)


def _sortable(value: Any) -> tuple[int, Any]:
    # Numbers (a Redis client id comes as text) sort as numbers, before any text.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value)
    text = str(value)
    return (0, int(text)) if text.isdigit() else (1, text)
