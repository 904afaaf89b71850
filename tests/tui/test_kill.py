"""Cancel and terminate from the activity view, live against PostgreSQL: the same confirmation and
outcome dialog as a fix, and the outcome the server shows, not the one the signal claims."""

from __future__ import annotations

import json

import asyncpg
from textual.widgets import DataTable

from checks.config import config_from_dict
from console.app import DbVitalsApp
from console.screens.activity import ActivityScreen
from console.screens.confirm_fix import ConfirmFixModal
from console.screens.fix_progress import FixProgressModal
from tests.integration.test_activity import Blocker
from tests.tui.helpers import synthetic_registry, wait_until


async def session_state(url: str, pid: int) -> str | None:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SELECT coalesce(state, '') FROM pg_stat_activity WHERE pid = $1", pid)
    finally:
        await conn.close()


def journal_lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def stop(app: DbVitalsApp, pilot) -> str:
    """Confirm the action on screen by typing the target's name; its outcome, once it is in."""
    await wait_until(pilot, lambda: isinstance(app.screen, ConfirmFixModal))
    await pilot.press(*"app", "enter")
    await wait_until(pilot, lambda: isinstance(app.screen, FixProgressModal) and app.screen.done, timeout=20)
    return str(app.screen.query_one("#progress-outcome").render())


async def test_cancel_of_an_idle_transaction_is_not_fixed_and_offers_terminate(pg_db, tmp_path):
    blocker = Blocker(pg_db.url)
    holder, _ = blocker.start()
    journal = tmp_path / "journal.jsonl"
    try:
        settings = config_from_dict({"journal": str(journal),
                                     "targets": {"app": {"kind": "postgres", "url": pg_db.url, "allow_fixes": True}}})
        app = DbVitalsApp(settings, registry=synthetic_registry(), run_on_start=False, probe_interval=None)
        async with app.run_test(size=(100, 30)) as pilot:
            app.controller.open_activity("app")
            await wait_until(pilot, lambda: isinstance(app.screen, ActivityScreen) and app.screen.sample is not None)
            screen = app.screen
            table = screen.query_one(DataTable)  # the tree of who blocks whom: c acts on its highlighted row
            await wait_until(pilot, lambda: str(holder) in [key.value for key in table.rows])
            table.move_cursor(row=table.get_row_index(str(holder)))
            await pilot.press("c")

            said = await stop(app, pilot)
            assert "Not fixed" in said
            assert "not stopped: nothing is running; terminate ends the session and rolls back its transaction" in said
            assert app.screen.offer == "terminate" and "to terminate instead" in said
            [cancel] = journal_lines(journal)[-1:]
            assert (cancel["kind"], cancel["outcome"], cancel["verified"]) == ("cancel", "not_fixed", False)
            assert await session_state(pg_db.url, holder) == "idle in transaction"  # its locks still held

            await pilot.press("t")  # the next action the outcome offers: asked again, then run
            said = await stop(app, pilot)
            assert "Fixed" in said and f"session {holder} is gone" in said
            [terminate] = journal_lines(journal)[-1:]
            assert (terminate["kind"], terminate["outcome"], terminate["verified"]) == ("terminate", "fixed", True)
            assert await session_state(pg_db.url, holder) is None
            await pilot.press("enter")
            assert isinstance(app.screen, ActivityScreen)
    finally:
        blocker.stop()
