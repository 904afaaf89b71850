"""The MongoDB pack when every collection is a finding: cost against findings.

Starts a private SecantusDB (in memory, a free loopback port) and creates collections that all
carry a redundant index ({a: 1} beside {a: 1, b: 1}) and a few documents, then runs the MongoDB
pack as `dbvitals check` runs it (the engine's Runner, the target's default timeouts) at
--collections and at five times as many, and prints each time, this process's CPU time, the
commands sent, the redundant-index findings and the ratios. Goal: linear, the 5× run at most 6×
the time. SecantusDB is a Python server sharing the machine: its own cost per command grows
with the number of collections, which the wall time includes and this process's CPU time and
the command count do not.

    .venv/bin/python bench/mongodb_worst_case.py [--collections 60] [--uri URI]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from checks.registry import load_registry  # noqa: E402
from checks.runner import Runner  # noqa: E402
from tests import support  # noqa: E402

DATABASE = "worst"


def fill(uri: str, collections: int) -> None:
    from pymongo import ASCENDING, MongoClient

    client = MongoClient(uri)
    try:
        client.drop_database(DATABASE)
        db = client[DATABASE]
        for n in range(collections):
            coll = db[f"c{n:05d}"]
            coll.insert_many([{"a": i, "b": i % 7, "note": "x"} for i in range(20)])
            coll.create_index([("a", ASCENDING)], name="a_1")
            coll.create_index([("a", ASCENDING), ("b", ASCENDING)], name="a_1_b_1")
    finally:
        client.close()


def command_counter():  # pymongo only once a run is asked for
    from pymongo import monitoring

    class Counter(monitoring.CommandListener):
        """Commands the pack sends (pymongo command monitoring)."""

        sent = 0

        def started(self, event: object) -> None:
            self.sent += 1

        def succeeded(self, event: object) -> None:
            pass

        def failed(self, event: object) -> None:
            pass

    counter = Counter()
    monitoring.register(counter)
    return counter


def run(uri: str, counter: Any) -> tuple[float, float, int, int, list[str]]:
    url = support.with_path(uri, DATABASE, "directConnection=true")
    settings = support.settings_for(app={"kind": "mongodb", "url": url})
    registry = load_registry()
    checks = [c.id for c in registry.checks.values() if c.engine == "mongodb"]
    counter.sent = 0
    cpu, started = time.process_time(), time.perf_counter()
    report = asyncio.run(Runner(settings, registry, checks=checks).run())
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    flagged = sum(1 for f in report.findings if f.check == "mongodb.redundant-index")
    return elapsed, cpu, counter.sent, flagged, [f"{e.check}: {e.message}" for e in report.errors]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collections", type=int, default=60)
    parser.add_argument("--uri", help="a server of your own (e.g. a real mongod) instead of SecantusDB")
    args = parser.parse_args()
    counter = command_counter()
    server = None if args.uri else support.SecantusServer()
    uri = args.uri or server.uri  # type: ignore[union-attr]
    try:
        print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        figures = {}
        for collections in (args.collections, args.collections * 5):
            fill(uri, collections)
            elapsed, cpu, sent, flagged, errors = figures[collections] = run(uri, counter)
            print(f"{collections:,} collections, each with a redundant index: {elapsed:.2f}s (CPU here {cpu:.2f}s, "
                  f"{sent:,} commands), {flagged:,} redundant-index findings"
                  + (f"; errors: {'; '.join(errors)}" if errors else ""))
        small, large = figures[args.collections], figures[args.collections * 5]
        print(f"ratios for 5× the collections and findings: time {large[0] / small[0]:.2f}× (goal ≤ 6×), "
              f"CPU here {large[1] / small[1]:.2f}×, commands {large[2] / small[2]:.2f}×")
    finally:
        if server is not None:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
