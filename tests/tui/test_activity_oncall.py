"""The activity view at 80×24 against real servers, as an on-call engineer uses it: cancel and
terminate act on the highlighted row of the tree without leaving it, the confirmation says whom
the session blocks and waits on (and offers its root blocker), Enter shows a session whole, each
view opens oldest first, a Redis client blocked in BLPOP is marked and `c`/`K` differ, and the
last minutes are drawn as sparklines that fit with the table."""

from __future__ import annotations

import threading
from typing import Any

from textual.widgets import DataTable, Sparkline, Static

from checks.config import config_from_dict
from console.app import DbVitalsApp
from console.screens.activity import ActivityScreen
from console.screens.confirm_fix import ConfirmFixModal
from console.screens.fix_progress import FixProgressModal
from console.screens.session_detail import SessionDetailScreen
from console.widgets.trends_view import TrendsView
from tests.integration.test_activity_workload import LockChain, wait_for
from tests.integration.test_redis_server_settings import private_redis
from tests.tui.helpers import synthetic_registry, wait_until

SIZE = (80, 24)


def console_for(url: str, kind: str, tmp_path, **target: Any) -> DbVitalsApp:
    settings = config_from_dict({"journal": str(tmp_path / "journal.jsonl"),
                                 "targets": {"app": {"kind": kind, "url": url, **target}}})
    return DbVitalsApp(settings, registry=synthetic_registry(), run_on_start=False, probe_interval=None)


async def open_activity(app: DbVitalsApp, pilot) -> ActivityScreen:
    app.controller.open_activity("app")
    await wait_until(pilot, lambda: isinstance(app.screen, ActivityScreen) and app.screen.sample is not None)
    screen = app.screen
    assert isinstance(screen, ActivityScreen)
    return screen


def rendered(widget: Static) -> str:
    return str(widget.render())


async def highlight(pilot, table: DataTable, ident: int | str) -> None:
    await wait_until(pilot, lambda: str(ident) in [key.value for key in table.rows])
    table.move_cursor(row=table.get_row_index(str(ident)))
    await pilot.pause()


async def test_the_tree_acts_on_its_highlighted_row_and_offers_the_root_blocker(pg_db, tmp_path):
    chain = LockChain(pg_db.url)
    holder, middle, tail = chain.start()
    try:
        app = console_for(pg_db.url, "postgres", tmp_path, allow_fixes=True, environment="production")
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_activity(app, pilot)
            table = screen.query_one(DataTable)
            assert screen.sections[screen.section_index][0] == "blocking"
            await highlight(pilot, table, holder)
            assert f"{holder} blocks 2" in str(table.get_row(str(holder))[0])  # both behind it, however deep

            await pilot.press("K")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmFixModal))
            modal = app.screen
            assert isinstance(modal, ConfirmFixModal)
            assert modal.confirmation.title.startswith(f"terminate session {holder}:")
            assert f"session {holder} (blocks 2, waits on none)" in modal.confirmation.object
            assert "PRODUCTION" in rendered(modal.query_one("#confirm-title", Static))
            await pilot.press("escape")
            await wait_until(pilot, lambda: app.screen is screen)
            assert screen.sections[screen.section_index][0] == "blocking"  # still in the tree

            await highlight(pilot, table, middle)
            await pilot.press("c")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmFixModal))
            modal = app.screen
            assert isinstance(modal, ConfirmFixModal)
            assert f"session {middle} (blocks 1, waits on {holder})" in modal.confirmation.object
            assert modal.confirmation.warnings == [
                f"session {middle} waits behind {holder}, the root blocker: Esc, then b terminates {holder} instead"]
            await pilot.press("escape")
            await wait_until(pilot, lambda: app.screen is screen)

            await highlight(pilot, table, tail)
            await pilot.press("b")  # from the deepest waiter: the head of its chain
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmFixModal))
            assert app.screen.confirmation.title.startswith(f"terminate session {holder}:")
            await pilot.press(*"app", "enter")
            await wait_until(pilot, lambda: isinstance(app.screen, FixProgressModal) and app.screen.done, timeout=20)
            said = rendered(app.screen.query_one("#progress-outcome", Static))
            assert "Fixed" in said and f"session {holder} is gone" in said
    finally:
        chain.stop()


