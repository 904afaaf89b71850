"""The PostgreSQL adapter: asyncpg sessions, SQL fix steps, psql scripts."""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

from checks.connectors import Connection
from checks.connectors.probe import tls_parameters
from checks.engines import ModuleAdapter
from checks.fixes.execution import DEFAULT_LOCK_TIMEOUT_S, DEFAULT_STATEMENT_TIMEOUT_S
from checks.model import FixStep
from checks.postgres import activity as activity_reader
from checks.postgres import executor
from checks.postgres import figures as figures_reader
from checks.postgres.executor import concurrent_build
from checks.postgres.quoting import sql_text
from checks.postgres.target import URL_SCHEMES, PostgresTarget

if TYPE_CHECKING:
    from checks.connectors import Connection

SSL_REQUEST = struct.pack("!ii", 8, 80877103)  # answered S or N by any PostgreSQL server

# Connections in use against the server's limit, in one light query.
CONNECTIONS_QUERY = """
SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS used,
       current_setting('max_connections')::int AS allowed
"""


class PostgresAdapter(ModuleAdapter):
    kind = "postgres"
    target_model = PostgresTarget
    url_schemes = URL_SCHEMES
    activity = activity_reader
    figures = figures_reader
    language = "sql"
    comment = "--"
    lexer = "sql"
    fence = "sql"
    display_name = "PostgreSQL"
    default_port = 5432

    def _connector(self) -> Any:
        from checks.postgres import connector  # imports asyncpg: loaded on the first connect

        return connector

    def _fixes(self) -> Any:
        return executor

    async def list_databases(self, session: Any) -> list[str]:
        rows = await session.fetch(
            "/* dbvitals */ SELECT datname FROM pg_database WHERE NOT datistemplate AND datallowconn "
            "AND has_database_privilege(datname, 'CONNECT') ORDER BY datname"
        )
        return [r["datname"] for r in rows]

    async def refresh(self, connection: Connection) -> Connection:
        from checks.postgres.connector import PostgresSession  # imports asyncpg: only when used

        assert connection.session is not None  # only a connection that answered is kept for reuse
        session = PostgresSession(connection.session.pool, connection.session.database, connection.session.server)
        await session.fetchval("SELECT 1")
        return Connection(status=connection.status, session=session)

    def wants_tls(self, url: str) -> bool:
        return tls_parameters(url).get("sslmode") in {"require", "verify-ca", "verify-full"}

    def socket_name(self, number: int) -> str:
        return f".s.PGSQL.{number}"  # asyncpg finds <directory>/.s.PGSQL.<port>: the number is only a name

    def socket_url(self, url: str, path: Path) -> str | None:
        parts = urlsplit(url)
        params = {k.lower(): v.lower() for k, v in parse_qsl(parts.query, keep_blank_values=True)}
        # asyncpg: the URL's sslmode, else PGSSLMODE, else prefer (which tries TLS).
        if (params.get("sslmode") or os.environ.get("PGSSLMODE") or "prefer").lower() != "disable":
            return None
        userinfo = parts.netloc.rpartition("@")[0]
        at = f"{userinfo}@" if userinfo else ""
        # asyncpg: host = the socket's directory, port = the N of its .s.PGSQL.N
        netloc = f"{at}{quote(str(path.parent), safe='')}:{path.name.rpartition('.')[2]}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

    def greeting(self) -> tuple[bytes, int]:
        return SSL_REQUEST, 0

    def judge_greeting(self, reply: bytes, request_id: int) -> Literal["speaks", "other"]:
        # One byte, S or N, then the server waits; or an error message (E, length) from old servers.
        speaks = reply in (b"S", b"N") or (reply[:1] == b"E" and len(reply) >= 5)
        return "speaks" if speaks else "other"

    async def measure_connections(self, session: Any) -> tuple[int | None, int | None]:
        row = await session.fetchrow(CONNECTIONS_QUERY)
        return row["used"], row["allowed"]

    def expected_text(self, record: dict[str, Any]) -> str:
        return f"index {record.get('index')} (OID {record.get('oid')}): {record.get('definition')}"

    def step_text(self, step: FixStep) -> str:
        text = sql_text(str(step.command).strip())
        return text if text.endswith(";") else text + ";"

    def step_lock(self, step: FixStep) -> str | None:
        if not isinstance(step.command, str):
            return None
        sql = " ".join(step.command.split()).upper()
        table = _locked_table(step.command)
        for pattern, lock in _STATEMENT_LOCKS:
            if re.search(pattern, sql):
                return lock.format(table=table or "the table")
        return None

    def script_preamble(self, connect_url: str | None = None) -> list[str]:
        return [
            "-- Run with psql in autocommit mode (psql -v ON_ERROR_STOP=1 -f FILE): CREATE/DROP INDEX",
            "-- CONCURRENTLY cannot run inside a transaction block; other steps are grouped in BEGIN/COMMIT.",
            "-- A failed CONCURRENTLY build leaves an INVALID index: drop it with DROP INDEX CONCURRENTLY IF EXISTS.",
            "SET standard_conforming_strings = on;",  # names in U&"..." form rely on it
            f"SET lock_timeout = {int(DEFAULT_LOCK_TIMEOUT_S * 1000)};",
            f"SET statement_timeout = {int(DEFAULT_STATEMENT_TIMEOUT_S * 1000)};",
        ]

    def script_steps(self, steps: Sequence[FixStep]) -> list[str]:
        """Consecutive transactional steps in one BEGIN/COMMIT, as the executor groups them."""
        lines: list[str] = []
        in_transaction = False
        for step in steps:
            if step.transactional and not in_transaction:
                lines.append("BEGIN;")
                in_transaction = True
            elif not step.transactional and in_transaction:
                lines.append("COMMIT;")
                in_transaction = False
            # Only "\n" ends a line: control characters in names are escaped by step_text.
            lines += self.step_text(step).split("\n")
        if in_transaction:
            lines.append("COMMIT;")
        return lines

    # --- undo guards: checks/postgres/executor.py ---------------------------------------------------
    def interruptible_builds(self, steps: Sequence[FixStep]) -> list[str]:
        return [b.name for s in steps if (b := concurrent_build(str(s.command))) and b.name]


