"""The whole PostgreSQL pack on a large schema: 2,000 tables, 6,000 indexes, 2,000 foreign keys.

Builds the schema in a database of its own (dropped afterwards), runs every PostgreSQL check
for one target the way `dbvitals check` does, and prints the pack's time beside the time of the
raw catalog queries the pack runs.

    .venv/bin/python bench/postgres_pack.py [--url postgresql://postgres@127.0.0.1:5432/postgres] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from checks.config import config_from_dict  # noqa: E402
from checks.engine import Runner, load_registry  # noqa: E402
from checks.postgres import _catalog, long_transactions, missing_index, sequence_exhaustion, unused_index  # noqa: E402

TABLES = 2000


def schema_sql(tables: int) -> list[str]:
    """Each table: a bigint identity key, a reference to the previous table (a foreign key), and
    two more indexes — 3 indexes per table. Every tenth reference is integer → bigint and
    unindexed, every fiftieth table has a duplicate index, so the checks have something to find."""
    statements, foreign_keys = [], []
    for n in range(tables):
        ref_type = "integer" if n % 10 == 0 else "bigint"
        statements.append(
            f"CREATE TABLE t{n} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, parent_id {ref_type}, "
            f"code text, created_at timestamptz, amount numeric(12,2));")
        parent = n - 1 if n else tables - 1
        foreign_keys.append(f"ALTER TABLE t{n} ADD CONSTRAINT t{n}_parent_fk FOREIGN KEY (parent_id) REFERENCES t{parent} (id);")
        statements.append(f"CREATE INDEX t{n}_code_idx ON t{n} (code);")
        if n % 10:
            statements.append(f"CREATE INDEX t{n}_parent_idx ON t{n} (parent_id, created_at);")
        elif n % 50 == 0:
            statements.append(f"CREATE INDEX t{n}_code_copy ON t{n} (code);")
        else:
            statements.append(f"CREATE INDEX t{n}_created_idx ON t{n} (created_at);")
    return statements + foreign_keys


RAW_QUERIES = {
    **{f"snapshot: {name}": query for name, query in _catalog.SNAPSHOT_QUERIES.items()},
    "unused-index": unused_index.QUERY,
    "unused-index: history": unused_index.HISTORY_QUERY,
    "missing-index": missing_index.QUERY,
    "missing-index: extensions": missing_index.EXTENSIONS_QUERY,
    "sequence-exhaustion": sequence_exhaustion.QUERY,
}


async def build(admin_url: str, url: str, database: str, tables: int) -> None:
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{database}"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(url)
    try:
        statements = schema_sql(tables)
        # Tables and indexes first, then the foreign keys (the first table refers to the last), in batches.
        for at in range(0, len(statements), 400):
            await conn.execute("BEGIN;" + "\n".join(statements[at:at + 400]) + "COMMIT;")
        counts = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace) AS tables, "
            "(SELECT count(*) FROM pg_class WHERE relkind = 'i' AND relnamespace = 'public'::regnamespace) AS indexes, "
            "(SELECT count(*) FROM pg_constraint WHERE contype = 'f') AS foreign_keys")
        print(f"schema: {counts['tables']:,} tables, {counts['indexes']:,} indexes, {counts['foreign_keys']:,} foreign keys")
    finally:
        await conn.close()


async def raw_queries(url: str) -> dict[str, float]:
    conn = await asyncpg.connect(url, statement_cache_size=0)
    timings = {}
    try:
        for name, query in RAW_QUERIES.items():
            started = time.perf_counter()
            if "$2" in query:
                continue
            # The snapshot's $1 is the list of locked tables it leaves out: none here.
            arg = [] if name.startswith("snapshot:") else 500
            await conn.fetch(query, *([arg] if "$1" in query else []))
            timings[name] = time.perf_counter() - started
        started = time.perf_counter()
        await conn.fetch(long_transactions.QUERY, 60.0, 300)
        timings["long-transactions"] = time.perf_counter() - started
    finally:
        await conn.close()
    return timings


async def pack(url: str) -> tuple[float, int, list]:
    settings = config_from_dict({"targets": {"bench": {"kind": "postgres", "url": url}}})
    registry = load_registry()
    checks = [c.id for c in registry.checks.values() if c.engine.value == "postgres"]
    started = time.perf_counter()
    report = await Runner(settings, registry, checks=checks).run()
    return time.perf_counter() - started, len(report.findings), report


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("DBVITALS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--tables", type=int, default=TABLES)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    database = f"dbv_bench_{uuid.uuid4().hex[:8]}"
    url = args.url.rsplit("/", 1)[0] + f"/{database}"
    started = time.perf_counter()
    try:
        await build(args.url, url, database, args.tables)
        print(f"built in {time.perf_counter() - started:.1f}s; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        pack_times, raw_times = [], []
        for run in range(args.runs):
            elapsed, findings, report = await pack(url)
            pack_times.append(elapsed)
            raw = await raw_queries(url)
            raw_times.append(sum(raw.values()))
            errors = [f"{e.check}: {e.message}" for e in report.errors]
            print(f"run {run + 1}: pack {elapsed:.2f}s ({findings:,} findings{', errors: ' + '; '.join(errors) if errors else ''}); "
                  f"raw catalog queries {raw_times[-1]:.2f}s")
        by_check = sorted(report.checks, key=lambda c: -c["duration_ms"])
        print("last run, per check (concurrent, so these overlap):")
        for row in by_check:
            print(f"  {row['check']:32} {row['duration_ms']:8.0f} ms  {row['outcome']:9} {row['findings']:5} findings")
        print("last run, raw queries:")
        for name, seconds in raw.items():
            print(f"  {name:32} {seconds * 1000:8.0f} ms")
        print(f"pack (median of {args.runs}): {statistics.median(pack_times):.2f}s   "
              f"raw catalog queries (median): {statistics.median(raw_times):.2f}s   target: < 5s")
    finally:
        admin = await asyncpg.connect(args.url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        finally:
            await admin.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
