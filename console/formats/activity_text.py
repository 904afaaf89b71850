"""The activity view as plain text for a terminal of a given width (80 columns and up)."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from checks.display import terminal_safe as safe_line

# Per engine: (section, title, columns as (key, header, justify), rows shown at most).
LAYOUT: dict[str, list[tuple[str, str, list[tuple[str, str, str]], int]]] = {
    "postgres": [
        ("blocking", "Blocking (who waits on whom)",
         [("tree", "pid", "left"), ("query_age_s", "age s", "right"), ("wait", "wait", "left"), ("query", "statement", "left")], 20),
        ("idle_in_transaction", "Idle in transaction",
         [("id", "pid", "right"), ("application", "app", "left"), ("xact_age_s", "xact s", "right"), ("query", "last statement", "left")], 10),
        ("sessions", "Sessions",
         [("id", "pid", "right"), ("state", "state", "left"), ("wait", "wait", "left"), ("xact_age_s", "xact s", "right"),
          ("application", "app", "left"), ("query", "statement", "left")], 20),
        ("applications", "Per application",
         [("application", "application", "left"), ("sessions", "all", "right"), ("active", "active", "right"),
          ("idle_in_transaction", "idle tx", "right"), ("waiting", "waiting", "right")], 10),
    ],
    "mongodb": [
        ("operations", "Operations running",
         [("id", "opid", "right"), ("op", "op", "left"), ("namespace", "namespace", "left"), ("running_s", "secs", "right"),
          ("plan", "plan", "left"), ("command", "command", "left")], 20),
        ("namespaces", "Time per namespace (from top, per second)",
         [("namespace", "namespace", "left"), ("total_ms_per_s", "ms/s", "right"), ("ops_per_s", "ops/s", "right"),
          ("read_ms_per_s", "read", "right"), ("write_ms_per_s", "write", "right")], 15),
    ],
    "redis": [
        ("slowlog", "Slow log (latest)",
         [("id", "#", "right"), ("duration_ms", "ms", "right"), ("command", "command", "left"), ("client", "client", "left")], 10),
        ("commands", "Commands per second",
         [("command", "command", "left"), ("calls_per_s", "calls/s", "right"), ("usec_per_s", "µs/s", "right")], 15),
        ("client_names", "Clients by name", [("name", "name", "left"), ("clients", "clients", "right")], 10),
        ("clients", "Clients (most idle first)",
         [("id", "id", "right"), ("name", "name", "left"), ("address", "address", "left"), ("age_s", "age s", "right"),
          ("idle_s", "idle s", "right"), ("last_command", "last", "left")], 15),
    ],
}


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
        for section, title, columns, limit in LAYOUT[sample.engine]:
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
                table.add_column(header, justify=justify, no_wrap=True, overflow="ellipsis",  # type: ignore[arg-type]
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
        return safe_line(f"{marker}{row['id']}" + (f" blocks {row['blocks']}" if row.get("blocks") else ""))
    value = row.get(key)
    if value is None:
        return "-"
    if key == "plan" and row.get("collection_scan"):
        return safe_line(f"{value} !")
    if key in {"id", "application", "name"} and row.get("own"):
        return safe_line(f"{value} (dbvitals)")
    return safe_line(str(value))
