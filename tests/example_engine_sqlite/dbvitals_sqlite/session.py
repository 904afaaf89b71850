"""Sessions on a SQLite file: sqlite3 from the standard library, run off the event loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from checks.config import TargetBase
from checks.connectors import Connection, failed
from checks.model import TargetState, TargetStatus


def quote(name: str) -> str:
    """A name from the database as an SQL identifier: double quotes, embedded quotes doubled."""
    return '"' + str(name).replace('"', '""') + '"'


def open_file(path: Path, *, writable: bool, timeout: float) -> sqlite3.Connection:
    """A connection in autocommit mode (a PRAGMA journal_mode must not run inside a transaction).
    Read-only unless `writable`; never creates the file: a wrong path is an error, not a new database."""
    mode = "rw" if writable else "ro"
    uri = f"{Path(path).expanduser().resolve().as_uri()}?mode={mode}"
    return sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None, check_same_thread=False)


class SqliteSession:
    """The checks' read-only session. Checks run concurrently; sqlite3 takes one statement at a
    time per connection, so calls queue on a lock in worker threads."""

    def __init__(self, path: Path, timeout: float = 5.0) -> None:
        self.path = Path(path)
        self._conn = open_file(self.path, writable=False, timeout=timeout)
        self._lock = threading.Lock()

    def _fetch(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    async def fetchall(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return await asyncio.to_thread(self._fetch, sql, params)

    async def close(self) -> None:
        await asyncio.to_thread(self._conn.close)


async def connect(name: str, target: TargetBase) -> Connection:
    path = Path(target.path)  # type: ignore[attr-defined]
    session = None
    try:
        session = await asyncio.to_thread(SqliteSession, path, target.timeout)
        started = time.perf_counter()
        # Reading the schema proves the file is a database (sqlite3 opens any file lazily).
        await session.fetchall("SELECT count(*) FROM sqlite_master")
        latency_ms = (time.perf_counter() - started) * 1000
        version = (await session.fetchall("SELECT sqlite_version()"))[0][0]
    except (sqlite3.Error, OSError) as exc:
        if session is not None:
            await session.close()
        return failed(name, target, exc, state_detail=(TargetState.ERROR, f"{path}: {exc}"))
    status = TargetStatus(name=name, kind="sqlite", state=TargetState.CONNECTED, latency_ms=latency_ms,
                          server_version=str(version), environment=target.environment, url=target.masked_url,
                          role="file")
    return Connection(status=status, session=session)
