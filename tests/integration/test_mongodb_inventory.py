"""The MongoDB inventory against a real server (SecantusDB unless DBVITALS_TEST_MONGO_URI): a
check that wants a collection's sizes and one that wants its count cost one collStats, not a
collStats and a count."""

from __future__ import annotations

import asyncio
from collections import Counter

from pymongo import AsyncMongoClient, monitoring

from checks.mongodb.connector import MongoSession
from checks.mongodb import _inventory
from checks.mongodb._inventory import collection_info, counted, measured, sample

BUDGET = 5.0


class Sent(monitoring.CommandListener):
    def __init__(self) -> None:
        self.commands: Counter[str] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.commands[event.command_name] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:  # type: ignore[override]
        pass


def figures(mongo_db, ask) -> tuple[list, Counter[str]]:
    sent = Sent()

    async def run():
        client = AsyncMongoClient(mongo_db.url, event_listeners=[sent], maxPoolSize=8)
        try:
            session = MongoSession(client, mongo_db.name, {})
            infos = [await collection_info(session, mongo_db.name, n) for n in ("a", "b")]
            sent.commands.clear()
            return await ask(session, infos)
        finally:
            await client.close()

    return asyncio.run(run()), sent.commands


def seed(mongo_db) -> None:
    mongo_db.db.a.insert_many({"n": i} for i in range(30))
    mongo_db.db.b.insert_many({"n": i} for i in range(7))


def test_a_count_asked_with_the_sizes_comes_from_the_collstats_reply(mongo_db):
    seed(mongo_db)

    async def ask(session, infos):  # both checks ask at once, the count first
        return await asyncio.gather(*(counted(session, i, BUDGET) for i in infos),
                                    *(measured(session, i, BUDGET) for i in infos))

    (count_a, count_b, stats_a, stats_b), sent = figures(mongo_db, ask)
    assert [count_a.count, count_b.count] == [30, 7]
    assert [stats_a.count, stats_b.count] == [30, 7] and stats_a.size > 0 and stats_a.unknown == ""
    assert sent["collStats"] == 2 and sent["count"] == 0


def test_a_count_alone_is_a_count_and_sizes_asked_later_still_read(mongo_db):
    seed(mongo_db)

    async def ask(session, infos):
        counts = await asyncio.gather(*(counted(session, i, BUDGET) for i in infos))
        return [*counts, *await asyncio.gather(*(measured(session, i, BUDGET) for i in infos))]

    (count_a, count_b, stats_a, stats_b), sent = figures(mongo_db, ask)
    assert [count_a.count, count_b.count, stats_a.count, stats_b.count] == [30, 7, 30, 7]
    assert count_a.unknown == "sizes not read" and stats_b.size > 0
    assert sent["count"] == 2 and sent["collStats"] == 2


def test_samples_are_the_same_documents_each_run_and_small_collections_are_read_whole(mongo_db, monkeypatch):
    """A collection of at most `size` documents, or at most WHOLE_LIMIT documents and
    WHOLE_BYTES, is read whole; a larger one sampled by seeded runs in _id order: the same
    documents from two sessions, spread over the whole collection."""
    mongo_db.db.a.insert_many({"n": i, "pad": "x" * 100} for i in range(3000))  # past WHOLE_LIMIT
    mongo_db.db.b.insert_many({"n": i, "pad": "x" * 100} for i in range(600))  # small, but past WHOLE_BYTES below
    mongo_db.db.c.insert_many({"n": i} for i in range(150))  # under the sample size
    monkeypatch.setattr(_inventory, "WHOLE_BYTES", 30_000)

    async def run():
        client = AsyncMongoClient(mongo_db.url, maxPoolSize=1)
        try:
            session = MongoSession(client, mongo_db.name, {})
            return [await sample(session, await collection_info(session, mongo_db.name, n), 200, BUDGET) for n in "abc"]
        finally:
            await client.close()

    (a, b, c), again = asyncio.run(run()), asyncio.run(run())
    assert [d["n"] for d in a.drawn] == [d["n"] for d in again[0].drawn]
    assert a.documents == 200 and a.method == _inventory.SEEDED.format(runs=4)
    runs = _inventory.seeded_runs(f"{mongo_db.name}.a", 3000, 200)
    assert [d["n"] for d in a.drawn] == [n for offset, length in runs for n in range(offset, offset + length)]
    assert min(d["n"] for d in a.drawn) < 750 and max(d["n"] for d in a.drawn) >= 2250  # old and new documents
    assert b.documents == 200 and not b.whole  # 600 documents, but more bytes than WHOLE_BYTES
    assert c.documents == 150 and c.whole and [d["n"] for d in c.drawn] == list(range(150))


def test_the_databases_are_listed_once_per_session(mongo_db):
    mongo_db.db.a.insert_one({"n": 1})
    sent = Sent()

    async def run():
        client = AsyncMongoClient(mongo_db.url, event_listeners=[sent], maxPoolSize=1)
        try:
            session = MongoSession(client, None, {})  # a URL naming no database: every one is judged
            return [await session.databases() for _ in range(3)]
        finally:
            await client.close()

    first, *others = asyncio.run(run())
    assert mongo_db.name in first and all(o == first for o in others)
    assert sent.commands["listDatabases"] == 1


def test_a_large_collection_s_runs_start_at_seeded_ids_not_at_a_skip(mongo_db, monkeypatch):
    """Past SKIP_LIMIT a skip would walk (or fetch) every skipped document: the runs start at
    _ids drawn between the first and last, ObjectIds made within one second included."""
    mongo_db.db.a.insert_many({"n": i} for i in range(3000))
    monkeypatch.setattr(_inventory, "SKIP_LIMIT", 1000)

    async def run():
        client = AsyncMongoClient(mongo_db.url, maxPoolSize=1)
        try:
            session = MongoSession(client, mongo_db.name, {})
            return await sample(session, await collection_info(session, mongo_db.name, "a"), 200, BUDGET)
        finally:
            await client.close()

    drawn, again = asyncio.run(run()), asyncio.run(run())
    assert drawn.method == _inventory.SEEDED_BY_ID.format(runs=4)
    assert [d["n"] for d in drawn.drawn] == [d["n"] for d in again.drawn]
    numbers = [d["n"] for d in drawn.drawn]
    assert len(set(numbers)) == len(numbers) >= 150  # runs rarely overlap, and never count twice
    assert min(numbers) < 750 and max(numbers) >= 2250  # spread over the whole collection
