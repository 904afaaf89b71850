"""postgres.settings against real servers: on the shared server the timeouts its configuration
leaves at 0 are reported for the test's database and go quiet once the database sets them (a role
of its own is named as covered); a private cluster configured well is quiet; a pg_monitor-less role
is told the timeouts are unknown."""

from __future__ import annotations

import asyncio

import asyncpg

from checks.model import FixSafety, Severity
from tests import support

CHECK = "postgres.settings"


def run(url: str, **options):
    settings = support.settings_for(pg={"kind": "postgres", "url": url, "checks": {CHECK: options}})
    report = support.run_report(settings, checks=[CHECK])
    assert report.errors == []
    return {(f.object, f.evidence.get("setting") or f.title): f for f in report.findings}


def test_timeouts_left_at_zero_then_set_for_the_database(pg_db):
    configured = {r["name"]: r["setting"] for r in pg_db.fetch(
        "SELECT name, setting FROM pg_file_settings WHERE applied AND name IN "
        "('statement_timeout', 'idle_in_transaction_session_timeout', 'lock_timeout')")}
    unset = [n for n in ("statement_timeout", "idle_in_transaction_session_timeout", "lock_timeout")
             if configured.get(n, "0") in ("0", "0ms")]
    pg_db.execute(f'CREATE ROLE "app_{pg_db.name}" LOGIN; '
                  f'ALTER ROLE "app_{pg_db.name}" IN DATABASE "{pg_db.name}" SET statement_timeout = \'10s\'')
    try:
        findings = run(pg_db.url)
        timeouts = {key[1]: f for key, f in findings.items() if key[0] == f"database {pg_db.name}"}
        assert sorted(timeouts) == sorted(unset)
        if "statement_timeout" in timeouts:
            statement = timeouts["statement_timeout"]
            assert statement.severity is Severity.LOW and statement.fix.safety is FixSafety.MANUAL
            assert statement.evidence["roles_setting_it"] == {f"app_{pg_db.name}": "10s"}
            assert statement.fix.steps[0].command == f"ALTER DATABASE {pg_db.name} SET statement_timeout = '30s';"
        pg_db.execute(f"""ALTER DATABASE "{pg_db.name}" SET statement_timeout = '30s';
                          ALTER DATABASE "{pg_db.name}" SET idle_in_transaction_session_timeout = '5min';
                          ALTER DATABASE "{pg_db.name}" SET lock_timeout = '5s';""")
        assert [key for key in run(pg_db.url) if key[0] == f"database {pg_db.name}"] == []
    finally:
        pg_db.execute(f'DROP OWNED BY "app_{pg_db.name}"; DROP ROLE "app_{pg_db.name}"')


def test_a_well_configured_server_is_quiet_and_a_poor_one_is_told():
    with support.private_postgres("log_min_duration_statement=1000", "shared_preload_libraries=pg_stat_statements") as url:
        for command in ("ALTER SYSTEM SET statement_timeout = '30s'", "ALTER SYSTEM SET lock_timeout = '5s'",
                        "ALTER SYSTEM SET idle_in_transaction_session_timeout = '5min'", "SELECT pg_reload_conf()"):
            asyncio.run(_execute(url, command))  # postgresql.auto.conf, read back through pg_file_settings
        assert run(url) == {}
        assert set(run(url, max_connections=10)) == {("server", "max_connections is 100")}
    with support.private_postgres("work_mem=1GB") as url:
        findings = run(url, max_work_mem_total=1024**3)
        assert {key[1] for key in findings if key[0] == "server"} == {
            "slow statements are not logged (log_min_duration_statement = -1)",
            "pg_stat_statements is not loaded", "work_mem × max_connections is 100.0 GB"}
        assert len([key for key in findings if key[0] == "database postgres"]) == 3


async def _execute(url: str, command: str) -> None:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute(command)
    finally:
        await conn.close()
