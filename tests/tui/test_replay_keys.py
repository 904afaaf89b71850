"""Every key of every screen works in a replay (`dbvitals ui --replay LABEL`), where nothing runs:
each screen's keys and the keys bound everywhere, pressed on that screen."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from textual.app import App
from textual.screen import Screen
from textual.widgets import Input

from checks.actions.journal import JournalEntry
from checks.model import FixSafety, FixStep
from console.app import DbVitalsApp
from console.keys import key_sections
from console.screens.activity import ActivityScreen
from console.screens.confirm_fix import Confirmation, ConfirmFixModal
from console.screens.detail import FindingDetailScreen
from console.screens.export import ExportModal
from console.screens.fix_progress import FixProgressModal
from console.screens.help import HelpScreen
from console.screens.history import FixHistoryScreen, HistoryEntryScreen
from console.screens.main import MainScreen
from console.screens.session_detail import SessionDetailScreen
from console.widgets.findings_table import FindingsTable
from console.widgets.targets_table import TargetsTable
from tests.tui.helpers import wait_until
from tests.tui.test_replay_activity import RECORDED, replay_app


def entry() -> JournalEntry:
    step = FixStep("sql", "CREATE INDEX CONCURRENTLY t_idx ON public.t (c)", transactional=False).to_dict()
    inverse = FixStep("sql", "DROP INDEX CONCURRENTLY public.t_idx", transactional=False).to_dict()
    return JournalEntry(
        id="20261201-100000-0001", kind="fix", started_at="2026-12-01T10:00:00+00:00", user="oncall", host="bastion",
        target="orders", engine="postgres", url="postgresql://app@orders.internal:5432/orders",
        environment="production", finding={"id": "f1", "check": "postgres.fk-missing-index", "object": "public.t"},
        summary="Index t.c", safety="safe", lock="SHARE UPDATE EXCLUSIVE", steps=[step],
        inverse=[inverse],
        outcome="fixed", message="fixed", verified=True, steps_done=1,
    )


def confirmation() -> Confirmation:
    return Confirmation(verb="Apply", title="Index t.c", target="orders", where="postgresql://orders", object="public.t",
                        safety=FixSafety.SAFE, lock="SHARE UPDATE EXCLUSIVE",
                        steps=(FixStep("sql", "CREATE INDEX CONCURRENTLY t_idx ON public.t (c)", transactional=False),))


Opener = Callable[[DbVitalsApp], Awaitable[None]]


async def _push(app: App[None], screen: Screen) -> None:
    await app.push_screen(screen)


# How to reach each section's screen in a replay.
OPENERS: dict[str, Opener] = {
    "everywhere": lambda app: _noop(),
    "main": lambda app: _noop(),
    "findings table": lambda app: _noop(),
    "targets table": lambda app: _focus_targets(app),
    "filter box": lambda app: _open_filter(app),
    "finding detail": lambda app: _open_finding(app),
    "confirm fix": lambda app: _push(app, ConfirmFixModal(confirmation=confirmation())),
    "progress": lambda app: _push(app, FixProgressModal("Index t.c", "orders")),
    "export": lambda app: _push(app, ExportModal(1, _never_written)),
    "fix history": lambda app: _push(app, FixHistoryScreen([entry()], journal="journal.jsonl")),
    "history entry": lambda app: _push(app, HistoryEntryScreen(entry(), None, None)),
    "activity": lambda app: _open_activity(app),
    "session detail": lambda app: _open_session_detail(app),
    "help": lambda app: _push(app, HelpScreen(key_sections(app))),
}
SCREENS = {"finding detail": FindingDetailScreen, "confirm fix": ConfirmFixModal, "progress": FixProgressModal,
           "export": ExportModal, "fix history": FixHistoryScreen, "history entry": HistoryEntryScreen,
           "activity": ActivityScreen, "session detail": SessionDetailScreen, "help": HelpScreen}


async def _noop() -> None:
    return None


async def _never_written(path: Path) -> Path:
    return path


async def _open_finding(app: DbVitalsApp) -> None:
    finding = app.main_screen.query_one(FindingsTable).selected()
    assert finding is not None
    app.controller.open_finding(finding)


async def _focus_targets(app: DbVitalsApp) -> None:
    app.main_screen.query_one(TargetsTable).focus()


async def _open_filter(app: DbVitalsApp) -> None:
    app.main_screen.action_filter()


async def _open_activity(app: DbVitalsApp) -> None:
    app.controller.open_activity("orders")  # the target the recording has activity for


async def _open_session_detail(app: DbVitalsApp) -> None:
    app.controller.open_activity("orders")
    screen = app.screen
    assert isinstance(screen, ActivityScreen)
    screen.call_after_refresh(screen.action_detail)  # the recorded root blocker, highlighted first


async def _back_to_main(app: DbVitalsApp, pilot) -> None:
    """Every screen closed, the filter cleared, the findings table focused: as the replay opens."""
    while len(app.screen_stack) > 1:
        app.pop_screen()
        await pilot.pause()
    app.main_screen.action_clear_filters()
    app.main_screen.query_one(FindingsTable).focus()
    await pilot.pause()


def test_every_section_can_be_opened_in_the_walk():
    assert {keys.section.title for keys in key_sections(DbVitalsApp)} == set(OPENERS)


@pytest.mark.parametrize("where", list(OPENERS))
async def test_every_key_works_on_every_screen_in_a_replay(where, tmp_path, monkeypatch):
    """Each key of the screen, and each key bound everywhere, pressed on that screen of a replay:
    nothing raises (replay, `A`, then `[` once crashed on the screen below's missing target)."""
    monkeypatch.chdir(tmp_path)  # an export written by Enter lands here
    sections = {keys.section.title: keys for keys in key_sections(DbVitalsApp)}
    keys = [k for b in (*sections[where].bindings, *sections["everywhere"].bindings) for k in b.key.split(",")]
    pressed: list[str] = []
    while len(pressed) < len(keys):  # `q` on the main screen quits: the rest go to a new app
        await _press_each(replay_app(tmp_path), where, keys[len(pressed):], pressed)
    assert pressed == keys


async def _press_each(app: DbVitalsApp, where: str, keys: list[str], pressed: list[str]) -> None:
    """Open the screen afresh, press one key, and again for the next, until the app quits."""
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(app.main_screen.query_one(FindingsTable).shown) == RECORDED)
        for key in keys:
            await _back_to_main(app, pilot)
            await OPENERS[where](app)
            if where in SCREENS:
                await wait_until(pilot, lambda: isinstance(app.screen, SCREENS[where]), timeout=10)
                await pilot.pause()
            pressed.append(key)
            await pilot.press(key)
            await pilot.pause(0.05)
            if not app.is_running:
                break
            assert app.controller.running_targets() == set()  # a replay runs nothing
            if isinstance(app.focused, Input):
                app.screen.set_focus(None)
    # An exception in a handler would have been raised by run_test above.
    assert app.return_code in (None, 0), f"{where}: {pressed[-1]!r} failed"


async def test_replay_activity_then_step_shows_the_activity_of_the_other_moment(tmp_path):
    app = replay_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(app.main_screen.query_one(FindingsTable).shown) == RECORDED)
        await pilot.press("t")  # the first target, orders: the one with recorded activity
        await pilot.pause(0.1)
        await pilot.press("A")
        await wait_until(pilot, lambda: isinstance(app.screen, ActivityScreen))
        first = app.screen
        await pilot.press("left_square_bracket")
        await wait_until(pilot, lambda: isinstance(app.screen, ActivityScreen) and app.screen is not first)
        assert isinstance(app.screen, ActivityScreen) and app.screen.target == "orders"
        assert app.screen.replay_time is not None and "9/10" in app.screen.replay_time
        await pilot.press("right_square_bracket")
        await wait_until(pilot, lambda: isinstance(app.screen, ActivityScreen)
                         and "10/10" in (app.screen.replay_time or ""))
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen))
