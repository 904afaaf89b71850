"""Every fix confirmation at 80×24 shows one line per step and per step of its inverse without
scrolling; `v` shows the full text (real servers: the Redis TTL fix, a PostgreSQL index fix)."""

from __future__ import annotations

import pytest

from checks.config import config_from_dict
from checks.registry import load_registry
from console.app import DbVitalsApp
from console.screens.confirm_fix import ConfirmFixModal
from console.widgets.findings_table import FindingsTable
from tests.tui.helpers import wait_until


def screen_text(app: DbVitalsApp) -> str:
    """What the terminal shows, line by line."""
    return "\n".join("".join(segment.text for segment in strip) for strip in app.screen._compositor.render_strips())


async def confirm(app: DbVitalsApp, pilot, check: str) -> ConfirmFixModal:
    table = app.main_screen.query_one(FindingsTable)
    await wait_until(pilot, lambda: any(f.check == check for f in table.shown), timeout=60)
    app.controller.start_fix(next(f for f in table.shown if f.check == check))
    await wait_until(pilot, lambda: isinstance(app.screen, ConfirmFixModal), timeout=60)
    await pilot.pause()
    return app.screen


async def test_the_redis_ttl_fix_shows_its_step_and_its_inverse_on_one_screen(redis_db, tmp_path):
    for i in range(300):
        redis_db.client.set(f"session:{i:05d}", "x")
    for i in range(300, 320):
        redis_db.client.set(f"session:{i:05d}", "x", ex=3000)
    settings = config_from_dict({"journal": str(tmp_path / "journal.jsonl"), "targets": {"cache": {
        "kind": "redis", "url": redis_db.url, "allow_fixes": True,
        "expect": {"ttl": [{"pattern": "session:*", "max": "1h"}]}}}})
    app = DbVitalsApp(settings, registry=load_registry(), probe_interval=None)
    async with app.run_test(size=(80, 24)) as pilot:
        modal = await confirm(app, pilot, "redis.ttl-coverage")
        shown = screen_text(app)
        assert "1. [no lock] SCAN MATCH session:* in db" in shown
        assert "Inverse (undo)" in shown and "1. [no lock] PERSIST exactly the keys the EXPIRE step" in shown
        assert "python3" not in shown and "'\"'\"'" not in shown  # the script is not what one reads first
        await pilot.press("f2")  # the name box has the focus: v would be typed
        await pilot.pause()
        assert "redis-cli" in screen_text(app) or "python3" in screen_text(app)
        await pilot.press("f2")  # the name box has the focus: v would be typed
        await pilot.pause()
        assert "Inverse (undo)" in screen_text(app)
        modal.dismiss(False)


@pytest.fixture
def shop_db(pg_db):
    """Orders referencing customers with no index on the reference."""
    pg_db.execute("CREATE TABLE customers (id bigint PRIMARY KEY)")
    pg_db.execute("CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint REFERENCES customers (id))")
    pg_db.execute("INSERT INTO customers SELECT g FROM generate_series(1, 100) g")
    pg_db.execute("INSERT INTO orders SELECT g, g % 100 + 1 FROM generate_series(1, 2000) g")
    return pg_db


async def test_a_postgres_index_fix_shows_its_statement_lock_and_inverse(shop_db, tmp_path):
    pg_db = shop_db
    settings = config_from_dict({"journal": str(tmp_path / "journal.jsonl"), "targets": {"shop": {
        "kind": "postgres", "url": pg_db.url, "allow_fixes": True}}})
    app = DbVitalsApp(settings, registry=load_registry(), probe_interval=None)
    async with app.run_test(size=(80, 24)) as pilot:
        modal = await confirm(app, pilot, "postgres.fk-missing-index")
        lines = screen_text(app).splitlines()
        [step] = [line for line in lines if "1. [SHARE UPDATE EXCLUSIVE on public.orders] CREATE INDEX CONCURRENTLY"
                  in line]
        [undo] = [line for line in lines if "1. [SHARE UPDATE EXCLUSIVE on the table of" in line]
        assert lines.index(step) < lines.index(undo) and "DROP INDEX CONCURRENTLY" in "\n".join(lines)
        modal.dismiss(False)
