"""The history says what was done, with the year and the zone; an entry with no inverse says it
cannot be undone instead of offering a `dbvitals undo` command (80×24)."""

from __future__ import annotations

from dataclasses import replace

from console.screens.history import FixHistoryScreen, HistoryEntryScreen, local_zone
from textual.widgets import DataTable
from tests.tui.helpers import synthetic_app, wait_until
from tests.tui.test_replay_keys import entry


def terminate_entry():
    return replace(entry(), id="20261201-100500-0002", kind="terminate", inverse=[],
                   finding={"id": "activity:4242", "check": "activity", "object": "4242",
                            "title": "terminate session 4242"},
                   summary="terminate session 4242: ALTER TABLE orders ADD COLUMN note text")


async def test_the_history_says_what_was_done():
    app = synthetic_app(3)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.push_screen(FixHistoryScreen([entry(), terminate_entry()], journal="journal.jsonl"))
        await wait_until(pilot, lambda: isinstance(app.screen, FixHistoryScreen))
        table = app.screen.query_one(DataTable)
        await wait_until(pilot, lambda: table.row_count == 2)
        newest, oldest = (table.get_row_at(i) for i in range(2))
        assert str(newest[2]).startswith("terminate session 4242")
        assert str(oldest[2]).startswith("fix of postgres.fk-missing-index")
        assert str(oldest[0]).startswith("2026-12-01 ")  # the year; the zone is in the header
        assert table.ordered_columns[0].label.plain == f"When ({local_zone()})"
        assert table.virtual_size.width <= 80


async def test_an_entry_without_an_inverse_says_it_cannot_be_undone():
    app = synthetic_app(3)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.push_screen(HistoryEntryScreen(terminate_entry(), None, None))
        await wait_until(pilot, lambda: isinstance(app.screen, HistoryEntryScreen))
        fields = str(app.screen.query_one("#entry-fields").render())
        assert "cannot be undone" in fields and "dbvitals undo" not in fields
        await app.pop_screen()
        await app.push_screen(HistoryEntryScreen(entry(), None, None))
        await wait_until(pilot, lambda: isinstance(app.screen, HistoryEntryScreen))
        assert "dbvitals undo 20261201-100000-0001" in str(app.screen.query_one("#entry-fields").render())
