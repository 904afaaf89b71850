"""A finding's detail shows its figure across the recorded snapshots as a sparkline with its first
and last values (80×24, a real PostgreSQL sequence recorded at two moments, then as it is now)."""

from __future__ import annotations

import pytest
from textual.widgets import Sparkline

from checks.config import config_from_dict
from checks.model import Finding, Severity
from checks.registry import load_registry
from checks.snapshots.store import SnapshotStore
from console.app import DbVitalsApp
from console.screens.detail import FindingDetailScreen
from console.widgets.findings_table import FindingsTable
from console.widgets.trend import trend_of
from tests import support
from tests.tui.helpers import wait_until

CHECK = "postgres.sequence-exhaustion"


def settings(url: str, tmp_path):
    return config_from_dict({"journal": str(tmp_path / "journal.jsonl"),
                             "targets": {"shop": {"kind": "postgres", "url": url,
                                                  "checks": {CHECK: {"sample_seconds": 0}}}}})


@pytest.fixture
def recorded(pg_db, tmp_path):
    """A sequence recorded at 80 % and at 90 % of an integer column; now at 95 %."""
    pg_db.execute("CREATE TABLE tickets (id serial PRIMARY KEY)")
    store = SnapshotStore(tmp_path / "snapshots.db")
    for at, value in (("2026-12-01T10:00:00+00:00", 1_717_986_918), ("2026-12-01T11:00:00+00:00", 1_932_735_283)):
        pg_db.execute(f"SELECT setval('tickets_id_seq', {value})")
        store.save(support.run_report(settings(pg_db.url, tmp_path), checks=[CHECK]), {}, label="incident",
                   taken_at=at)
    pg_db.execute("SELECT setval('tickets_id_seq', 2040109465)")
    return pg_db


async def test_a_findings_detail_shows_its_figure_across_the_snapshots(recorded, tmp_path):
    app = DbVitalsApp(settings(recorded.url, tmp_path), registry=load_registry(), probe_interval=None)
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.main_screen.query_one(FindingsTable)
        await wait_until(pilot, lambda: any(f.check == CHECK for f in table.shown))
        app.controller.open_finding(next(f for f in table.shown if f.check == CHECK))
        await wait_until(pilot, lambda: isinstance(app.screen, FindingDetailScreen) and bool(app.screen.query(Sparkline)))
        screen = app.screen
        line = screen.query_one("#trend-line", Sparkline)
        await wait_until(pilot, lambda: len(line.data or []) == 3)
        assert [round(v, 2) for v in line.data] == [0.8, 0.9, 0.95]  # getting worse, in order
        said = str(screen.query_one("#trend-text").render())
        assert "used: 80.0% → 95.0% over 3 readings (2026-12-01" in said


async def test_without_recordings_the_detail_says_so(pg_db, tmp_path):
    app = DbVitalsApp(settings(pg_db.url, tmp_path), registry=load_registry(), probe_interval=None)
    async with app.run_test(size=(80, 24)) as pilot:
        finding = Finding(id="x", check=CHECK, severity=Severity.LOW, target="shop", object="o", title="t",
                          message="m", evidence={"used": 0.5})
        app.controller.open_finding(finding)
        await wait_until(pilot, lambda: isinstance(app.screen, FindingDetailScreen) and bool(app.screen.query(Sparkline)))
        text = app.screen.query_one("#trend-text")
        await wait_until(pilot, lambda: "no snapshots recorded" in str(text.render()))
        assert not (tmp_path / "snapshots.db").exists()  # reading created no store


def test_the_figure_is_the_evidence_that_tells_most():
    def at(used, rows):
        return Finding(id="x", check=CHECK, severity=Severity.HIGH, target="t", object="o", title="t",
                       message="m", evidence={"rows": rows, "used": used, "name": "n"})
    trend = trend_of([("2026-12-01T10:00:00+00:00", at(0.5, 1)), ("2026-12-01T11:00:00+00:00", at(0.7, 2))])
    assert trend is not None and trend.figure == "used" and trend.values == [0.5, 0.7]
    assert trend_of([("2026-12-01T10:00:00+00:00", at(0.5, 1))]) is None
