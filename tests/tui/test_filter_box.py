"""The box is the filter, in the findings list and in the activity view (80×24)."""

from __future__ import annotations

from textual.widgets import DataTable

from checks.config import config_from_dict
from checks.model import Severity
from console.app import DbVitalsApp
from console.screens.activity import ActivityScreen
from console.widgets.filter_box import FilterBox
from tests.integration.test_activity import Blocker
from tests.tui.helpers import settle, synthetic_app, synthetic_registry, wait_until
from tests.tui.test_findings import table


def title(app) -> str:
    return str(app.main_screen.query_one("#findings-title").render())


def box_text(app) -> str:
    return app.main_screen.query_one(FilterBox).text


async def test_deleting_a_term_from_the_box_removes_it():
    app = synthetic_app(30)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(table(app).shown) == 30)
        await pilot.press("slash", *"sev:high")
        await settle(pilot)
        assert {f.severity for f in table(app).shown} == {Severity.HIGH}
        assert "filter: sev:high" in title(app)
        await pilot.press(*["backspace"] * len("sev:high"))
        await settle(pilot)
        assert len(table(app).shown) == 30
        assert "filter" not in title(app)


async def test_keys_that_filter_write_into_the_box_and_esc_clears_it():
    app = synthetic_app(30)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(table(app).shown) == 30)
        await pilot.press("1", "2", "t")
        await settle(pilot)
        assert box_text(app) == "severity:critical,high target:orders"
        assert app.main_screen.query_one(FilterBox).display  # what filters is on screen
        assert {(f.severity, f.target) for f in table(app).shown} <= {(Severity.CRITICAL, "orders"),
                                                                       (Severity.HIGH, "orders")}
        await pilot.press("1")
        await settle(pilot)
        assert box_text(app) == "target:orders severity:high"
        await pilot.press("slash", "escape")
        await settle(pilot)
        assert box_text(app) == "" and len(table(app).shown) == 30
        assert not app.main_screen.query_one(FilterBox).display and table(app).has_focus


async def test_an_unknown_field_or_value_is_said_in_the_box_not_ignored():
    app = synthetic_app(30)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(table(app).shown) == 30)
        await pilot.press("slash", *"sevv:high")
        await settle(pilot)
        problem = str(app.main_screen.query_one("#filter-problem").render())
        assert 'unknown field "sevv"' in problem
        assert 'unknown field "sevv"' in title(app)
        await pilot.press("ctrl+u", *"sev:hihg")
        await settle(pilot)
        assert 'unknown severity "hihg"' in str(app.main_screen.query_one("#filter-problem").render())
        await pilot.press("ctrl+u", *"target:nowhere")
        await settle(pilot)
        assert 'unknown target "nowhere"' in str(app.main_screen.query_one("#filter-problem").render())


async def test_negation_and_regular_expressions():
    app = synthetic_app(30)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(table(app).shown) == 30)
        await pilot.press("slash", *"!target:orders /0000[0-5]/", "enter")
        await settle(pilot)
        assert sorted(f.object for f in table(app).shown) == ["pattern:00001:*", "pattern:00002:*",
                                                              "pattern:00004:*", "pattern:00005:*"]
        assert table(app).has_focus and box_text(app) == "!target:orders /0000[0-5]/"
        await pilot.press("x")
        await settle(pilot)
        assert len(table(app).shown) == 30 and box_text(app) == ""


async def test_the_activity_view_filters_through_the_same_box(pg_db):
    blocker = Blocker(pg_db.url)
    holder, waiter = blocker.start()
    try:
        settings = config_from_dict({"targets": {"app": {"kind": "postgres", "url": pg_db.url}}})
        app = DbVitalsApp(settings, registry=synthetic_registry(), run_on_start=False, probe_interval=None)
        async with app.run_test(size=(80, 24)) as pilot:
            app.controller.open_activity("app")
            await wait_until(pilot, lambda: isinstance(app.screen, ActivityScreen) and app.screen.sample is not None)
            screen = app.screen
            while screen.sections[screen.section_index][0] != "sessions":
                await pilot.press("n")
            table = screen.query_one(DataTable)
            await wait_until(pilot, lambda: {str(holder), str(waiter)} <= {key.value for key in table.rows})

            def pids() -> set[str]:
                return {str(key.value) for key in table.rows}

            await pilot.press("slash", *f"app:{blocker.holder_name}")
            await wait_until(pilot, lambda: pids() == {str(holder)})
            await pilot.press("ctrl+u", *f"!app:{blocker.holder_name} state:active /{blocker.waiter_name}/")
            await wait_until(pilot, lambda: pids() == {str(waiter)})
            assert f"/!app:{blocker.holder_name}" in str(screen.query_one("#activity-header").render())
            await pilot.press("ctrl+u", *"stat:active")
            await pilot.pause()
            assert 'unknown field "stat"' in str(screen.query_one("#filter-problem").render())
            await pilot.press("escape")  # clears the box, the view stays
            await wait_until(pilot, lambda: {str(holder), str(waiter)} <= pids())
            assert isinstance(app.screen, ActivityScreen) and not screen.query_one(FilterBox).display
    finally:
        blocker.stop()
