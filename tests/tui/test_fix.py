"""Applying a fix from the console against a real PostgreSQL: plan, confirm, progress,
verify, journal; cancelling; and the typed confirmation production targets require."""

from __future__ import annotations

import asyncpg
import pytest
from textual.widgets import Button, DataTable, Input

from checks.model import FixSafety
from console.app import DbVitalsApp
from console.screens.confirm_fix import ConfirmFixModal
from console.screens.detail import FindingDetailScreen
from console.screens.fix_progress import FixProgressModal
from console.screens.history import FixHistoryScreen, HistoryEntryScreen
from console.screens.main import MainScreen
from console.widgets.findings_table import FindingsTable
from tests.support import settings_for
from tests.tui.helpers import MissingIndexCheck, fix_registry, settle, wait_until

INDEXED = "SELECT count(*) FROM pg_indexes WHERE tablename = 'orders' AND indexname = 'orders_customer_id_idx'"


@pytest.fixture
def orders_db(pg_db):
    pg_db.execute("CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id bigint NOT NULL)")
    pg_db.execute("INSERT INTO orders (customer_id) SELECT g % 100 FROM generate_series(1, 1000) g")
    return pg_db


async def indexes(pg_db) -> int:
    conn = await asyncpg.connect(pg_db.url)
    try:
        return await conn.fetchval(INDEXED)
    finally:
        await conn.close()


def shop(pg_db, **extra) -> DbVitalsApp:
    settings = settings_for(shop={"kind": "postgres", "url": pg_db.url, "allow_fixes": True, **extra})
    return DbVitalsApp(settings, registry=fix_registry(), probe_interval=None)


async def open_the_finding(app: DbVitalsApp, pilot) -> None:
    table = app.main_screen.query_one(FindingsTable)
    await wait_until(pilot, lambda: any(f.check == MissingIndexCheck.id for f in table.shown))
    await pilot.press("slash", *f"check:{MissingIndexCheck.id}", "enter")
    await settle(pilot)
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(app.screen, FindingDetailScreen))


async def confirm_the_fix(app: DbVitalsApp, pilot) -> None:
    """The finding's detail, then a: the confirmation of its fix is on screen."""
    await open_the_finding(app, pilot)
    await pilot.press("a")
    await wait_until(pilot, lambda: isinstance(app.screen, ConfirmFixModal))


async def test_apply_a_safe_fix_through_the_confirmation(orders_db):
    pg_db = orders_db
    app = shop(pg_db)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await confirm_the_fix(app, pilot)
        modal = app.screen
        assert modal.safety is FixSafety.SAFE and not modal.must_type
        assert "CREATE INDEX CONCURRENTLY orders_customer_id_idx" in modal.plan.steps[0].command
        assert not modal.query_one("#apply", Button).disabled
        assert await indexes(pg_db) == 0  # nothing ran before the confirmation
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, FixProgressModal) and app.screen.done)
        assert "Fixed" in str(app.screen.query_one("#progress-outcome").render())
        assert await indexes(pg_db) == 1
        await pilot.press("enter")
        assert isinstance(app.screen, FindingDetailScreen)
        assert "Fixed" in str(app.screen.query_one("#fix-outcome").render())
        assert not any(f.check == MissingIndexCheck.id for f in app.controller.store.ordered())
        # Said in the dialog and on the finding, not a third time in a toast; nothing left to apply.
        assert not any(n.title == "Fixed" for n in app._notifications)
        assert not app.screen.check_action("apply_fix", ())

        await pilot.press("escape", "h")
        await wait_until(pilot, lambda: isinstance(app.screen, FixHistoryScreen))
        history = app.screen.query_one(DataTable)
        assert history.row_count == 1
        row = history.get_row_at(0)
        assert row[1] == "shop" and row[2].startswith(f"fix of {MissingIndexCheck.id} on public.orders")
        assert row[3] == "fixed" and row[0].startswith("20") and row[0][4] == "-"  # with the year


async def test_cancelling_the_confirmation_runs_nothing(orders_db):
    pg_db = orders_db
    app = shop(pg_db)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await confirm_the_fix(app, pilot)
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, FindingDetailScreen))
        await pilot.pause(0.3)
        assert await indexes(pg_db) == 0
        assert any("nothing was run" in n.message for n in app._notifications)
        assert any(f.check == MissingIndexCheck.id for f in app.controller.store.ordered())


