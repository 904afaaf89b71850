"""A recording replayed in the console, stepped with [ and ]; the activity view live against a
real PostgreSQL with a blocked session, and as recorded."""

from __future__ import annotations

import datetime as dt

from textual.widgets import DataTable

from checks.model import Report
from checks.snapshots.store import SnapshotStore
from console.app import DbVitalsApp
from console.replay import open_replay
from console.screens.activity import ActivityScreen
from console.widgets.findings_table import FindingsTable
from console.widgets.targets_table import TargetsTable
from tests.integration.test_activity import Blocker
from tests.support import settings_for
from tests.tui.helpers import settle, synthetic_findings, synthetic_registry, synthetic_settings, synthetic_statuses, wait_until

RECORDED = 10


def recording(path) -> SnapshotStore:
    """Ten snapshots, one more finding each, the last with a recorded blocked session."""
    store = SnapshotStore(path)
    findings = synthetic_findings(RECORDED)
    for i in range(RECORDED):
        activity = {"orders": {"target": "orders", "engine": "postgres", "taken_at": f"2026-12-01T10:{i:02d}:00+00:00",
                               "sections": {"blocking": [
                                   {"id": 4242, "depth": 0, "waits_on": None, "application": "migrate", "state": "idle in transaction",
                                    "wait": "ClientRead", "query_age_s": 60.0 + i, "xact_age_s": 61.0 + i,
                                    "query": "ALTER TABLE orders ADD COLUMN note text", "blocks": 1},
                                   {"id": 4243, "depth": 1, "waits_on": 4242, "application": "api", "state": "active",
                                    "wait": "Lock:relation", "query_age_s": 30.0, "xact_age_s": 30.0,
                                    "query": "SELECT * FROM orders WHERE id = $1", "blocks": 0}]},
                               "notes": []}}
        store.save(Report(synthetic_statuses(), findings[: i + 1], [], 1.0), {}, label="incident",
                   activity=activity, taken_at=f"2026-12-01T10:{i:02d}:00+00:00")
    return store


# Two hours after the last snapshot: every age on screen is the recording's, and fixed.
REPLAYED_AT = dt.datetime(2026, 12, 1, 12, 9, tzinfo=dt.timezone.utc).timestamp()


def replay_app(tmp_path) -> DbVitalsApp:
    recording(tmp_path / "rec.db")
    replay = open_replay(str(tmp_path / "rec.db"), synthetic_settings())
    return DbVitalsApp(synthetic_settings(), registry=synthetic_registry(), replay=replay, clock=lambda: REPLAYED_AT)


async def test_replay_steps_through_time(tmp_path):
    app = replay_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.main_screen.query_one(FindingsTable)
        await wait_until(pilot, lambda: len(table.shown) == RECORDED)
        assert app.sub_title == "replay incident 10/10 2026-12-01 10:09:00 UTC"  # the label and the time
        assert "up · 2h" in str(app.main_screen.query_one(TargetsTable).get_row("orders")[3])  # the snapshot's age
        await pilot.press("left_square_bracket", "left_square_bracket", "left_square_bracket")
        await wait_until(pilot, lambda: len(table.shown) == RECORDED - 3)
        assert app.sub_title.startswith("replay incident 7/10 2026-12-01 10:06:00")
        for _ in range(12):  # past the start: it stays at the first
            await pilot.press("left_square_bracket")
        await wait_until(pilot, lambda: len(table.shown) == 1)
        await pilot.press("right_square_bracket")
        await wait_until(pilot, lambda: len(table.shown) == 2)
        assert not app.controller.running_targets()


async def test_replayed_activity_shows_the_recorded_blocking(tmp_path):
    app = replay_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(app.main_screen.query_one(FindingsTable).shown) == RECORDED)
        app.controller.open_activity("orders")
        await wait_until(pilot, lambda: isinstance(app.screen, ActivityScreen) and bool(app.screen.query(DataTable)))
        screen = app.screen

        table = screen.query_one(DataTable)
        await wait_until(pilot, lambda: table.row_count == 2)
        assert "4242 blocks 1" in str(table.get_row_at(0)[0])
        await pilot.press("c")  # nothing can be stopped in a recording
        assert isinstance(app.screen, ActivityScreen)
        await pilot.press("escape")
        assert app.screen is app.main_screen


def test_replay_snapshot(snap_compare, tmp_path):
    """A recording at 80×24: the time in the header, the findings as they were, [ and ] in the footer."""

    async def run_before(pilot) -> None:
        await wait_until(pilot, lambda: len(pilot.app.main_screen.query_one(FindingsTable).shown) == RECORDED)
        await pilot.press("left_square_bracket")
        await wait_until(pilot, lambda: len(pilot.app.main_screen.query_one(FindingsTable).shown) == RECORDED - 1)
        await settle(pilot)

    assert snap_compare(replay_app(tmp_path), terminal_size=(80, 24), run_before=run_before)


async def test_live_activity_shows_a_blocked_session(pg_db):
    blocker = Blocker(pg_db.url)
    holder, waiter = blocker.start()
    try:
        settings = settings_for(app={"kind": "postgres", "url": pg_db.url})
        app = DbVitalsApp(settings, registry=synthetic_registry(), run_on_start=False, probe_interval=None)
        async with app.run_test(size=(80, 24)) as pilot:
            app.controller.open_activity("app")
            await wait_until(pilot, lambda: isinstance(app.screen, ActivityScreen) and bool(app.screen.query(DataTable)))
            screen = app.screen

            table = screen.query_one(DataTable)
            await wait_until(pilot, lambda: table.row_count >= 2, timeout=15)
            cells = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
            assert f"{holder} blocks 1" in cells and any(str(waiter) in c for c in cells)
            await pilot.press("K")  # allow_fixes is off: refused, nothing pushed
            await pilot.pause(0.2)
            assert isinstance(app.screen, ActivityScreen)
            await pilot.press("space")
            assert screen.paused
    finally:
        blocker.stop()
