"""A finding's figure across the recorded snapshots, as a sparkline with its first and last
values, so "getting worse" shows at a glance. The figure is the evidence's own: the first of
TREND_KEYS the finding carries, else its first number that changed between snapshots."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.markup import escape
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Sparkline, Static

from checks.model import Finding
from checks.units import human_bytes

# The figures that say most about a finding getting worse, most telling first.
TREND_KEYS = ("used", "dead_rows", "n_dead_tup", "retained_bytes", "without_ttl_estimated", "without_ttl", "xid_age",
              "exhausted_in_days", "rows_estimate")


@dataclass(frozen=True)
class Trend:
    figure: str
    points: tuple[tuple[str, float], ...]  # (when, value), oldest first

    @property
    def values(self) -> list[float]:
        return [value for _, value in self.points]

    def describe(self) -> str:
        (first_at, first), (last_at, last) = self.points[0], self.points[-1]
        return (f"{self.figure}: {figure_text(self.figure, first)} → {figure_text(self.figure, last)} "
                f"over {len(self.points)} readings ({_when(first_at)} → {_when(last_at)})")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def trend_of(history: Sequence[tuple[str, Finding]]) -> Trend | None:
    """The finding's figure at each reading; None with fewer than two readings of a number."""
    if len(history) < 2:
        return None
    latest = history[-1][1].evidence
    figure = next((key for key in TREND_KEYS if _number(latest.get(key)) is not None), None)
    if figure is None:
        numbers = [key for key, value in latest.items() if _number(value) is not None]
        changed = [key for key in numbers if len({_number(f.evidence.get(key)) for _, f in history} - {None}) > 1]
        # A flat line says something too: not getting worse.
        figure = next(iter(changed or numbers), None)
    if figure is None:
        return None
    points = tuple((when, number) for when, f in history if (number := _number(f.evidence.get(figure))) is not None)
    return Trend(figure, points) if len(points) >= 2 else None


def figure_text(figure: str, value: float) -> str:
    if figure == "used":
        return f"{value:.1%}"
    if figure.endswith("bytes"):
        return human_bytes(value)
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


def _when(iso: str) -> str:
    try:
        return dt.datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso


class TrendView(Vertical):
    """Filled in when the snapshots have been read (a worker reads them; the screen opens at once)."""

    DEFAULT_CSS = """
    TrendView { height: auto; }
    TrendView Sparkline { height: 2; margin: 0 1; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shown: tuple[Trend | None, str] | None = None  # what show() was given, drawn once mounted

    def compose(self) -> ComposeResult:
        yield Static("[$text-muted]reading the recorded snapshots…[/]", id="trend-text")
        yield Sparkline([], id="trend-line")

    def on_mount(self) -> None:
        if self.shown is not None:
            self._draw(*self.shown)

    def show(self, trend: Trend | None, why_none: str = "") -> None:
        self.shown = (trend, why_none)
        if self.is_mounted:
            self._draw(trend, why_none)

    def _draw(self, trend: Trend | None, why_none: str) -> None:
        text = self.query_one("#trend-text", Static)
        line = self.query_one("#trend-line", Sparkline)
        if trend is None:
            text.update(f"[$text-muted]{why_none or 'fewer than two recorded readings of a figure'}[/]")
            line.display = False
            return
        text.update(escape(trend.describe()))
        line.data = trend.values
        line.display = True