async def test_enter_shows_a_session_whole_and_views_open_oldest_first(pg_db, tmp_path):
    chain = LockChain(pg_db.url)
    holder, middle, tail = chain.start()
    try:
        app = console_for(pg_db.url, "postgres", tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_activity(app, pilot)
            table = screen.query_one(DataTable)
            await highlight(pilot, table, middle)
            await pilot.press("enter")
            await wait_until(pilot, lambda: isinstance(app.screen, SessionDetailScreen))
            detail = app.screen
            text = rendered(detail.query_one("#session-fields", Static))
            assert f"blocks 1, waits on {holder}" in text
            assert "SELECT count(*) FROM a" in text  # the whole statement
            assert "locks held" in text and "relation b" in text and "relation a" in text
            assert "transaction s" in text and "Lock:relation" in text and "client" in text
            assert detail.query_one("#session-detail").region.right <= SIZE[0]
            await pilot.press("escape")
            await wait_until(pilot, lambda: app.screen is screen)

            await pilot.press("n", "n")  # Sessions: by transaction age, oldest first
            assert screen.sections[screen.section_index][0] == "sessions" and screen.sort_key == "xact_age_s"
            await wait_until(pilot, lambda: table.row_count >= 3)
            ages = [row["xact_age_s"] for row in screen.rows() if row["xact_age_s"] is not None]
            assert ages == sorted(ages, reverse=True)
            # The server is shared: among this test's sessions, the first transaction opened comes first.
            assert [row["id"] for row in screen.rows() if row["id"] in (holder, middle, tail)][0] == holder
            assert "xact s ▼" in [str(column.label) for column in table.columns.values()]
            await pilot.press("S")
            ages = [row["xact_age_s"] for row in screen.rows() if row["xact_age_s"] is not None]
            assert ages == sorted(ages)
            await pilot.press("s")
            assert screen.sort_key == "application"
    finally:
        chain.stop()


async def test_sparklines_of_the_last_refreshes_fit_with_the_table(pg_db, tmp_path):
    chain = LockChain(pg_db.url)
    chain.start()
    try:
        app = console_for(pg_db.url, "postgres", tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_activity(app, pilot)
            await pilot.press("minus")  # every second: three refreshes come sooner
            await wait_until(pilot, lambda: len(screen.trend_history.series("blocked")) >= 3)
            await pilot.pause()
            trends = screen.query_one(TrendsView)
            assert trends.display
            blocked = trends.query_one("#trend-blocked Sparkline", Sparkline)
            assert max(blocked.data or [0]) >= 2
            # The view is server-wide: another client's blocked sessions may add to this test's two.
            label = rendered(trends.query_one("#trend-blocked Static", Static))
            assert label.startswith("blocked ") and int(label.split()[1]) >= 2, label
            assert not trends.query_one("#trend-replication_lag_s").display  # no standby: no lag line
            table = screen.query_one(DataTable)
            assert trends.region.height >= 2 and trends.region.bottom <= SIZE[1] - 1  # above the footer
            assert table.region.height >= 10 and table.region.bottom <= trends.region.y
    finally:
        chain.stop()


async def test_redis_blocked_client_is_marked_and_cancel_differs_from_terminate(tmp_path):
    import redis

    with private_redis(tmp_path) as url:
        consumer = redis.Redis.from_url(url, client_name="consumer")
        ident = str(consumer.client_id())
        popping = threading.Thread(target=lambda: consumer.blpop(["jobs"], timeout=30), daemon=True)
        popping.start()
        admin = redis.Redis.from_url(url)
        wait_for(lambda: any(str(c["id"]) == ident and "b" in c["flags"] for c in admin.client_list()))
        try:
            app = console_for(url, "redis", tmp_path, allow_fixes=True)
            async with app.run_test(size=SIZE) as pilot:
                screen = await open_activity(app, pilot)
                while screen.sections[screen.section_index][0] != "clients":
                    await pilot.press("n")
                table = screen.query_one(DataTable)
                await highlight(pilot, table, ident)
                assert "blocked" in [str(cell) for cell in table.get_row(ident)]
                for key, command in (("c", ["CLIENT", "UNBLOCK", ident]), ("K", ["CLIENT", "KILL", "ID", ident])):
                    await pilot.press(key)
                    await wait_until(pilot, lambda: isinstance(app.screen, ConfirmFixModal))
                    assert [list(step.command) for step in app.screen.confirmation.steps] == [command]
                    assert f"client {ident} (waits in a blocking command)" in app.screen.confirmation.object
                    await pilot.press("escape")
                    await wait_until(pilot, lambda: app.screen is screen)
        finally:
            admin.lpush("jobs", "done")  # the consumer returns
            popping.join(10)
            consumer.close()
            admin.close()


async def test_redis_clients_most_idle_first_and_an_empty_namespace_view_says_why(tmp_path, mongo_db):
    import redis

    with private_redis(tmp_path) as url:
        sleeper, busy = (redis.Redis.from_url(url, client_name=name) for name in ("sleeper", "busy"))
        sleeper.ping()
        wait_for(lambda: any(c["name"] == "sleeper" and int(c["idle"]) >= 2 for c in busy.client_list()))
        try:
            app = console_for(url, "redis", tmp_path)
            async with app.run_test(size=SIZE) as pilot:
                screen = await open_activity(app, pilot)
                while screen.sections[screen.section_index][0] != "clients":
                    await pilot.press("n")
                table = screen.query_one(DataTable)
                await wait_until(pilot, lambda: table.row_count >= 2)
                idle = [row["idle_s"] for row in screen.rows()]
                assert idle == sorted(idle, reverse=True) and screen.rows()[0]["name"] == "sleeper"
                assert "idle s ▼" in [str(column.label) for column in table.columns.values()]
                assert "dbvitals" not in [row["name"] for row in screen.rows()]  # its own client is not listed
        finally:
            sleeper.close()
            busy.close()

    app = console_for(mongo_db.url, "mongodb", tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_activity(app, pilot)
        await pilot.press("n")
        assert screen.sections[screen.section_index][0] == "namespaces"
        notes = screen.query_one("#activity-notes", Static)
        # Nothing touches this server's collections: first the rate needs a second refresh, then
        # the view stays empty and says that nothing was read or written.
        await wait_until(pilot, lambda: "no collection was read or written" in rendered(notes))
        assert screen.query_one(DataTable).row_count == 0


async def test_session_detail_shows_names_and_statements_as_data(tmp_path):
    from checks.postgres import activity as pg_activity

    row = {"id": 9, "state": "active", "application": "[red]app\x1b]0;owned\x07", "blocked_by": [], "blocks": 0,
           "query": "SELECT '[b]not bold[/b]' -- \x1b[2J", "locks_held": ["relation \"[x]\" AccessShareLock"]}
    app = console_for("postgresql://nobody@127.0.0.1:1/none", "postgres", tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await app.push_screen(SessionDetailScreen("app", row, pg_activity.DETAIL, "2026-12-01T10:00:00+00:00"))
        await pilot.pause()
        text = app.screen.query_one("#session-fields", Static).render()
        plain = str(text)
        assert "[red]app" in plain and "[b]not bold[/b]" in plain and 'relation "[x]" AccessShareLock' in plain
        assert "\x1b" not in plain and "\x07" not in plain
