"""All findings in one virtual table.

A DataTable measures every cell of every row when rows change (about a second for 10,000
findings), so filtering as you type would stall. This widget keeps only the list of shown
findings and draws the lines on screen: a new filter costs one list assignment, and a
frame costs the height of the terminal, whatever the number of findings.
"""

from __future__ import annotations

import datetime as dt

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from checks.model import Finding
from console.keys import KeySection
from console.widgets.styles import SEVERITY_LABELS, theme_style

# (key, header, minimum width, preferred maximum width); the title takes what is left.
COLUMNS = (
    ("severity", "Sev", 5, 6),
    ("target", "Target", 6, 14),
    ("check", "Check", 10, 24),
    ("object", "Object", 10, 30),
    ("title", "Title", 12, 10_000),
)
HEADERS = {key: header for key, header, _, _ in COLUMNS}
MIN_WIDTH = {key: low for key, _, low, _ in COLUMNS}
# Below these widths a column gives its room to the title: the check first (the target
# already says the engine), then the object (titles name it; the preview line shows both).
DROP_BELOW = {"check": 110, "object": 90, "target": 48}


def short_check(check: str) -> str:
    """`postgres.fk-missing-index` → `fk-missing-index`: the target column already says the engine."""
    return check.split(".", 1)[1] if "." in check else check


def _fit(text: str, width: int) -> str:
    if cell_len(text) <= width:
        return set_cell_size(text, width)
    return set_cell_size(text, width - 1) + "…"


