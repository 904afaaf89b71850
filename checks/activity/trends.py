"""The last minutes of one target's activity, for the view's sparklines: a bounded ring of each
trend figure (checks.activity TRENDS), filled from the view's own refreshes."""

from __future__ import annotations

from collections import deque

from checks.activity import ActivitySample

# At the default refresh of 2 s, four minutes; a longer refresh covers longer.
POINTS = 120


class TrendHistory:
    """Per trend key, its last `points` known values, oldest first. An unknown value (a rate
    before its second refresh, a lag with no replica) is left out, not drawn as zero."""

    def __init__(self, points: int = POINTS) -> None:
        self.points = points
        self._series: dict[str, deque[float]] = {}
        self._last: ActivitySample | None = None

    def add(self, sample: ActivitySample) -> None:
        # A refresh skipped while another runs hands back the last sample: it counts once.
        if sample is self._last:
            return
        self._last = sample
        for key, value in sample.trend.items():
            if value is not None:
                self._series.setdefault(key, deque(maxlen=self.points)).append(float(value))

    def series(self, key: str) -> list[float]:
        return list(self._series.get(key, ()))

    def latest(self, key: str) -> float | None:
        values = self._series.get(key)
        return values[-1] if values else None
