"""The activity view as plain text for a terminal of a given width (80 columns and up)."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from checks.activity import for_engine
from checks.display import terminal_safe as safe_line

WIDE_KEYS = {"query", "command", "last_command", "client"}
TEXT_KEYS = {"application", "name", "address", "client", "namespace", "wait", "plan", "state", "last_command", "op"}


def render_activity(samples: dict[str, Any], statuses: dict[str, Any], *, width: int = 100) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=max(width, 60), highlight=False, color_system=None, soft_wrap=False)
    for name, status in statuses.items():
        sample = samples.get(name)
        when = sample.taken_at if sample else ""
        console.print(Text(safe_line(f"{name} ({status.kind}) {status.state.value} {when}"), style="bold"))
        if sample is None:
            console.print(Text(safe_line(f"  {status.error or 'no sample'}")))
            continue
        for section, title, columns, limit in for_engine(sample.engine).LAYOUT:
            rows = sample.sections.get(section) or []
            if not rows:
                continue
            shown = rows[:limit]
            more = f" ({len(rows) - limit} more)" if len(rows) > limit else ""
            table = Table(title=f"{title}{more}", title_justify="left", box=None, padding=(0, 1),
                          show_edge=False, expand=columns[-1][0] in WIDE_KEYS)
            for index, (key, header, justify) in enumerate(columns):
                last = index == len(columns) - 1
                # The last column (the statement) takes what is left and is cut, never wrapped;
                # names are capped so they cannot push it off the screen.
                table.add_column(header, justify=justify, no_wrap=True, overflow="ellipsis",
                                 ratio=1 if last else None, max_width=None if last or key not in TEXT_KEYS else 18)
            for row in shown:
                table.add_row(*(cell_text(row, key) for key, _, _ in columns))
            console.print(table)
        for note in sample.notes:
            console.print(Text(safe_line(f"  note: {note}"), style="dim"))
        console.print()
    return buffer.getvalue()


def cell_text(row: dict[str, Any], key: str) -> str:
    if key == "tree":
        marker = "" if row.get("depth", 0) == 0 else "  " * (row["depth"] - 1) + "└ "
        return safe_line(f"{marker}{row['id']}" + (" (dbvitals)" if row.get("own") else "")
                         + (f" blocks {row['blocks']}" if row.get("blocks") else ""))
    value = row.get(key)
    if value is None:
        return "-"
    if key == "plan" and row.get("collection_scan"):
        return safe_line(f"{value} !")
    if key in {"id", "application", "name"} and row.get("own"):
        return safe_line(f"{value} (dbvitals)")
    return safe_line(str(value))