class FindingsTable(ScrollView, can_focus=True):
    """Up/Down/PgUp/PgDn/Home/End move; Enter opens; clicking a header sorts by it."""

    KEYS = KeySection("findings table", 20)

    BINDINGS = [
        Binding("up,k", "cursor(-1)", "Up", show=False, tooltip="The finding above"),
        Binding("down,j", "cursor(1)", "Down", show=False, tooltip="The finding below"),
        Binding("pageup", "page(-1)", "Page up", show=False, tooltip="A page up"),
        Binding("pagedown", "page(1)", "Page down", show=False, tooltip="A page down"),
        Binding("home", "jump(0)", "First", show=False, tooltip="The first (most urgent) finding"),
        Binding("end", "jump(-1)", "Last", show=False, tooltip="The last finding"),
        Binding("enter", "open", "Open", tooltip="Open the selected finding: proof, evidence, fix"),
    ]
    COMPONENT_CLASSES = {"findings-table--header", "findings-table--cursor", "findings-table--even"}
    DEFAULT_CSS = """
    FindingsTable {
        background: $surface;
        color: $foreground;
        overflow-x: hidden;
        & > .findings-table--header { text-style: bold; background: $panel; color: $foreground; }
        & > .findings-table--even { background: $surface-lighten-1 50%; }
        & > .findings-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
        }
        &:focus > .findings-table--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
        &:ansi > .findings-table--header { background: ansi_bright_blue; color: ansi_default; }
    }
    """

    class Opened(Message):
        def __init__(self, finding: Finding) -> None:
            super().__init__()
            self.finding = finding

    class Highlighted(Message):
        """The cursor rests on another finding (or on none)."""

        def __init__(self, finding: Finding | None) -> None:
            super().__init__()
            self.finding = finding

    class SortRequested(Message):
        def __init__(self, column: str) -> None:
            super().__init__()
            self.column = column

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.shown: list[Finding] = []
        # finding id -> when its check last confirmed it, for findings of a target that is down
        self.stale: dict[str, float] = {}
        self.cursor = 0
        # Until the user moves, the cursor stays on the first (most urgent) row whatever
        # arrives; after that it follows the finding it is on.
        self.user_moved = False
        self._highlighted: str | None = None
        self.sort_column = "severity"
        self.sort_reverse = False
        self._widest: dict[str, int] = {}
        self._layout: list[tuple[str, int]] = []

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.refresh())

    # --- data ------------------------------------------------------------------------------

    def show(self, findings: list[Finding], stale: dict[str, float] | None = None) -> None:
        """Replace the rows, keeping the cursor on the same finding if it is still shown."""
        current = self.selected()
        self.shown = findings
        self.stale = stale or {}
        self._widest = {
            "target": max((len(f.target) for f in findings), default=0),
            "check": max((len(short_check(f.check)) for f in findings), default=0),
            "object": max((len(f.object) for f in findings), default=0),
        }
        self._layout = []
        index = 0
        if current is not None and self.user_moved:
            index = next((i for i, f in enumerate(findings) if f.id == current.id), min(self.cursor, len(findings) - 1))
        self.virtual_size = Size(self.size.width, len(findings) + 1)
        self._move_to(max(index, 0))
        self.refresh()

    def selected(self) -> Finding | None:
        if 0 <= self.cursor < len(self.shown):
            return self.shown[self.cursor]
        return None

    # --- movement --------------------------------------------------------------------------

    def _move_to(self, index: int) -> None:
        self.cursor = max(0, min(index, len(self.shown) - 1))
        visible = max(self.scrollable_content_region.height - 1, 1)
        top = int(self.scroll_y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + visible:
            self.scroll_to(y=self.cursor - visible + 1, animate=False, immediate=True)
        finding = self.selected()
        key = None if finding is None else finding.id
        if key != self._highlighted:
            self._highlighted = key
            self.post_message(self.Highlighted(finding))
        self.refresh()

    def action_cursor(self, delta: int) -> None:
        self.user_moved = True
        self._move_to(self.cursor + delta)

    def action_page(self, direction: int) -> None:
        self.user_moved = True
        self._move_to(self.cursor + direction * max(self.scrollable_content_region.height - 2, 1))

    def action_jump(self, index: int) -> None:
        self.user_moved = True
        self._move_to(len(self.shown) - 1 if index < 0 else index)

    def action_open(self) -> None:
        finding = self.selected()
        if finding is not None:
            self.post_message(self.Opened(finding))

    def on_click(self, event: events.Click) -> None:
        if event.y == 0:
            x = 0
            for key, width in self._columns(self.size.width):
                if x <= event.x < x + width + 1:
                    self.post_message(self.SortRequested(key))
                    return
                x += width + 1
            return
        index = int(self.scroll_y) + event.y - 1
        if 0 <= index < len(self.shown):
            if index == self.cursor and event.chain == 2:
                self.action_open()
            self.user_moved = True
            self._move_to(index)

    def on_resize(self) -> None:
        self._layout = []
        self.virtual_size = Size(self.size.width, len(self.shown) + 1)

    # --- drawing ---------------------------------------------------------------------------

    def _columns(self, width: int) -> list[tuple[str, int]]:
        if self._layout and sum(w for _, w in self._layout) + len(self._layout) - 1 == width:
            return self._layout
        keys = [key for key, *_ in COLUMNS[:-1] if width >= DROP_BELOW.get(key, 0)]
        widths = {}
        for key, header, low, high in COLUMNS[:-1]:
            if key in keys:
                widths[key] = max(low, min(high, max(self._widest.get(key, 0), len(header))))
        # The title says what is wrong: it keeps at least half of the width.
        title_min = max(MIN_WIDTH["title"], width // 2)
        flexible = [k for k in ("object", "check", "target") if k in widths]
        # Shrink the widest flexible columns until the title gets its minimum.
        while flexible and sum(widths.values()) + len(widths) + title_min > width:
            key = max(flexible, key=lambda k: widths[k] - MIN_WIDTH[k])
            if widths[key] <= MIN_WIDTH[key]:
                break
            widths[key] -= 1
        widths["title"] = max(width - sum(widths.values()) - len(widths), 1)
        self._layout = [(key, widths[key]) for key, *_ in COLUMNS if key in widths]
        return self._layout

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        columns = self._columns(width)
        if y == 0:
            style = base + self.get_component_rich_style("findings-table--header")
            labels = []
            for key, w in columns:
                header = HEADERS[key]
                if key == self.sort_column:
                    header += " ▲" if self.sort_reverse else " ▼"
                labels.append(_fit(header, w))
            return Strip([Segment(" ".join(labels), style)], width).crop_extend(0, width, style)
        index = int(self.scroll_y) + y - 1
        if index >= len(self.shown):
            return Strip.blank(width, base)
        finding = self.shown[index]
        if index == self.cursor:
            row_style = base + self.get_component_rich_style("findings-table--cursor")
            severity_style = row_style + Style(bold=True)
        else:
            row_style = base + self.get_component_rich_style("findings-table--even") if index % 2 else base
            severity_style = row_style + theme_style(self.app, f"severity-{finding.severity.value}", bold=True)
        since = self.stale.get(finding.id)
        segments = []
        for position, (key, w) in enumerate(columns):
            if key == "severity":
                value = SEVERITY_LABELS[finding.severity]
            elif key == "check":
                value = short_check(finding.check)
            else:
                value = getattr(finding, key)
            if key == "title" and since is not None:
                # Still the last word on a target that stopped answering: say how old it is.
                mark = f"stale {stale_time(since)} "
                segments.append(Segment(_fit(mark, min(len(mark), w)), row_style + Style(italic=True, dim=True)))
                w = max(w - len(mark), 0)
            if w:
                segments.append(Segment(_fit(value, w), severity_style if key == "severity" else row_style))
            if position < len(columns) - 1:
                segments.append(Segment(" ", row_style))
        return Strip(segments).crop_extend(0, width, row_style)


def stale_time(epoch: float) -> str:
    """When a stale finding was last confirmed: the time of day, local, to the minute."""
    return dt.datetime.fromtimestamp(epoch).strftime("%H:%M")
