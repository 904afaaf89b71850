"""Every screen's footer at 80×24 shows each of its keys whole (the main screen's is
tests/tui/test_main_keys.py): the finding detail, the fix confirmation, export, the history and
one of its entries, a session's detail, `?`, and the activity view against a real server."""

from __future__ import annotations

from textual.screen import Screen

from console.screens.confirm_fix import ConfirmFixModal
from console.screens.detail import FindingDetailScreen
from console.screens.export import ExportModal
from console.screens.help import HelpScreen
from console.screens.history import FixHistoryScreen, HistoryEntryScreen
from console.screens.session_detail import SessionDetailScreen
from console.widgets.findings_table import FindingsTable
from console.widgets.keys_bar import KeysBar
from tests.tui.helpers import settle, synthetic_app, wait_until
from tests.tui.test_activity_oncall import console_for, open_activity
from tests.tui.test_replay_keys import entry
from tests.tui.test_snapshots import confirm_plan

SIZE = (80, 24)


def assert_every_key_whole(screen: Screen) -> None:
    """Each key the screen shows, with its word, on one line of a footer that fits and is not cut."""
    bar = screen.query_one(KeysBar)
    lines = str(bar.render()).splitlines()
    assert bar.size.height == len(lines) and bar.region.bottom == SIZE[1]
    assert all(len(line) <= SIZE[0] for line in lines)
    shown = [binding for _node, binding, _on, _tip in screen.active_bindings.values() if binding.show]
    assert shown
    for keys, word, _enabled in bar.items():
        assert any(f" {keys} {word} " in f"{line} " for line in lines), (keys, word, lines)
    for binding in shown:  # nothing the screen shows is left out
        assert any((binding.group.description if binding.group else binding.description) in line for line in lines)


async def opened(pilot, kind: type[Screen]) -> Screen:
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, kind))
    await settle(pilot)
    return pilot.app.screen


async def test_the_screens_of_a_finding_show_their_keys_whole():
    app = synthetic_app(12)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: len(app.main_screen.query_one(FindingsTable).shown) == 12)
        await pilot.press("enter")
        assert_every_key_whole(await opened(pilot, FindingDetailScreen))
        await pilot.press("escape")
        plan = confirm_plan()
        await app.push_screen(ConfirmFixModal(plan, target="orders", where=plan.url, production=True))
        assert_every_key_whole(await opened(pilot, ConfirmFixModal))
        await app.pop_screen()
        await pilot.press("e")
        assert_every_key_whole(await opened(pilot, ExportModal))
        await app.pop_screen()
        await pilot.press("question_mark")
        assert_every_key_whole(await opened(pilot, HelpScreen))


async def test_the_history_and_a_session_show_their_keys_whole():
    app = synthetic_app(3)
    async with app.run_test(size=SIZE) as pilot:
        await app.push_screen(FixHistoryScreen([entry()], journal="journal.jsonl"))
        assert_every_key_whole(await opened(pilot, FixHistoryScreen))
        await app.push_screen(HistoryEntryScreen(entry(), None, None))
        assert_every_key_whole(await opened(pilot, HistoryEntryScreen))
        await app.push_screen(SessionDetailScreen("orders", {"id": 4242, "state": "active"},
                                                  [("id", "pid"), ("state", "state")], "10:00:00"))
        assert_every_key_whole(await opened(pilot, SessionDetailScreen))


async def test_the_activity_view_shows_its_keys_whole(pg_db, tmp_path):
    app = console_for(pg_db.url, "postgres", tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_activity(app, pilot)
        await settle(pilot)
        assert_every_key_whole(screen)