async def test_production_needs_the_target_name_typed(orders_db):
    pg_db = orders_db
    app = shop(pg_db, environment="production")
    async with app.run_test(size=(80, 24)) as pilot:
        await confirm_the_fix(app, pilot)
        modal = app.screen
        assert modal.must_type and modal.query_one("#apply", Button).disabled
        await pilot.press(*"shpo", "enter")
        await pilot.pause(0.2)
        assert isinstance(app.screen, ConfirmFixModal) and modal.query_one("#apply", Button).disabled
        # A wrong name is said, not silently ignored.
        assert "you typed shpo, not shop" in str(modal.query_one("#confirm-prompt").render())
        modal.query_one(Input).value = ""
        await pilot.press(*"shop")
        assert not modal.query_one("#apply", Button).disabled
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, FixProgressModal) and app.screen.done)
        assert await indexes(pg_db) == 1


async def test_no_fix_is_offered_where_the_target_does_not_allow_it(orders_db):
    pg_db = orders_db
    app = shop(pg_db, allow_fixes=False)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await open_the_finding(app, pilot)
        assert not app.screen.check_action("apply_fix", ())
        assert "allow_fixes is off" in str(app.screen.query_one("#fix-summary").render())
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)
        await pilot.press("a")
        await pilot.pause(0.3)
        assert not isinstance(app.screen, ConfirmFixModal)
        assert any(n.title == "Fixes off" for n in app._notifications)
        assert await indexes(pg_db) == 0


async def test_undo_from_the_history_screen_with_its_confirmation(orders_db):
    """h, then u on the fix: the confirmation states the DROP's own lock, y runs it, the
    outcome reads undone, the finding is back, and the history shows the undo on top."""
    pg_db = orders_db
    app = shop(pg_db)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await confirm_the_fix(app, pilot)
        await pilot.press("y")
        await wait_until(pilot, lambda: isinstance(app.screen, FixProgressModal) and app.screen.done)
        assert await indexes(pg_db) == 1
        await pilot.press("enter", "escape", "h")
        await wait_until(pilot, lambda: isinstance(app.screen, FixHistoryScreen))
        history = app.screen
        table = history.query_one(DataTable)
        # At 80 columns the outcome and the entry id are on screen, no sideways scrolling.
        assert [c.label.plain.split(" (")[0] for c in table.ordered_columns] == ["When", "Target", "What was done",
                                                                               "Outcome"]
        assert table.virtual_size.width <= 80
        fix_entry = history.selected().id
        assert f"entry {fix_entry}" in str(history.query_one("#history-selected").render())

        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, HistoryEntryScreen))
        fields = str(app.screen.query_one("#entry-fields").render())
        assert fix_entry in fields and "dbvitals undo" in fields and "--config" not in fields  # no config file here
        await pilot.press("u")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmFixModal))
        modal = app.screen
        assert modal.confirmation.verb == "Undo" and "DROP INDEX CONCURRENTLY" in modal.confirmation.steps[0].command
        where = str(modal.query_one("#confirm-where").render())
        assert "SHARE UPDATE EXCLUSIVE on the table of" in where and "scans the table twice" not in where
        await pilot.press("y")
        await wait_until(pilot, lambda: isinstance(app.screen, FixProgressModal) and app.screen.done)
        assert "Undone" in str(app.screen.query_one("#progress-outcome").render())
        assert f"Undoing fix {fix_entry}" in str(app.screen.query_one("#progress-title").render())
        assert await indexes(pg_db) == 0
        await pilot.press("enter")
        await wait_until(pilot, lambda: any(f.check == MissingIndexCheck.id for f in app.controller.store.ordered()))
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, FixHistoryScreen))
        rows = [history.query_one(DataTable).get_row_at(i) for i in range(2)]
        assert rows[0][3] == "undone" and rows[1][3] == "fixed, undone"
        assert str(rows[0][2]).startswith("undo of fix of ")


async def test_undo_of_an_undone_entry_is_refused_in_the_confirmation(orders_db):
    pg_db = orders_db
    app = shop(pg_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await confirm_the_fix(app, pilot)
        await pilot.press("y")
        await wait_until(pilot, lambda: isinstance(app.screen, FixProgressModal) and app.screen.done)
        await pilot.press("enter", "escape", "h")
        await wait_until(pilot, lambda: isinstance(app.screen, FixHistoryScreen))
        await pilot.press("z")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmFixModal))
        await pilot.press("y")
        await wait_until(pilot, lambda: isinstance(app.screen, FixProgressModal) and app.screen.done)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, FixHistoryScreen))
        await pilot.press("down", "z")  # the fix, already undone
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmFixModal))
        modal = app.screen
        assert "already undone" in str(modal.query_one("#confirm-refusals").render())
        assert not modal.query("#apply") and not modal.check_action("apply", ())  # no Undo button to press
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, FixHistoryScreen))
