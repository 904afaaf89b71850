"""A fix's check connection, kept from the find to the verification: each run sees it afresh."""

from __future__ import annotations

import asyncio

from checks.config import config_from_dict
from checks.runner import KeptConnections


def target(kind: str, url: str):
    return config_from_dict({"targets": {"t": {"kind": kind, "url": url}}}).targets["t"]


async def reuse_twice(kind: str, url: str, probe):
    kept = KeptConnections()
    config = target(kind, url)
    from checks.connectors import connect

    first = await connect("t", config)
    assert first.status.reachable, first.status.error
    kept.keep("t", first)
    try:
        again = await kept.reuse("t", config)
        assert again is not None and kept.holds(again) and not kept.holds(first)
        # A session of its own (what checks memoise per session starts afresh), the same server.
        assert again.session is not first.session and again.status is first.status
        return await probe(again.session)
    finally:
        await kept.close()


def test_postgres(pg_db):
    async def probe(session):
        return await session.fetchval("SELECT current_database()")

    assert asyncio.run(reuse_twice("postgres", pg_db.url, probe)) == pg_db.url.rsplit("/", 1)[-1]


def test_redis_reads_info_again(redis_db):
    async def probe(session):
        return session.info["redis_version"], await session.client.ping()

    version, pong = asyncio.run(reuse_twice("redis", redis_db.url, probe))
    assert version and pong


def test_mongodb_reads_hello_again(mongo_db):
    async def probe(session):
        return session.hello, await session.databases()

    hello, databases = asyncio.run(reuse_twice("mongodb", mongo_db.url, probe))
    assert "maxWireVersion" in hello and databases == [mongo_db.name]


def test_a_connection_that_went_away_is_replaced(pg_db):
    async def go():
        from checks.connectors import connect

        kept = KeptConnections()
        config = target("postgres", pg_db.url)
        first = await connect("t", config)
        kept.keep("t", first)
        await first.session.close()  # as if the server had dropped it
        assert await kept.reuse("t", config) is None  # the runner connects anew
        assert not kept.holds(first)
        await kept.close()

    asyncio.run(go())


def test_an_unreachable_target_is_not_kept():
    async def go():
        from checks.connectors import connect

        kept = KeptConnections()
        config = target("postgres", "postgresql://postgres@127.0.0.1:1/x")
        connection = await connect("t", config)
        kept.keep("t", connection)
        assert not kept.holds(connection)

    asyncio.run(go())
