"""A finding's evidence, wrapped and formatted: what a skeptical DBA reads first.

Nothing is cut off: long values wrap at word boundaries inside their column. SQL is
highlighted as SQL, lists are lists, nested records are indented, byte counts, durations and
shares carry their units. `proof_line` gives the one line that opens a finding.
"""

from __future__ import annotations

import re
from typing import Any

from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from checks.model import Finding
from checks.units import human_bytes, percent

# Evidence keys whose string value is itself the proof, in words or as arithmetic.
PROOF_KEYS = ("proof", "arithmetic")
SQL_START = re.compile(r"^\s*(CREATE|ALTER|DROP|SELECT|WITH|UPDATE|DELETE|INSERT|REINDEX|VACUUM|ANALYZE)\b", re.I)
# A sentence ends at ". " before a capital or a digit; "1.1 MiB", "public.users" never match.
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'])")
SHARE_KEYS = re.compile(r"(^|_)(used|share|ratio|fraction|threshold|utilisation|utilization)$")
BYTES_KEYS = re.compile(r"(^|_)bytes($|_)")
MS_KEYS = re.compile(r"_ms$")
SECONDS_KEYS = re.compile(r"_s$|_seconds$")
PER_SECOND_KEYS = re.compile(r"_per_second$|_per_s$")
DAYS_KEYS = re.compile(r"_days$")
# Identifiers, not quantities: a pid is 27861, never "27,861".
ID_KEYS = re.compile(r"(^|_)(pids?|oids?|ids?|port|xid|blocked_by)$")


def proof_line(finding: Finding) -> str:
    """One line that proves the finding: the evidence's own proof or arithmetic when the check
    gives one, else the message's first sentence. A capacity finding leads with its urgency."""
    urgency = _urgency(finding.evidence)
    for key in PROOF_KEYS:
        value = finding.evidence.get(key)
        if isinstance(value, str) and value.strip():
            return urgency + value.strip()
    return urgency + _claim(finding)


def _urgency(evidence: dict[str, Any]) -> str:
    runway = evidence.get("runway")
    if isinstance(runway, str) and runway:  # the check's own words ("runway unknown", "… in more than 9.6 years")
        when = evidence.get("estimated_exhaustion")
        return runway + (f" (~{when})" if when else "") + " · "
    days = evidence.get("exhausted_in_days")
    if not isinstance(days, (int, float)) or isinstance(days, bool):
        return ""
    when = evidence.get("estimated_exhaustion")
    return f"runs out in {human_days(days)}" + (f" (~{when})" if when else "") + " · "


def human_days(days: float) -> str:
    if days < 2:
        return f"{days * 24:,.0f} h"
    if days < 365:
        return f"{days:,.0f} days"
    return f"{days / 365.25:,.1f} years"


def _claim(finding: Finding) -> str:
    message = " ".join(finding.message.split())
    first = SENTENCE_END.split(message, maxsplit=1)[0].rstrip(".")
    # The claim, without the clauses that explain it: those follow in the message.
    for separator in ("; ", ": ", " — "):
        head = first.split(separator, 1)[0]
        if len(head) >= 24:
            first = head
    return first


def human_seconds(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:,.1f} {unit}".replace(".0 ", " ")
    return f"{seconds:,.3g} s"


def scalar(key: str, value: Any) -> str:
    """A value with its unit, as a DBA would say it; the exact figure stays beside a rounded one."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        leaf = key.rsplit(".", 1)[-1].lower()
        if isinstance(value, int) and ID_KEYS.search(leaf):
            return str(value)
        if isinstance(value, float) and SHARE_KEYS.search(leaf) and 0 <= value <= 1:
            return percent(value, 1).replace("%", " %")  # 99.98 %, never a rounded-up 100.0 %
        if BYTES_KEYS.search(leaf) and value >= 1024:
            return f"{human_bytes(value)} ({value:,} bytes)"
        if BYTES_KEYS.search(leaf):
            return f"{value:,} bytes"
        if MS_KEYS.search(leaf):
            return f"{value:,} ms"
        if SECONDS_KEYS.search(leaf) and value >= 60:
            return f"{human_seconds(value)} ({value:,} s)"
        if SECONDS_KEYS.search(leaf):
            return f"{value:,} s"
        if PER_SECOND_KEYS.search(leaf):
            return f"{value:,.4g} /s"
        if DAYS_KEYS.search(leaf):
            return f"{human_days(value)} ({value:,} days)" if value >= 365 else f"{value:,} days"
        return f"{value:,}" if isinstance(value, int) else f"{value:,.4g}"
    return str(value)


def _value(key: str, value: Any, dark: bool) -> RenderableType:
    if isinstance(value, str) and SQL_START.match(value):
        return Syntax(value, "sql", theme="ansi_dark" if dark else "ansi_light", background_color="default",
                      word_wrap=True)
    if isinstance(value, list):
        if not value:
            return Text("none", style="italic")
        return Group(*(_bullet(key, item, dark) for item in value))
    if isinstance(value, dict):
        if not value:
            return Text("none", style="italic")
        return _grid({f"{key}.{k}": v for k, v in value.items()}, dark, prefix=f"{key}.")
    return Text(scalar(key, value))


def _bullet(key: str, item: Any, dark: bool) -> RenderableType:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(ratio=1, overflow="fold")
    if isinstance(item, dict):
        body: RenderableType = _grid({f"{key}.{k}": v for k, v in item.items()}, dark, prefix=f"{key}.")
    else:
        body = _value(key, item, dark)
    grid.add_row("•", body)
    return grid


def _grid(evidence: dict[str, Any], dark: bool, prefix: str = "") -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold", no_wrap=True, max_width=24)
    grid.add_column(ratio=1, overflow="fold")
    for key, value in evidence.items():
        grid.add_row(Text(key.removeprefix(prefix), overflow="ellipsis"), _value(key, value, dark))
    return grid


def render_evidence(evidence: dict[str, Any], *, dark: bool = True) -> RenderableType:
    if not evidence:
        return Text("(none)", style="italic")
    return _grid({str(k): v for k, v in evidence.items()}, dark)


class EvidenceView(Static):
    """The evidence as wrapped text; redrawn in the syntax colours of a new theme."""

    DEFAULT_CSS = "EvidenceView { height: auto; }"

    def __init__(self, evidence: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.evidence = evidence

    def on_mount(self) -> None:
        self._draw()
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._draw())

    def _draw(self) -> None:
        self.update(render_evidence(self.evidence, dark=self.app.current_theme.dark))