# Statement -> the lock it takes (PostgreSQL manual, "Explicit Locking" and each command's
# page), most specific first. {table} is the table named in the statement, when it names one.
_STATEMENT_LOCKS = (
    (r"^(CREATE (UNIQUE )?INDEX|REINDEX|DROP INDEX)( \w+)* CONCURRENTLY\b",
     "SHARE UPDATE EXCLUSIVE on {table}: reads and writes go on; waits for transactions already using it"),
    (r"^CREATE (UNIQUE )?INDEX\b", "SHARE on {table}: reads go on, writes wait for the whole build"),
    (r"^DROP INDEX\b", "ACCESS EXCLUSIVE on {table}, briefly: reads and writes wait"),
    (r"^REINDEX\b", "ACCESS EXCLUSIVE on the index and SHARE on {table}: writes and reads using it wait"),
    (r"^ALTER TABLE .* TYPE\b", "ACCESS EXCLUSIVE on {table} for a whole table rewrite: reads and writes wait"),
    (r"^ALTER TABLE .* VALIDATE CONSTRAINT\b", "SHARE UPDATE EXCLUSIVE on {table}: reads and writes go on"),
    (r"^ALTER TABLE .* ADD CONSTRAINT .* FOREIGN KEY .* NOT VALID\b",
     "SHARE ROW EXCLUSIVE on {table} and the referenced table, briefly: writes wait"),
    (r"^ALTER TABLE\b", "ACCESS EXCLUSIVE on {table}, briefly: reads and writes wait"),
    (r"^ALTER SEQUENCE\b", "a lock on the sequence only, briefly: nextval() waits"),
    (r"^(VACUUM|ANALYZE)\b", "SHARE UPDATE EXCLUSIVE on {table}: reads and writes go on"),
    (r"^(ALTER SYSTEM|SELECT PG_RELOAD_CONF|ALTER (ROLE|DATABASE) .* SET)\b", "no lock: a configuration change"),
    (r"PG_TERMINATE_BACKEND|PG_CANCEL_BACKEND", "no lock: ends or cancels a session"),
)


def _locked_table(sql: str) -> str | None:
    """The table a statement locks: named after ON or TABLE, or through the index it drops."""
    name = r"((?:\"[^\"]+\"|[\w$]+)(?:\.(?:\"[^\"]+\"|[\w$]+))?)"
    on_table = re.search(rf"\b(?:ON(?: ONLY)?|TABLE(?: ONLY)?)\s+{name}", sql, re.I)
    if on_table:
        return on_table[1]
    index = re.search(rf"\bINDEX(?:\s+CONCURRENTLY)?(?:\s+IF EXISTS)?\s+{name}", sql, re.I)
    return f"the table of {index[1]}" if index else None
