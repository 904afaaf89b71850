"""postgres.settings: server settings on-call regrets (postgres-checkup's G003 and A006 in spirit).

- `statement_timeout`, `idle_in_transaction_session_timeout`, `lock_timeout` left at 0 (no limit)
  for this database: neither the server's configuration nor `ALTER DATABASE` sets them; roles
  that set their own are named (they are covered).
- `log_min_duration_statement` off: slow statements leave no trace in the log.
- pg_stat_statements not preloaded: no per-statement time, and no index advice from it.
- Sizes out of proportion where the server can tell: `shared_buffers` still at its 128 MB default
  for a database many times larger; `work_mem` × `max_connections` beyond reason.

The session dbvitals runs in sets its own timeouts, so the server's values are read from the
configuration files, postgresql.auto.conf (ALTER SYSTEM) included, through `pg_file_settings`
(superusers only); without that view the timeouts are not judged and the evidence says so. A value
given on the server's command line (`-c`) is not in that view and counts as unset.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field

from checks.config import Duration, duration
from checks.contract import Check, CheckOptions, Scope
from checks.model import Finding, Fix, FixAvailability, FixSafety, Severity
from checks.postgres._catalog import quote_ident
from checks.postgres._fixes import sql
from checks.units import human_bytes

TIMEOUTS = ("statement_timeout", "idle_in_transaction_session_timeout", "lock_timeout")

SETTINGS_QUERY = """
SELECT name, setting, unit, boot_val
FROM pg_settings
WHERE name IN ('log_min_duration_statement', 'shared_preload_libraries', 'shared_buffers', 'work_mem',
               'max_connections', 'block_size')
"""

# The configuration files' values (what sessions without overrides get); NULL rows when unreadable.
FILE_SETTINGS_QUERY = """
SELECT name, setting FROM pg_file_settings
WHERE applied AND name IN ('statement_timeout', 'idle_in_transaction_session_timeout', 'lock_timeout')
"""

OVERRIDES_QUERY = """
SELECT coalesce(r.rolname, '') AS role, s.setting
FROM pg_db_role_setting x
LEFT JOIN pg_roles r ON r.oid = x.setrole
CROSS JOIN LATERAL unnest(x.setconfig) AS s(setting)
WHERE x.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
  AND (x.setrole = 0 OR r.rolcanlogin)
