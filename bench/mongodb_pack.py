"""The MongoDB pack's cost as a ratio to the minimal server calls it needs, timed in the same run.

Starts a private SecantusDB (on-disk storage, a free loopback port), builds 300 collections with
5 indexes each and 1,000,000 documents in the largest (6 to 8 minutes; with --data-dir DIR the
dataset is built once and reused by every later run: SecantusDB reopens it intact), then times,
each `--runs` times, interleaved (median printed):
  - the pack: every MongoDB check, run as `dbvitals check` runs them, with the target's default
    timeouts (5 s per query, 30 s per check);
  - the raw calls: listCollections, then listIndexes + collStats + one $sample of 200 per
    collection, with no budget, on one connection as the pack's session has: the least any
    tool must ask to judge indexes, sizes and document shapes.
Prints the ratio pack / raw (goal ≤ 1.2), the round trips the pack sent per collection (command
monitoring; goal ≤ 3) with every command by name, and the absolute times for reference. On
SecantusDB, collStats and $sample scan the collection, so the absolute figures say little about
a real mongod (--uri measures one); the ratio and the round trips carry over.

    .venv/bin/python bench/mongodb_pack.py --data-dir /tmp/dbv-mongo-bench-data [--runs 3] [--uri URI]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pymongo  # noqa: E402
from bson import ObjectId  # noqa: E402
from pymongo import AsyncMongoClient, monitoring  # noqa: E402

from checks.registry import load_registry  # noqa: E402
from checks.runner import Runner  # noqa: E402
from tests import support  # noqa: E402

PACK = ["mongodb.*"]
RATIO_GOAL = 1.2
ROUND_TRIPS_GOAL = 3
# The calls that read a collection's indexes, figures and documents: the inventory every check shares.
INVENTORY = {"listIndexes", "count", "collStats", "aggregate", "getMore", "killCursors"}
# Commands sent once per target or database whatever the number of collections.
PER_TARGET = {"ping", "hello", "isMaster", "ismaster", "buildInfo", "endSessions", "listDatabases", "listCollections",
              "serverStatus", "getLog", "currentOp", "profile", "replSetGetStatus", "getCmdLineOpts", "getParameter"}
DATABASE = "bench"
BUILT = ("bench_meta", "built")  # written once the whole dataset is in: a half-built one is not reused
BATCH = 20_000
SAMPLE = 200


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
    if client[BUILT[0]][BUILT[1]].find_one({"complete": True}):
        print(f"reusing {len(db.list_collection_names())} collections")
        return
    if db.list_collection_names():
        sys.exit(f"{DATABASE!r} holds a half-built dataset (no {'.'.join(BUILT)} marker): remove the data directory")
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
    client[BUILT[0]][BUILT[1]].insert_one({"complete": True, "collections": collections, "largest": largest})
    print(f"built {collections} collections in {time.perf_counter() - started:.0f}s")


async def raw_calls(uri: str) -> float:
    """The minimal calls, one after another on one connection (the pack's session has one)."""
    client = AsyncMongoClient(uri, maxPoolSize=1, timeoutMS=600_000)
    db = client[DATABASE]
    await db.command("ping")  # connected before the clock starts, as the pack's session is
    started = time.perf_counter()
    for name in await db.list_collection_names():
        cursor = await db[name].list_indexes()
        await cursor.to_list(None)
        await db.command("collStats", name)
        cursor = await db[name].aggregate([{"$sample": {"size": SAMPLE}}])
        await cursor.to_list(SAMPLE)
    elapsed = time.perf_counter() - started
    await client.close()
    return elapsed


class Commands(monitoring.CommandListener):
    """Every command the pack sends: count and summed duration by name, and the failures."""

    def __init__(self) -> None:
        self.count: dict[str, int] = defaultdict(int)
        self.seconds: dict[str, float] = defaultdict(float)
        self.failures: dict[str, int] = defaultdict(int)
        self.recording = False

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pass

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._record(event)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:  # type: ignore[override]
        self._record(event)
        if self.recording:
            self.failures[event.command_name] += 1

    def _record(self, event: monitoring.CommandSucceededEvent | monitoring.CommandFailedEvent) -> None:
        if self.recording:
            self.count[event.command_name] += 1
            self.seconds[event.command_name] += event.duration_micros / 1e6

    def per_collection(self, runs: int, collections: int, names: set[str] | None = None) -> float:
        """Round trips a run sent per collection: every command but the per-target ones (or only `names`)."""
        return sum(n for name, n in self.count.items()
                   if name not in PER_TARGET and (names is None or name in names)) / runs / collections


def run_pack(uri: str, commands: Commands) -> tuple[float, list]:
    url = support.with_path(uri, DATABASE, "directConnection=true")
    settings = support.settings_for(app={
        # Every check must finish for its time to count: a check_timeout no run reaches (per-call
        # budgets stay the default ones: 1.5 s for each count, collStats and $sample).
        "kind": "mongodb", "url": url, "check_timeout": 900,
        "expect": {
            "queries": [{"collection": "events_big", "filter": {"userId": "x", "amount": {"$gt": 5}}, "sort": {"createdAt": -1}}],
            "ttl": [{"collection": "events_big", "field": "createdAt", "after": "30d"}],
            "indexes": [{"collection": "events_big", "keys": {"userId": 1, "status": 1}}],
        },
    })
    commands.recording = True
    started = time.perf_counter()
    report = asyncio.run(Runner(settings, load_registry(), checks=PACK).run())
    elapsed = time.perf_counter() - started
    commands.recording = False
    return elapsed, [report.checks, [e.to_dict() for e in report.errors], report.findings]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--collections", type=int, default=300)
    parser.add_argument("--largest", type=int, default=1_000_000)
    parser.add_argument("--others", type=int, default=500, help="documents in every other collection")
    parser.add_argument("--data-dir", "--data", dest="data_dir",
                        help="storage directory: built on the first run, reused by later ones (default: a temporary one)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each; the median is printed")
    parser.add_argument("--uri", help="use this server (e.g. a real mongod) instead of starting SecantusDB; "
                        f"builds into its {DATABASE!r} database unless that exists")
    args = parser.parse_args()
    commands = Commands()
    monitoring.register(commands)
    with tempfile.TemporaryDirectory(prefix="dbvitals-bench-") as tmp:
        storage = args.data_dir or tmp
        os.makedirs(storage, exist_ok=True)
        # Reopening a built dataset loads it whole before the port opens: minutes, not seconds.
        server = None if args.uri else support.SecantusServer(storage=storage, startup_timeout=1800)
        uri = args.uri or server.uri
        packs: list[float] = []
        raws: list[float] = []
        try:
            build(uri, args.collections, args.largest, args.others)
            for run in range(args.runs):  # interleaved, so drifting load weighs on both alike
                pack, (checks, errors, findings) = run_pack(uri, commands)
                raw = asyncio.run(raw_calls(uri))
                packs.append(pack)
                raws.append(raw)
                print(f"run {run + 1}: pack {pack:.2f}s, raw calls {raw:.2f}s, {len(findings)} findings, "
                      f"{len(errors)} errors; load {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        finally:
            if server is not None:
                server.stop()
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores (shared)")
    for row in [*checks, *errors]:
        print(f"  {row}")
    by_check: dict[tuple[str, str], int] = defaultdict(int)
    for finding in findings:
        by_check[(finding.check, finding.severity.value)] += 1
    print("findings (last run): " + ", ".join(f"{c} {s}: {n}" for (c, s), n in sorted(by_check.items())))
    for finding in findings:
        if finding.severity.value == "info" or "events_big" in finding.object:
            print(f"  [{finding.check}] {finding.object}: {finding.title}")
    print(f"commands the pack sent ({args.runs} runs together):")
    for name in sorted(commands.count, key=lambda n: -commands.seconds[n]):
        print(f"  {name:16s} {commands.count[name]:6d} calls  {commands.seconds[name]:8.2f}s summed"
              + (f"  {commands.failures[name]} failed or out of budget" if commands.failures[name] else ""))
    ratios = [p / r for p, r in zip(packs, raws)]
    trips = commands.per_collection(args.runs, args.collections)
    print(f"raw listIndexes+collStats+$sample({SAMPLE}) x {args.collections}, median of {args.runs}: "
          f"{statistics.median(raws):.2f}s  (runs: {', '.join(f'{r:.2f}' for r in raws)})")
    print(f"pack (every mongodb check), median of {args.runs}: {statistics.median(packs):.2f}s  "
          f"(runs: {', '.join(f'{p:.2f}' for p in packs)}; absolute, for reference)")
    print(f"ratio pack / raw calls, median of the runs' ratios: {statistics.median(ratios):.2f}  "
          f"(runs: {', '.join(f'{r:.2f}' for r in ratios)}; goal <= {RATIO_GOAL})")
    print(f"round trips per collection: {trips:.2f}  (goal <= {ROUND_TRIPS_GOAL}; per-target commands not counted: "
          f"{', '.join(sorted(n for n in commands.count if n in PER_TARGET))}); of which the shared inventory "
          f"({', '.join(sorted(INVENTORY))}): {commands.per_collection(args.runs, args.collections, INVENTORY):.2f}")


if __name__ == "__main__":
    main()
