"""The snapshot store's cost on the demo: bytes of SQLite per snapshot and seconds per save.

Starts the demo playground (disposable PostgreSQL, Redis and SecantusDB on loopback), saves
--count snapshots into a fresh store, prints the file size per snapshot (after a WAL
checkpoint, so the figure is what stays on disk) and the time of each save against the time of
`dbvitals check` on the same config (the checks are most of a snapshot's work), then stops the
playground and removes its data.

    .venv/bin/python bench/snapshot_size.py [--count 10]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def dbvitals(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "console", *args], capture_output=True, text=True, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dbvitals-bench-snap-"))
    started = dbvitals("demo", "--keep", "--dir", str(work / "demo"))
    if started.returncode != 0:
        print(started.stderr, file=sys.stderr)
        return 1
    config = str(work / "demo" / "dbvitals-demo.toml")
    store = work / "snapshots.db"
    try:
        checks = []
        saves = []
        for _ in range(args.count):
            t0 = time.perf_counter()
            dbvitals("check", "--config", config, "--format", "json", "--fail-on", "never")
            checks.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            saved = dbvitals("snapshot", "--config", config, "--store", str(store), "save")
            saves.append(time.perf_counter() - t0)
            if saved.returncode != 0:
                print(saved.stderr, file=sys.stderr)
                return 1
        with sqlite3.connect(store) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            findings = db.execute("SELECT count(*) FROM findings").fetchone()[0]
            figures = db.execute("SELECT count(*) FROM figures").fetchone()[0]
        size = os.path.getsize(store)
        print(f"snapshots            {args.count}")
        print(f"store size           {size / 1024:.0f} KiB  ({size / args.count / 1024:.1f} KiB per snapshot)")
        print(f"rows per snapshot    {findings / args.count:.0f} findings, {figures / args.count:.0f} figures")
        print(f"save (median)        {statistics.median(saves):.2f} s; "
              f"dbvitals check alone {statistics.median(checks):.2f} s; "
              f"ratio {statistics.median(saves) / statistics.median(checks):.2f}")
        print(f"load average         {os.getloadavg()[0]:.2f}")
    finally:
        dbvitals("demo", "--stop", str(work / "demo"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
