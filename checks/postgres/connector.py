"""PostgreSQL sessions for checks: read-only, bounded by statement and lock timeouts."""

from __future__ import annotations

import asyncio
import time
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from checks.config import TargetBase
from checks.budget import FreeSlots, server_key
from checks.connectors import Connection, connected, diagnosed
from checks.postgres.marker import marked
from checks.own_sessions import OWN_SESSIONS

APPLICATION_NAME = "dbvitals"
# libpq parameters asyncpg does not take (it would send them to the server as settings and
# fail). They describe the application's client configuration, which postgres.pool judges.
LIBPQ_CLIENT_PARAMS = {
    "connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count",
    "tcp_user_timeout", "application_name", "fallback_application_name", "options", "channel_binding",
    "gssencmode", "client_encoding", "require_auth", "krbsrvname", "gsslib", "load_balance_hosts",
    "sslcompression", "sslcrl", "sslcrldir", "sslsni", "requirepeer", "service", "passfile",
    "ssl_min_protocol_version", "ssl_max_protocol_version",
}


def client_params(url: str) -> dict[str, str]:
    """The query parameters of the target URL, as the application's driver would see them."""
    return {k.lower(): v for k, v in parse_qsl(urlsplit(url).query, keep_blank_values=True)}


def asyncpg_dsn(url: str) -> str:
    parts = urlsplit(url)
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() not in LIBPQ_CLIENT_PARAMS]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(kept), parts.fragment))


def session_settings(timeout: float, *, read_only: bool = True) -> dict[str, str]:
    """Server settings that keep a dbvitals session harmless on a busy production server."""
    statement_ms = int(timeout * 1000)
    settings = {
        "application_name": APPLICATION_NAME,
        "statement_timeout": str(statement_ms),
        # Never queue behind a migration's ACCESS EXCLUSIVE lock (pghero #444).
        "lock_timeout": str(min(statement_ms, 2000)),
        "idle_in_transaction_session_timeout": str(max(statement_ms * 2, 10000)),
    }
    if read_only:
        settings["default_transaction_read_only"] = "on"
    return settings


class MarkedConnection(asyncpg.Connection):
    """Every statement leaves with the dbvitals marker in front (see checks.postgres.marker)."""

    async def execute(self, query: str, *args: Any, **kwargs: Any) -> Any:
        return await super().execute(marked(query), *args, **kwargs)

    async def executemany(self, command: str, args: Any, **kwargs: Any) -> Any:
        return await super().executemany(marked(command), args, **kwargs)

    async def fetch(self, query: str, *args: Any, **kwargs: Any) -> Any:
        return await super().fetch(marked(query), *args, **kwargs)

    async def fetchrow(self, query: str, *args: Any, **kwargs: Any) -> Any:
        return await super().fetchrow(marked(query), *args, **kwargs)

    async def fetchval(self, query: str, *args: Any, **kwargs: Any) -> Any:
        return await super().fetchval(marked(query), *args, **kwargs)

    async def fetchmany(self, query: str, args: Any, **kwargs: Any) -> Any:
        return await super().fetchmany(marked(query), args, **kwargs)

    async def prepare(self, query: str, **kwargs: Any) -> Any:
        return await super().prepare(marked(query), **kwargs)

    def cursor(self, query: str, *args: Any, **kwargs: Any) -> Any:
        return super().cursor(marked(query), *args, **kwargs)

    def get_reset_query(self) -> str:
        # The session is the target's only one and goes back to the pool after every statement:
        # asyncpg's reset (advisory locks, cursors, LISTEN, RESET ALL) would double the round
        # trips. An open transaction is still rolled back on release; checks change session
        # settings only with SET LOCAL, and a fix session is closed after its run.
        return ""


class PostgresSession:
    """The checks of one target share one server session (a pool of one): a server's connection
    slots are the application's, and the checks' statements are short."""

    def __init__(self, pool: asyncpg.Pool, database: str, server: str) -> None:
        self.pool = pool
        self.database = database
        self.server = server  # checks.budget.server_key: where this process's own sessions are listed

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        async with self.pool.acquire() as conn:
            return await conn.fetch(query, *args)

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        async with self.pool.acquire() as conn:
            return await conn.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        async with self.pool.acquire() as conn:
            return await conn.fetchval(query, *args)

    def acquire(self) -> Any:
        return self.pool.acquire()

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.pool.close(), timeout=5)
        except (TimeoutError, OSError):
            self.pool.terminate()


async def open_pool(target: TargetBase, *, read_only: bool = True, max_size: int = 1) -> asyncpg.Pool:
    password = target.password.get_secret_value() if target.password else None
    kwargs: dict[str, Any] = {}
    if password is not None:
        kwargs["password"] = password
    return await asyncio.wait_for(
        asyncpg.create_pool(
            asyncpg_dsn(target.connect_url),
            min_size=1,
            max_size=max_size,
            timeout=target.timeout,
            command_timeout=target.call_deadline,
            server_settings=session_settings(target.timeout, read_only=read_only),
            # No statement cache: catalog queries run once per check and pgbouncer may sit between.
            statement_cache_size=0,
            connection_class=MarkedConnection,
            init=partial(_own, server_key(target)),
            **kwargs,
        ),
        timeout=target.call_deadline,
    )


async def _own(server: str, conn: asyncpg.Connection) -> None:
    """List each session this process opens as its own until it closes (checks.own_sessions)."""
    pid = conn.get_server_pid()
    OWN_SESSIONS.add(server, pid)
    conn.add_termination_listener(lambda _conn: OWN_SESSIONS.discard(server, pid))


async def connect(name: str, target: TargetBase) -> Connection:
    try:
        pool = await open_pool(target)
    except Exception as exc:  # any driver failure is a connection state, never a crash
        return await diagnosed(name, target, exc)
    try:
        started = time.perf_counter()
        version = await pool.fetchval("SHOW server_version")
        latency_ms = (time.perf_counter() - started) * 1000
        database, in_recovery = await pool.fetchrow("SELECT current_database(), pg_is_in_recovery()")
    except Exception as exc:
        pool.terminate()
        return await diagnosed(name, target, exc)
    return connected(name, target, PostgresSession(pool, database, server_key(target)), latency_ms=latency_ms,
                     server_version=str(version).split(" ")[0],
                     role="replica" if in_recovery else "primary")


FREE_SLOTS_QUERY = """
SELECT current_setting('max_connections')::int
       - current_setting('superuser_reserved_connections')::int
       - coalesce(current_setting('reserved_connections', true), '0')::int AS usable,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int AS in_use
"""


async def free_slots(session: PostgresSession) -> FreeSlots:
    """Slots left for ordinary clients: max_connections less the reserved ones (16+ reserves
    reserved_connections too) against the client backends open now, ours included."""
    row = await session.fetchrow(FREE_SLOTS_QUERY)
    assert row is not None  # a SELECT without FROM: always one row
    return FreeSlots(
        usable=row["usable"],
        in_use=row["in_use"],
        source="max_connections − superuser_reserved_connections − reserved_connections; "
        "client backends in pg_stat_activity",
    )
