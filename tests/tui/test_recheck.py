"""Findings carry their age and targets are re-checked on a schedule, never overlapping, and at
once after an action on them (80×24, against a real PostgreSQL)."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import asyncpg

from checks.config import config_from_dict
from checks.contract import Check, Scope
from checks.model import Finding, Severity
from checks.postgres.connection import PostgresConnection
from checks.registry import Registry
from console.app import DbVitalsApp
from console.screens.confirm_fix import ConfirmFixModal
from console.screens.detail import FindingDetailScreen
from console.screens.fix_progress import FixProgressModal
from console.widgets.findings_table import FindingsTable
from tests.tui.helpers import MissingIndexCheck, fix_registry, wait_until
from tests.tui.test_fix import orders_db  # noqa: F401  (the fixture)


def shop(url: str, registry: Registry, every: str) -> DbVitalsApp:
    settings = config_from_dict({"recheck_every": every,
                                 "targets": {"shop": {"kind": "postgres", "url": url, "allow_fixes": True}}})
    return DbVitalsApp(settings, registry=registry, probe_interval=None)


def shown(app: DbVitalsApp) -> list[Finding]:
    return [f for f in app.main_screen.query_one(FindingsTable).shown if f.check == MissingIndexCheck.id]


async def test_a_finding_whose_condition_is_gone_leaves_without_pressing_r(orders_db):  # noqa: F811
    app = shop(orders_db.url, fix_registry(), "1s")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: bool(shown(app)))
        preview = app.main_screen.query_one("#preview")
        await wait_until(pilot, lambda: "seen " in str(preview.render()) and " ago" in str(preview.render()))
        app.controller.open_finding(shown(app)[0])
        await wait_until(pilot, lambda: isinstance(app.screen, FindingDetailScreen) and bool(app.screen.query("#detail-meta")))
        assert "seen" in str(app.screen.query_one("#detail-meta").render())
        app.pop_screen()
        conn = await asyncpg.connect(orders_db.url)
        try:
            await conn.execute("CREATE INDEX ON orders (customer_id)")
        finally:
            await conn.close()
        await wait_until(pilot, lambda: not shown(app))


class SlowCheck(Check):
    """Waits for the test to let it finish: a target slower than the schedule."""

    id = "postgres.test-slow"
    engine = "postgres"
    title = "A slow check"
    severity = Severity.LOW
    rationale = "Stands for a target slower than the re-check interval."
    started: ClassVar[int] = 0
    release: ClassVar[asyncio.Event]

    async def gather(self, session: Any, scope: Scope) -> None:
        SlowCheck.started += 1
        await SlowCheck.release.wait()

    def evaluate(self, facts: None, scope: Scope) -> list[Finding]:
        return []


async def test_a_slow_target_skips_a_round_rather_than_stacking(pg_db):
    registry = Registry()
    registry.add(PostgresConnection, "builtin")
    registry.add(SlowCheck, "tests")
    SlowCheck.started, SlowCheck.release = 0, asyncio.Event()
    app = shop(pg_db.url, registry, "0.2s")
    rounds = 0
    controller = app.controller
    recheck_all = controller.recheck_all

    def counted() -> None:
        nonlocal rounds
        rounds += 1
        recheck_all()

    controller.recheck_all = counted  # type: ignore[method-assign]  # before the app starts its timer
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: SlowCheck.started == 1)
        await wait_until(pilot, lambda: rounds >= 4)
        assert SlowCheck.started == 1 and controller.targets["shop"].running  # not cancelled, not stacked
        SlowCheck.release.set()
        await wait_until(pilot, lambda: SlowCheck.started >= 2)  # the next round after it finished


async def test_a_fix_rechecks_its_target_at_once(orders_db):  # noqa: F811
    app = shop(orders_db.url, fix_registry(), "0s")  # no schedule: only the fix can start a run
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: bool(shown(app)) and not app.controller.running_targets())
        runs = []
        run_target = app.controller.run_target
        app.controller.run_target = lambda name: (runs.append(name), run_target(name))  # type: ignore[method-assign]
        app.controller.start_fix(shown(app)[0])
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmFixModal))
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, FixProgressModal) and app.screen.done, timeout=60)
        assert runs == ["shop"]
