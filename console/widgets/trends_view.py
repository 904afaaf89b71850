"""The activity view's sparklines: two trends a line, each its label, latest value and the last
minutes drawn by Textual's Sparkline (the peak of each column when squeezed)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Grid, Horizontal
from textual.widgets import Sparkline, Static

from checks.activity.trends import TrendHistory


class TrendsView(Grid):
    DEFAULT_CSS = """
    TrendsView { grid-size: 2; grid-gutter: 0 2; height: auto; max-height: 4; padding: 0 1; }
    TrendsView > Horizontal { height: 1; }
    TrendsView .trend-label { width: 20; color: $text-muted; }
    TrendsView Sparkline { width: 1fr; }
    """

    def __init__(self, trends: list[tuple[str, str]], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.trends = trends

    def compose(self) -> ComposeResult:
        for key, _ in self.trends:
            with Horizontal(id=f"trend-{key}"):
                yield Static(classes="trend-label")
                yield Sparkline([], summary_function=max)

    def show(self, history: TrendHistory) -> None:
        """Each trend with a value so far; one never known (no replica: no lag) is not shown."""
        for key, label in self.trends:
            row = self.query_one(f"#trend-{key}", Horizontal)
            latest = history.latest(key)
            row.display = latest is not None
            if latest is None:
                continue
            row.query_one(Static).update(f"{label} {_figure(latest)}")
            row.query_one(Sparkline).data = history.series(key)
        self.display = any(history.latest(key) is not None for key, _ in self.trends)


def _figure(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 or value == int(value) else f"{value:.1f}"
