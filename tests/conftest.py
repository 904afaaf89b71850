"""Fixtures for real servers. A missing server fails the run loudly: no skips."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

from tests import support

# Property tests draw the same examples every run and keep no example database between runs: a
# suite that fails one run in five fails CI one stop in five.
hypothesis_settings.register_profile("dbvitals", derandomize=True, database=None)
hypothesis_settings.load_profile("dbvitals")


# --- PostgreSQL -----------------------------------------------------------------------------------

async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(support.PG_URL, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_server() -> str:
    try:
        asyncio.run(_pg_admin("SELECT 1"))
    except Exception as exc:
        pytest.fail(f"PostgreSQL at {support.PG_URL} is not reachable ({exc}); run scripts/setup.sh", pytrace=False)
    return support.PG_URL


class PgDatabase:
    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.url = url

    def execute(self, sql: str, *args: Any) -> None:
        asyncio.run(self._execute(sql, *args))

    async def _execute(self, sql: str, *args: Any) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.url, timeout=10)
        try:
            await conn.execute(sql, *args)
        finally:
            await conn.close()

    def fetch(self, sql: str, *args: Any) -> list[Any]:
        async def go() -> list[Any]:
            import asyncpg

            conn = await asyncpg.connect(self.url, timeout=10)
            try:
                return list(await conn.fetch(sql, *args))
            finally:
                await conn.close()

        return asyncio.run(go())


@pytest.fixture
def pg_db(pg_server: str) -> Iterator[PgDatabase]:
    """A fresh, empty PostgreSQL database of this test's own, dropped afterwards."""
    name = support.unique("dbv_test")
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield PgDatabase(name, support.with_path(pg_server, name))
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# --- Redis ----------------------------------------------------------------------------------------

CLAIM_PREFIX = "dbvitals-test:claim:db"


@pytest.fixture(scope="session")
def redis_server() -> str:
    import redis

    try:
        redis.Redis.from_url(support.REDIS_URL, socket_timeout=5).ping()
    except Exception as exc:
        pytest.fail(f"Redis at {support.REDIS_URL} is not reachable ({exc}); run scripts/setup.sh", pytrace=False)
    return support.REDIS_URL


class RedisDatabase:
    def __init__(self, index: int, url: str) -> None:
        import redis

        self.index = index
        self.url = url
        self.client = redis.Redis.from_url(url, socket_timeout=30)


@pytest.fixture
def redis_db(redis_server: str) -> Iterator[RedisDatabase]:
    """An empty logical database claimed for this test (db 1-15; claims live in db 0 with a TTL),
    and emptied of what the test wrote afterwards."""
    import redis

    admin = redis.Redis.from_url(support.with_path(redis_server, "0"), socket_timeout=5)
    databases = int(admin.config_get("databases").get("databases", 16))
    token = support.unique("claim")
    for index in range(databases - 1, 0, -1):
        claim = f"{CLAIM_PREFIX}{index}"
        if not admin.set(claim, token, nx=True, ex=900):
            continue
        db = RedisDatabase(index, support.with_path(redis_server, str(index)))
        if db.client.dbsize() == 0:
            break
        admin.delete(claim)
    else:
        pytest.fail("no empty Redis logical database is free for this test", pytrace=False)
    try:
        yield db
    finally:
        # The database was empty when claimed: what is in it now, this test wrote.
        for key in db.client.scan_iter(count=1000):
            db.client.delete(key)
        if admin.get(claim) == token.encode():
            admin.delete(claim)


# --- MongoDB --------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def mongo_server() -> Iterator[str]:
    """DBVITALS_TEST_MONGO_URI, or a SecantusDB started for this session."""
    if support.MONGO_URI:
        yield support.MONGO_URI
        return
    try:
        server = support.SecantusServer()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server.uri
    finally:
        server.stop()


class MongoDatabase:
    def __init__(self, server_uri: str, name: str) -> None:
        import pymongo

        self.name = name
        parts = support.urlsplit(server_uri)
        self.url = support.with_path(server_uri, name, parts.query)
        self.client = pymongo.MongoClient(server_uri, serverSelectionTimeoutMS=10000)
        self.db = self.client[name]


@pytest.fixture
def mongo_db(mongo_server: str) -> Iterator[MongoDatabase]:
    """A MongoDB database of this test's own, dropped afterwards. `url` names it."""
    db = MongoDatabase(mongo_server, support.unique("dbv_test"))
    try:
        yield db
    finally:
        db.client.drop_database(db.name)
        db.client.close()


@pytest.fixture
def loaded_machine_budget(monkeypatch: pytest.MonkeyPatch) -> float:
    """A per-call budget a loaded test machine meets, for tests asserting exact counts and
    samples (the default 1.5 s is for production servers); use with check_timeout >= 50."""
    from checks.mongodb import _inventory

    monkeypatch.setattr(_inventory, "CALL_BUDGET", 5.0)
    return 5.0


@pytest.fixture
def silent_server() -> Iterator[support.SilentServer]:
    server = support.SilentServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """No stray DBVITALS_* setting from the developer's shell (the suite's own DBVITALS_TEST_*
    stay), config, state and cache directories in tmp, and the secrets registered by configs
    loaded in other tests forgotten (a generated password such as "0001" would otherwise be
    masked in every later test's output)."""
    import checks.secrets

    for key in list(os.environ):
        if key.startswith("DBVITALS_") and not key.startswith("DBVITALS_TEST_") \
                or key in {"STATE_DIRECTORY", "CACHE_DIRECTORY"}:
            monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(checks.secrets, "_known", set())
