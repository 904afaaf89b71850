"""postgres.pool: connection slots against use, transactions left open, the URL's client
settings and the application's pool budget."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from checks.config import Duration, duration
from checks.contract import Scope
from checks.model import Finding, Fix, FixSafety, FixStep, Severity
from checks.pool import Capacity, PoolCheck, PoolOptions, UrlSetting, parse_number

SETTINGS_QUERY = """
SELECT current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS superuser_reserved,
       coalesce(current_setting('reserved_connections', true), '0')::int AS reserved
"""

# Client backends only: replication senders and background workers have their own slots.
SESSIONS_QUERY = """
SELECT pid, datname, usename, application_name, client_addr::text AS client_addr, state,
       extract(epoch FROM now() - state_change)::float8 AS state_age_s,
       extract(epoch FROM now() - xact_start)::float8 AS xact_age_s,
       left(query, 300) AS query
FROM pg_stat_activity
WHERE backend_type = 'client backend'
"""

# The database-level idle_in_transaction_session_timeout, so the fix's inverse restores it.
DATABASE_TIMEOUTS_QUERY = """
SELECT d.datname, s.setting
FROM pg_db_role_setting r
JOIN pg_database d ON d.oid = r.setdatabase
CROSS JOIN LATERAL unnest(r.setconfig) AS s(setting)
WHERE r.setrole = 0 AND s.setting LIKE 'idle\\_in\\_transaction\\_session\\_timeout=%'
"""

IDLE_IN_TRANSACTION = ("idle in transaction", "idle in transaction (aborted)")
_STRING_LITERAL = re.compile(r"'(?:[^']|'')*'")


@dataclass(frozen=True)
class PgSession:
    pid: int
    database: str | None
    user: str | None
    application_name: str
    client_addr: str | None
    state: str | None  # None: hidden from a role without pg_monitor
    state_age_s: float | None
    xact_age_s: float | None
    query: str = ""


@dataclass(frozen=True)
class PgPoolFacts:
    max_connections: int
    superuser_reserved: int
    reserved: int  # reserved_connections (PostgreSQL 16+), 0 before
    sessions: list[PgSession]
    url_params: dict[str, str] = field(default_factory=dict)
    database_timeouts: dict[str, str] = field(default_factory=dict)  # datname -> value set by ALTER DATABASE


class PostgresPoolOptions(PoolOptions):
    idle_in_transaction_warn: Duration = Field(
        default=duration("2m"), description="A session idle inside an open transaction for this long is a medium finding."
    )
    idle_in_transaction_critical: Duration = Field(
        default=duration("30m"), description="... and for this long a high one (it holds locks and stops vacuum)."
    )
    recommended_idle_in_transaction_timeout: Duration = Field(
        default=duration("5m"), description="The idle_in_transaction_session_timeout the fix proposes."
    )


def redact_literals(query: str) -> str:
    """A statement with its string literals hidden: the shape identifies the code, the values may be secret."""
    return _STRING_LITERAL.sub("'…'", query or "")


class PostgresPool(PoolCheck):
    id = "postgres.pool"
    engine = "postgres"
    title = "PostgreSQL connection slots, open transactions and the application's pool fit the server"
    rationale = (
        "max_connections minus the reserved slots is a hard limit: past it every new connection, the "
        "application's and the on-call engineer's, is refused. A session idle inside a transaction holds its "
        "locks and keeps vacuum from cleaning up until it ends. A URL without connect_timeout waits forever "
        "for a server that does not answer, and one without TCP keepalive settings notices a dead server only "
        "after the operating system's two hours. Pools of every instance added up must fit what the server allows."
    )
    Options = PostgresPoolOptions

    async def gather(self, session: Any, scope: Scope) -> PgPoolFacts:
        from checks.postgres.connector import client_params  # imports asyncpg: only when used

        settings = await session.fetchrow(SETTINGS_QUERY)
        rows = await session.fetch(SESSIONS_QUERY)
        timeouts = await session.fetch(DATABASE_TIMEOUTS_QUERY)
        return PgPoolFacts(
            max_connections=settings["max_connections"],
            superuser_reserved=settings["superuser_reserved"],
            reserved=settings["reserved"],
            sessions=[
                PgSession(
                    pid=r["pid"], database=r["datname"], user=r["usename"],
                    application_name=r["application_name"] or "", client_addr=r["client_addr"], state=r["state"],
                    state_age_s=r["state_age_s"], xact_age_s=r["xact_age_s"], query=redact_literals(r["query"]),
                )
                for r in rows
            ],
            url_params=client_params(scope.config.url),
            database_timeouts={r["datname"]: r["setting"].split("=", 1)[1] for r in timeouts},
        )

    def evaluate(self, facts: PgPoolFacts, scope: Scope) -> list[Finding]:
        capacity = self.capacity(facts)
        return [
            *self.capacity_findings(scope, capacity, object="max_connections", setting="max_connections"),
            *self.idle_in_transaction_findings(facts, scope),
            *self.url_findings(scope, url_settings(facts.url_params)),
            *self.budget_findings(
                scope,
                per_instance=scope.config.app_pool.max_size if scope.config.app_pool else None,
                per_instance_source="app_pool.max_size",
                usable=capacity.usable,
                server_evidence={k: capacity.evidence[k] for k in
                                 ("max_connections", "superuser_reserved_connections", "reserved_connections")},
                setting="max_connections",
            ),
        ]

    @staticmethod
    def capacity(facts: PgPoolFacts) -> Capacity:
        usable = facts.max_connections - facts.superuser_reserved - facts.reserved
        by_app: dict[str, Counter[str]] = {}
        for s in facts.sessions:
            by_app.setdefault(s.application_name or "(none)", Counter())[s.state or "hidden"] += 1
        applications = sorted(by_app.items(), key=lambda item: (-sum(item[1].values()), item[0]))
        return Capacity(
            usable=usable,
            in_use=len(facts.sessions),
            evidence={
                "max_connections": facts.max_connections,
                "superuser_reserved_connections": facts.superuser_reserved,
                "reserved_connections": facts.reserved,
                "by_state": dict(Counter(s.state or "hidden" for s in facts.sessions).most_common()),
                "by_application": [
                    {"application_name": name, "sessions": sum(states.values()), **dict(states)}
                    for name, states in applications[:10]
                ],
            },
        )

    def idle_in_transaction_findings(self, facts: PgPoolFacts, scope: Scope) -> list[Finding]:
        options: PostgresPoolOptions = scope.options
        warn_s = options.idle_in_transaction_warn.total_seconds()
        critical_s = options.idle_in_transaction_critical.total_seconds()
        stuck: dict[str, list[PgSession]] = {}
        for s in facts.sessions:
            if s.state in IDLE_IN_TRANSACTION and (s.state_age_s or 0) >= warn_s:
                stuck.setdefault(s.database or "", []).append(s)
        findings = []
        for database, sessions in sorted(stuck.items()):
            sessions.sort(key=lambda s: -(s.state_age_s or 0))
            oldest = sessions[0].state_age_s or 0
            severity = Severity.HIGH if oldest >= critical_s else Severity.MEDIUM
            findings.append(
                self.finding(
                    scope,
                    object=f"database:{database}",
                    title="Sessions idle inside an open transaction",
                    message=f"{len(sessions)} session{'s' if len(sessions) != 1 else ''} in database {database} "
                    f"{'have' if len(sessions) != 1 else 'has'} left a transaction open and done nothing for up to "
                    f"{_duration(oldest)}: their locks block writers and DDL, and vacuum cannot remove rows "
                    "deleted since the transaction began. The application is missing a commit or rollback "
                    "(often on an error path), or holds a transaction across slow work.",
                    evidence={
                        "database": database,
                        "count": len(sessions),
                        "oldest_idle_s": round(oldest, 1),
                        "threshold_s": critical_s if severity is Severity.HIGH else warn_s,
                        "sessions": [
                            {
                                "pid": s.pid, "user": s.user, "application_name": s.application_name,
                                "client_addr": s.client_addr, "state": s.state,
                                "idle_s": round(s.state_age_s or 0, 1),
                                "transaction_age_s": None if s.xact_age_s is None else round(s.xact_age_s, 1),
                                "last_query": s.query,
                            }
                            for s in sessions[:20]
                        ],
                    },
                    severity=severity,
                    fix=self.idle_in_transaction_fix(database, sessions, facts, options),
                    key="idle-in-transaction",
                )
            )
        return findings

    @staticmethod
    def idle_in_transaction_fix(
        database: str, sessions: list[PgSession], facts: PgPoolFacts, options: PostgresPoolOptions
    ) -> Fix:
        pids = ", ".join(str(s.pid) for s in sessions)
        quoted = '"' + database.replace('"', '""') + '"'
        timeout = f"{int(options.recommended_idle_in_transaction_timeout.total_seconds() * 1000)}ms"
        previous = facts.database_timeouts.get(database)
        restore = (
            f"ALTER DATABASE {quoted} SET idle_in_transaction_session_timeout = '{previous}';"
            if previous is not None
            else f"ALTER DATABASE {quoted} RESET idle_in_transaction_session_timeout;"
        )
        return Fix(
            summary="End the stuck transactions, and let the server end the next ones",
            steps=(
                FixStep(
                    "sql",
                    f"SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid IN ({pids}) "
                    "AND state LIKE 'idle in transaction%';",
                    description="Roll back these transactions and close their sessions (only if still idle in a "
                    "transaction); the application sees a dropped connection.",
                ),
                FixStep(
                    "sql",
                    f"ALTER DATABASE {quoted} SET idle_in_transaction_session_timeout = '{timeout}';",
                    description="From now on the server ends such sessions itself (new sessions only).",
                ),
            ),
            safety=FixSafety.MANUAL,
            lock="Terminating a session rolls back its transaction and disconnects its client; the timeout "
            "applies to sessions opened afterwards.",
            inverse=(FixStep("sql", restore, description="Restore the database's previous timeout."),),
            notes="Find the code path that leaves the transaction open (see last_query); terminating only treats "
            "the symptom.",
        )


def url_settings(params: dict[str, str]) -> list[UrlSetting]:
    """libpq parameters the URL leaves at defaults that hang a client on a dead or silent server."""
    settings = []
    connect_timeout = parse_number(params.get("connect_timeout"))
    if connect_timeout is None or connect_timeout <= 0:
        settings.append(UrlSetting(
            parameter="connect_timeout",
            current=params.get("connect_timeout"),
            driver_default="libpq waits for a connection indefinitely",
            recommended="10",
            reason="A server that accepts TCP but does not answer (overloaded, failing over, a firewall dropping "
            "packets) stalls every new connection, and with it the pool and the requests waiting on it.",
            severity=Severity.MEDIUM,
        ))
    keepalives = params.get("keepalives")
    if keepalives is not None and parse_number(keepalives) == 0:
        settings.append(UrlSetting(
            parameter="keepalives",
            current=keepalives,
            driver_default="TCP keepalive is switched off",
            recommended="1",
            reason="A connection whose server died or whose NAT entry expired is never noticed: queries on it "
            "wait until the operating system gives up.",
            severity=Severity.MEDIUM,
        ))
    elif parse_number(params.get("keepalives_idle")) is None:
        settings.append(UrlSetting(
            parameter="keepalives_idle",
            current=params.get("keepalives_idle"),
            driver_default="the operating system's default applies: 7200 s on Linux",
            recommended="60",
            reason="A pooled connection to a server that vanished looks alive for two hours; with "
            "keepalives_interval=10 and keepalives_count=6 as well, it is found dead within two minutes.",
            severity=Severity.LOW,
        ))
    return settings


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"
