"""How long the MongoDB pack takes on a large schema, beside the raw calls it cannot avoid.

Starts a private SecantusDB (on-disk storage in a temporary directory, a free loopback port),
builds 300 collections with 5 indexes each and 1,000,000 documents in the largest (building
takes minutes; --data DIR keeps the data for the next run), then times:
  - the pack: the seven checks of issue 4, run as `dbvitals check` runs them;
  - the raw calls: listIndexes + collStats + one bounded $sample per collection, with the
    same concurrency (8), which is the floor of what the pack costs.

    .venv/bin/python bench/mongodb_pack.py [--collections 300] [--largest 1000000] [--data DIR] [--uri URI]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pymongo  # noqa: E402
from bson import ObjectId  # noqa: E402
from pymongo import AsyncMongoClient  # noqa: E402

from checks.engine import Runner, load_registry  # noqa: E402
from tests import support  # noqa: E402

PACK = [
    "mongodb.missing-index", "mongodb.ttl-coverage", "mongodb.ttl-misconfigured", "mongodb.redundant-index",
    "mongodb.unused-index", "mongodb.reference-type-mismatch", "mongodb.transactions-unsupported",
]
DATABASE = "bench"
BATCH = 20_000
SAMPLE = 200
CONCURRENCY = 8


def documents(count: int, users: list[ObjectId], now: dt.datetime):
    rng = random.Random(count)
    for i in range(count):
        yield {
            "userId": users[i % len(users)],
            "status": ("done", "pending", "failed")[i % 3],
            "amount": rng.randint(1, 10_000),
            "createdAt": now - dt.timedelta(minutes=i),
            "note": "x" * 40,
        }


def build(uri: str, collections: int, largest: int, others: int) -> None:
    client = pymongo.MongoClient(uri)
    db = client[DATABASE]
    if db.list_collection_names():
        print(f"reusing {len(db.list_collection_names())} collections")
        return
    now = dt.datetime.now(dt.timezone.utc)
    users = [ObjectId() for _ in range(1000)]
    db.users.insert_many({"_id": u, "email": f"u{i}@example.test"} for i, u in enumerate(users))
    started = time.perf_counter()
    for n in range(collections - 1):
        name = "events_big" if n == 0 else f"c{n:03d}"
        size = largest if n == 0 else others
        batch = []
        for doc in documents(size, users, now):
            batch.append(doc)
            if len(batch) == BATCH:
                db[name].insert_many(batch, ordered=False)
                batch = []
                if n == 0:
                    print(f"  {name}: {db[name].estimated_document_count():,} documents "
                          f"({time.perf_counter() - started:.0f}s)", flush=True)
        if batch:
            db[name].insert_many(batch, ordered=False)
        db[name].create_indexes([
            pymongo.IndexModel([("userId", 1)]),
            pymongo.IndexModel([("userId", 1), ("status", 1)]),
            pymongo.IndexModel([("status", 1), ("createdAt", -1)]),
            pymongo.IndexModel([("amount", 1)]),
        ])
    print(f"built {collections} collections in {time.perf_counter() - started:.0f}s")


async def raw_calls(uri: str) -> float:
    client = AsyncMongoClient(uri, maxPoolSize=CONCURRENCY, timeoutMS=600_000)
    db = client[DATABASE]
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(name: str) -> None:
        async with limit:
            cursor = await db[name].list_indexes()
            await cursor.to_list(None)
        async with limit:
            await db.command("collStats", name)
        async with limit:
            cursor = await db[name].aggregate([{"$sample": {"size": SAMPLE}}])
            await cursor.to_list(SAMPLE)

    started = time.perf_counter()
    names = await db.list_collection_names()
    await asyncio.gather(*(one(n) for n in names))
    elapsed = time.perf_counter() - started
    await client.close()
    return elapsed


def run_pack(uri: str) -> tuple[float, int, list]:
    url = support.with_path(uri, DATABASE, "directConnection=true")
    settings = support.settings_for(app={
        "kind": "mongodb", "url": url, "timeout": 120, "check_timeout": 600,
        "expect": {
            "queries": [{"collection": "events_big", "filter": {"userId": "x", "amount": {"$gt": 5}}, "sort": {"createdAt": -1}}],
            "ttl": [{"collection": "events_big", "field": "createdAt", "after": "30d"}],
            "indexes": [{"collection": "events_big", "keys": {"userId": 1, "status": 1}}],
        },
    })
    started = time.perf_counter()
    report = asyncio.run(Runner(settings, load_registry(), checks=PACK).run())
    return time.perf_counter() - started, len(report.findings), report.checks + [e.to_dict() for e in report.errors]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--collections", type=int, default=300)
    parser.add_argument("--largest", type=int, default=1_000_000)
    parser.add_argument("--others", type=int, default=500, help="documents in every other collection")
    parser.add_argument("--data", help="storage directory to keep (default: a temporary one, removed)")
    parser.add_argument("--uri", help="use this server (e.g. a real mongod) instead of starting SecantusDB; "
                        f"builds into its {DATABASE!r} database unless that exists")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dbvitals-bench-") as tmp:
        storage = args.data or tmp
        os.makedirs(storage, exist_ok=True)
        server = None if args.uri else support.SecantusServer(storage=storage)
        uri = args.uri or server.uri
        try:
            build(uri, args.collections, args.largest, args.others)
            raw = asyncio.run(raw_calls(uri))
            pack, findings, outcomes = run_pack(uri)
        finally:
            if server is not None:
                server.stop()
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores (shared)")
    for row in outcomes:
        print(f"  {row}")
    print(f"raw listIndexes+collStats+$sample({SAMPLE}) x {args.collections}: {raw:.2f}s")
    print(f"pack ({len(PACK)} checks, {findings} findings): {pack:.2f}s  (target < 10s)")


if __name__ == "__main__":
    main()