"""

SIZE_QUERY = "SELECT current_database() AS database, pg_database_size(current_database()) AS bytes"

RECOMMENDED = {"statement_timeout": "30s", "idle_in_transaction_session_timeout": "5min", "lock_timeout": "5s"}
DEFAULT_SHARED_BUFFERS = 16384  # 128 MB in 8 kB pages


class Options(CheckOptions):
    timeouts: bool = Field(default=True, description="Report timeouts left at 0 for this database.")
    shared_buffers_ratio: float = Field(
        default=32.0, gt=1, description="Report the 128 MB default shared_buffers when the database is this many times larger.")
    max_work_mem_total: int = Field(
        default=64 * 1024**3, gt=0, description="Report when work_mem × max_connections exceeds this many bytes.")
    max_connections: int = Field(default=1000, gt=0, description="Report max_connections above this (use a pooler).")
    slow_statement: Duration = Field(
        default=duration("1s"), description="What the (manual) fix proposes for log_min_duration_statement.")


@dataclass(frozen=True)
class Setting:
    name: str
    setting: str
    unit: str | None
    boot_val: str | None


@dataclass(frozen=True)
class Facts:
    settings: dict[str, Setting]
    file_settings: dict[str, str] | None  # None: pg_file_settings not readable
    database_overrides: dict[str, str]  # ALTER DATABASE ... SET (or ALTER ROLE ALL)
    role_overrides: dict[str, dict[str, str]]  # login role → its own settings
    database: str
    database_bytes: int


def _is_zero(value: str | None) -> bool:
    return value is not None and value.strip().strip("'") in ("0", "0ms", "0s", "0min")


def _bytes(setting: Setting) -> int:
    units = {"8kB": 8192, "kB": 1024, "MB": 1024**2, "B": 1}
    return int(setting.setting) * units.get(setting.unit or "B", 1)


class Settings(Check):
    id = "postgres.settings"
    engine = "postgres"
    title = "Server setting to revisit"
    severity = Severity.LOW
    fix_availability = FixAvailability.SOMETIMES
    Options = Options
    rationale = (
        "Without timeouts one runaway query, one forgotten transaction or one lock queue can hold the whole "
        "application; without slow-statement logging or pg_stat_statements nobody can say afterwards what was slow."
    )

    async def gather(self, session, scope: Scope) -> Facts:
        import asyncpg  # the driver only when a check runs: the catalog loads without it

        settings = {r["name"]: Setting(**dict(r)) for r in await session.fetch(SETTINGS_QUERY)}
        try:
            file_settings: dict[str, str] | None = {r["name"]: r["setting"] for r in await session.fetch(FILE_SETTINGS_QUERY)}
        except asyncpg.InsufficientPrivilegeError:  # judged as unknown, never guessed
            file_settings = None
        database: dict[str, str] = {}
        roles: dict[str, dict[str, str]] = {}
        for row in await session.fetch(OVERRIDES_QUERY):
            name, _, value = row["setting"].partition("=")
            (roles.setdefault(row["role"], {}) if row["role"] else database)[name] = value
        size = await session.fetchrow(SIZE_QUERY)
        return Facts(settings, file_settings, database, roles, size["database"], int(size["bytes"]))

    def evaluate(self, facts: Facts, scope: Scope) -> list[Finding]:
        options = scope.options
        findings = []
        db = quote_ident(facts.database)
        if options.timeouts and facts.file_settings is not None:
            for name in TIMEOUTS:
                value = facts.database_overrides.get(name, facts.file_settings.get(name, "0"))
                if not _is_zero(value):
                    continue
                covered = {role: s[name] for role, s in facts.role_overrides.items() if name in s and not _is_zero(s[name])}
                source = ("ALTER DATABASE sets it to 0" if name in facts.database_overrides else
                          "postgresql.conf sets it to 0" if name in facts.file_settings else "never set (default 0)")
                findings.append(self.finding(
                    scope, object=f"database {db}", key=name,
                    title=f"{name} is 0 (no limit) for {facts.database}",
                    message=(f"{name} is 0 for database {db} ({source}): "
                             + {"statement_timeout": "a runaway query runs until someone kills it.",
                                "idle_in_transaction_session_timeout": "a session that forgets to commit holds its "
                                "locks and the xmin horizon forever.",
                                "lock_timeout": "a DDL statement queued behind a long query blocks every query "
                                "queued behind it."}[name]
                             + (f" Roles that set their own: {', '.join(sorted(covered))}." if covered else "")),
                    evidence={"setting": name, "value": value, "source": source, "roles_setting_it": covered},
                    fix=Fix(summary=f"Set {name} for {facts.database}",
                            steps=(sql(f"ALTER DATABASE {db} SET {name} = '{RECOMMENDED[name]}';"),),
                            safety=FixSafety.MANUAL,
                            lock="no lock; applies to sessions opened afterwards",
                            inverse=(sql(f"ALTER DATABASE {db} RESET {name};"),),
                            notes="Pick the value with the application's owners: the longest legitimate statement "
                                  "(or transaction pause) must fit; a role or a transaction can still override it."),
                ))
        s = facts.settings
        if "log_min_duration_statement" in s and s["log_min_duration_statement"].setting == "-1":
            threshold = int(options.slow_statement.total_seconds() * 1000)
            findings.append(self.finding(
                scope, object="server", key="log_min_duration_statement",
                title="slow statements are not logged (log_min_duration_statement = -1)",
                message="log_min_duration_statement is -1: no statement is logged for its duration, so after an "
                        "incident the log cannot say which queries were slow.",
                evidence={"log_min_duration_statement": -1},
                fix=Fix(summary=f"Log statements slower than {threshold} ms",
                        steps=(sql(f"ALTER SYSTEM SET log_min_duration_statement = {threshold};", transactional=False),
                               sql("SELECT pg_reload_conf();")),
                        safety=FixSafety.MANUAL, lock="no lock; a configuration reload",
                        inverse=(sql("ALTER SYSTEM RESET log_min_duration_statement;", transactional=False),
                                 sql("SELECT pg_reload_conf();"))),
            ))
        preload = s.get("shared_preload_libraries")
        if preload is not None and "pg_stat_statements" not in [p.strip() for p in preload.setting.split(",")]:
            findings.append(self.finding(
                scope, object="server", key="pg_stat_statements",
                title="pg_stat_statements is not loaded",
                message=("pg_stat_statements is not in shared_preload_libraries: there is no record of which "
                         "statements take the time, and postgres.missing-index can advise only on declared queries."),
                evidence={"shared_preload_libraries": preload.setting,
                          "hidden": ["time and calls per statement", "the index advisor's workload"]},
                fix=Fix(summary="Preload pg_stat_statements (needs a restart)", steps=(), safety=FixSafety.MANUAL,
                        notes="Add pg_stat_statements to shared_preload_libraries, restart, then CREATE EXTENSION "
                              "pg_stat_statements in each database."),
            ))
        if "shared_buffers" in s and int(s["shared_buffers"].setting) == DEFAULT_SHARED_BUFFERS:
            buffers = _bytes(s["shared_buffers"])
            if facts.database_bytes > buffers * options.shared_buffers_ratio:
                findings.append(self.finding(
                    scope, object="server", key="shared_buffers",
                    title=f"shared_buffers is still the 128 MB default for a {human_bytes(facts.database_bytes)} database",
                    message=(f"shared_buffers is at its 128 MB default while {db} alone is "
                             f"{human_bytes(facts.database_bytes)}: most reads go to the OS cache or disk. "
                             "A quarter of the machine's memory is the usual start."),
                    evidence={"shared_buffers": human_bytes(buffers), "database_bytes": facts.database_bytes},
                ))
        if "work_mem" in s and "max_connections" in s:
            connections = int(s["max_connections"].setting)
            total = _bytes(s["work_mem"]) * connections
            if total > options.max_work_mem_total:
                findings.append(self.finding(
                    scope, object="server", key="work_mem",
                    title=f"work_mem × max_connections is {human_bytes(total)}",
                    message=(f"work_mem ({human_bytes(_bytes(s['work_mem']))}) × max_connections ({connections:,}) is "
                             f"{human_bytes(total)}, and one query may use work_mem several times: a busy moment can "
                             "run the machine out of memory."),
                    evidence={"work_mem": human_bytes(_bytes(s["work_mem"])), "max_connections": connections},
                ))
            if connections > options.max_connections:
                findings.append(self.finding(
                    scope, object="server", key="max_connections",
                    title=f"max_connections is {connections:,}",
                    message=(f"max_connections is {connections:,}: each backend costs memory and contends for locks; "
                             "a connection pooler (PgBouncer) serves many clients with few backends."),
                    evidence={"max_connections": connections},
                ))
        if options.timeouts and facts.file_settings is None:
            findings.append(self.finding(
                scope, object=f"database {db}", key="timeouts unknown", severity=Severity.INFO,
                title="the server's timeouts could not be read",
                message=("pg_file_settings is readable only by superusers; this role's own "
                         "session sets its timeouts, so the server's are unknown and not judged."),
                evidence={"why": "permission denied for pg_file_settings"},
            ))
        return findings
