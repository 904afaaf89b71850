"""Pilot tests of the targets view against real servers: live updates, and targets that are
down from the start or go down mid-session."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from checks.registry import Registry
from checks.model import Severity, TargetState
from checks.postgres.connection import PostgresConnection
from checks.redis.connection import RedisConnection
from console.app import DbVitalsApp
from console.messages import CheckCompleted, TargetStatusChanged
from console.widgets.targets_table import TargetsTable
from tests.support import pg_address, refused_port, settings_for
from console.screens.detail import FindingDetailScreen
from console.widgets.findings_table import FindingsTable
from tests.tui.helpers import MissingIndexCheck, wait_until


def cell(app: DbVitalsApp, target: str, column: str) -> str:
    return str(app.main_screen.query_one(TargetsTable).get_cell(target, column))


def state(app: DbVitalsApp, target: str) -> str:
    """The state without the age of the answer (`up · 3s` → `up`)."""
    return cell(app, target, "state").split(" · ")[0]


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_targets_update_as_results_arrive(pg_db, redis_db, mongo_db, size):
    settings = settings_for(
        orders={"kind": "postgres", "url": pg_db.url, "environment": "production"},
        sessions={"kind": "redis", "url": redis_db.url},
        events={"kind": "mongodb", "url": mongo_db.url},
        gone={"kind": "postgres", "url": f"postgresql://postgres@127.0.0.1:{refused_port()}/x", "timeout": 2},
    )
    arrived: list[object] = []
    app = DbVitalsApp(settings, probe_interval=None)
    hook = lambda m: arrived.append(m) if isinstance(m, (CheckCompleted, TargetStatusChanged)) else None  # noqa: E731
    async with app.run_test(size=size, message_hook=hook) as pilot:
        # Usable at once: every configured target has a row before any check has answered.
        assert set(app.main_screen.query_one(TargetsTable).rows) == {"orders", "sessions", "events", "gone"}
        await wait_until(pilot, lambda: not app.controller.running_targets() and all(r.counts is not None for r in app.controller.targets.values()))
        await wait_until(pilot, lambda: app.controller.targets["orders"].allowed is not None)

        assert state(app, "orders") == "up" and cell(app, "orders", "env").strip() == "PRODUCTION"
        table = app.main_screen.query_one(TargetsTable)
        if size[0] >= 110:
            assert cell(app, "orders", "version") != "—" and cell(app, "orders", "latency").endswith("ms")
        else:  # an SSH window: version and latency give way so nothing scrolls sideways
            assert [c.key.value for c in table.ordered_columns] == ["target", "kind", "env", "state", "findings", "conns"]
            assert table.virtual_size.width <= size[0]
        used, allowed = app.controller.targets["orders"].used, app.controller.targets["orders"].allowed
        assert used >= 1 and allowed >= used and cell(app, "orders", "conns") == f"{used}/{allowed}"
        assert state(app, "sessions") == "up"
        assert state(app, "gone") == "down: refused"
        assert app.controller.targets["gone"].counts[Severity.CRITICAL] == 1 and "1C" in cell(app, "gone", "findings")
        # Results arrived one check at a time, as messages.
        assert sum(isinstance(m, CheckCompleted) for m in arrived) > 4
        assert {m.status.name for m in arrived if isinstance(m, TargetStatusChanged)} == set(settings.targets)


class Proxy:
    """A TCP relay to the shared PostgreSQL that the test can take away."""

    def __init__(self) -> None:
        self.server: asyncio.AbstractServer | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*pg_address())
        self.writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
        await self.server.wait_closed()


async def test_a_target_that_goes_down_is_shown_down_and_others_carry_on(pg_db, redis_db):
    proxy = Proxy()
    port = await proxy.start()
    database = pg_db.url.rsplit("/", 1)[1]
    settings = settings_for(
        orders={"kind": "postgres", "url": f"postgresql://postgres@127.0.0.1:{port}/{database}", "timeout": 2},
        sessions={"kind": "redis", "url": redis_db.url},
    )
    registry = Registry()
    registry.add(PostgresConnection, "builtin")
    registry.add(RedisConnection, "builtin")
    app = DbVitalsApp(settings, registry=registry, probe_interval=None)
    try:
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            await wait_until(pilot, lambda: not app.controller.running_targets() and app.controller.targets["orders"].counts is not None)
            assert app.controller.targets["orders"].status.state is TargetState.CONNECTED
            # The shared server may carry a low note (its own connection load); no critical one.
            assert not app.controller.targets["orders"].counts.get(Severity.CRITICAL)

            await proxy.stop()
            app.controller.probe_all()
            await wait_until(pilot, lambda: app.controller.targets["orders"].status.state is TargetState.REFUSED)
            # The change of state re-runs the target's checks: the connection finding appears.
            await wait_until(pilot, lambda: not app.controller.running_targets()
                             and app.controller.targets["orders"].counts.get(Severity.CRITICAL) == 1)
            assert state(app, "orders") == "down: refused"
            assert any("orders is down" in n.message for n in app._notifications)
            assert app.controller.targets["sessions"].status.state is TargetState.CONNECTED
            assert state(app, "sessions") == "up"
    finally:
        with contextlib.suppress(Exception):
            await proxy.stop()


@pytest.fixture
def unindexed_orders(pg_db):
    pg_db.execute("CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id bigint NOT NULL)")
    return pg_db


async def test_findings_of_a_target_that_dies_stay_stale_with_their_time(unindexed_orders):
    """The last thing known about a dead server stays on screen, marked stale."""
    pg_db = unindexed_orders
    proxy = Proxy()
    port = await proxy.start()
    database = pg_db.url.rsplit("/", 1)[1]
    settings = settings_for(
        orders={"kind": "postgres", "url": f"postgresql://postgres@127.0.0.1:{port}/{database}", "timeout": 2},
    )
    registry = Registry()
    registry.add(PostgresConnection, "builtin")
    registry.add(MissingIndexCheck, "tests")
    app = DbVitalsApp(settings, registry=registry, probe_interval=None)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            findings = app.main_screen.query_one(FindingsTable)
            def shown(check: str) -> list:
                return [f for f in findings.shown if f.check == check]

            await wait_until(pilot, lambda: not app.controller.running_targets() and shown(MissingIndexCheck.id))
            missing = shown(MissingIndexCheck.id)[0]
            assert not findings.stale

            await proxy.stop()
            app.controller.probe_all()
            await wait_until(pilot, lambda: app.controller.targets["orders"].status.state is TargetState.REFUSED)
            await wait_until(pilot, lambda: not app.controller.running_targets()
                             and any(f.severity is Severity.CRITICAL for f in shown("postgres.connection")))
            # The missing index is still there, stale since its check last confirmed it; the
            # connection failure is new and fresh.
            assert shown(MissingIndexCheck.id) == [missing]
            assert missing.id in findings.stale and abs(findings.stale[missing.id] - app.controller.clock()) < 60
            refused = next(f for f in shown("postgres.connection") if f.severity is Severity.CRITICAL)
            assert refused.id not in findings.stale
            title = str(app.main_screen.query_one("#findings-title").render())
            assert f"{len(findings.stale)} stale" in title
            await pilot.press("slash", *"check:postgres.test-*", "enter", "enter")
            await wait_until(pilot, lambda: isinstance(app.screen, FindingDetailScreen))
            assert "stale" in str(app.screen.query_one("#detail-meta").render())
            assert "old" in cell(app, "orders", "conns") or cell(app, "orders", "conns") == "—"
    finally:
        with contextlib.suppress(Exception):
            await proxy.stop()
