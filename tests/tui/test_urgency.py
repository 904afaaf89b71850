"""The findings list in urgency order (80×24, real servers): a down target's news first, then
production's findings, then the rest, each by severity."""

from __future__ import annotations

from checks.config import config_from_dict
from checks.model import Severity
from checks.postgres.connection import PostgresConnection
from checks.registry import Registry
from console.app import DbVitalsApp
from console.widgets.findings_table import FindingsTable
from tests.support import free_port
from tests.tui.helpers import MissingIndexCheck, wait_until
from tests.tui.test_fix import orders_db  # noqa: F401  (the fixture)


class CriticalMissingIndex(MissingIndexCheck):
    id = "postgres.test-critical-missing-index"
    severity = Severity.CRITICAL


async def test_a_down_production_target_sorts_first_then_production(orders_db):  # noqa: F811
    registry = Registry()
    registry.add(PostgresConnection, "builtin")
    registry.add(CriticalMissingIndex, "tests")
    settings = config_from_dict({"targets": {
        # Names chosen so that the alphabet alone would give the opposite order.
        "aa_staging": {"kind": "postgres", "url": orders_db.url, "environment": "staging"},
        "mm_live": {"kind": "postgres", "url": orders_db.url, "environment": "production"},
        "zz_orders": {"kind": "postgres", "url": f"postgresql://postgres@127.0.0.1:{free_port()}/postgres",
                      "environment": "production", "timeout": 2},
    }})
    app = DbVitalsApp(settings, registry=registry, probe_interval=None)
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.main_screen.query_one(FindingsTable)
        await wait_until(pilot, lambda: {f.target for f in table.shown} == {"aa_staging", "mm_live", "zz_orders"}
                         and not app.controller.running_targets())
        order = [(f.target, f.severity) for f in table.shown]
        assert order == [("zz_orders", Severity.CRITICAL), ("mm_live", Severity.CRITICAL),
                         ("aa_staging", Severity.CRITICAL)]
        assert table.selected().target == "zz_orders"  # where the cursor starts
