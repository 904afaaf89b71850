"""The main screen's keys at 80×24: the footer shows them whole, `?` opens on this screen's keys,
the targets take j/k, a read-only target is marked and Apply says why it is off, ctrl+c says how
to quit."""

from __future__ import annotations

from checks.model import Severity
from console.screens.help import HelpScreen
from console.screens.main import MainScreen
from console.widgets.findings_table import FindingsTable
from console.widgets.keys_bar import KeysBar
from console.widgets.targets_table import TargetsTable
from tests.tui.helpers import settle, synthetic_app, wait_until


def footer(app) -> list[str]:
    bar = app.main_screen.query_one(KeysBar)
    return str(bar.render()).splitlines()


async def test_the_footer_shows_every_key_of_the_main_screen_at_80_columns():
    app = synthetic_app(12)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(app.main_screen.query_one(FindingsTable).shown) == 12)
        lines = footer(app)
        assert len(lines) == 2 and all(len(line) <= 80 for line in lines)
        text = " ".join(lines)
        for shown in ("⏎ Open", "/ Filter", "a Apply", "A Activity", "h History", "r Re-run", "e Export", "s Sort",
                      "x Clear", "? Keys", "q Quit"):
            assert shown in text
        assert app.main_screen.query_one(KeysBar).region.bottom == 24


async def test_help_opens_on_the_keys_of_the_screen_it_was_asked_on():
    app = synthetic_app(3)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert app.screen.sections[0].owner is MainScreen


async def test_the_targets_table_takes_j_and_k():
    app = synthetic_app(3)
    async with app.run_test(size=(80, 24)) as pilot:
        targets = app.main_screen.query_one(TargetsTable)
        await wait_until(pilot, lambda: targets.row_count == 3)
        targets.focus()
        await pilot.press("j", "j")
        assert targets.cursor_row == 2
        await pilot.press("k")
        assert targets.cursor_row == 1


async def test_a_read_only_target_is_marked_and_apply_says_why_it_is_off():
    app = synthetic_app(12)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        table = app.main_screen.query_one(FindingsTable)
        await wait_until(pilot, lambda: len(table.shown) == 12)
        title = str(app.main_screen.query_one("#targets-title").render())
        assert "read-only (allow_fixes off): events, sessions" in title  # orders allows fixes
        await pilot.press("slash", *"target:sessions", "enter")
        await settle(pilot)
        assert table.selected().target == "sessions"
        assert "a Apply: read-only" in " ".join(footer(app))
        await pilot.press("a")
        await wait_until(pilot, lambda: any("allow_fixes is off for sessions" in str(n.message)
                                            for n in app._notifications))
        await pilot.press("x", "slash", *"target:orders sev:critical", "enter")
        await settle(pilot)
        assert table.selected().severity is Severity.CRITICAL and "a Apply " in " ".join(footer(app)) + " "


async def test_ctrl_c_says_how_to_quit_without_markup():
    app = synthetic_app(3)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await pilot.press("ctrl+c")
        await wait_until(pilot, lambda: bool(app._notifications))
        [toast] = list(app._notifications)
        assert toast.message == "Press ctrl+q to quit"
