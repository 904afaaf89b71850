"""`dbvitals fix ID --dry-run` against the time of the one check that reports the finding.

Builds a fleet of 10 PostgreSQL targets (databases of their own on one server, dropped
afterwards): `forum`, whose foreign keys have no index, and nine others with a schema as big.
Runs `dbvitals check` once over the fleet (which records where each finding lives), then times,
in the same process and the same run, with the median of several runs:

- baseline: `dbvitals check --target forum --check postgres.fk-missing-index` (and the same run
  writing JSON to a file, to show the share of printing its findings as a table)
- `dbvitals fix ID --dry-run` with the id `dbvitals check` printed (goal: at most 1.5x the baseline)
- `dbvitals fix forum/postgres.fk-missing-index/ID --dry-run` (the id that says where it lives)
- an id unknown to this config's last report: refused at once (exit 2, no connection), not
  looked for on every target

    .venv/bin/python bench/fix_latency.py [--url postgresql://postgres@127.0.0.1:5432/postgres] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from console.cli import main  # noqa: E402

TARGETS = 10
TABLES = 200
CHECK = "postgres.fk-missing-index"
GOAL = 1.5


def schema_sql(tables: int) -> list[str]:
    """A chain of tables, each referring to the one before by an unindexed foreign key, in
    transactions of 50 tables (one for all would run out of lock slots)."""
    statements = ["CREATE TABLE t0 (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, code text);"]
    for n in range(1, tables):
        statements.append(
            f"CREATE TABLE t{n} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
            f"parent_id bigint REFERENCES t{n - 1} (id), code text);")
        statements.append(f"CREATE INDEX t{n}_code_idx ON t{n} (code);")
    return ["BEGIN;" + "\n".join(statements[at:at + 100]) + "COMMIT;" for at in range(0, len(statements), 100)]


def with_database(url: str, database: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{database}"


async def build(admin_url: str, databases: list[str]) -> None:
    admin = await asyncpg.connect(admin_url)
    try:
        for database in databases:
            await admin.execute(f'CREATE DATABASE "{database}"')
    finally:
        await admin.close()
    batches = schema_sql(TABLES)
    for database in databases:
        conn = await asyncpg.connect(with_database(admin_url, database))
        try:
            for batch in batches:
                await conn.execute(batch)
            await conn.execute("ANALYZE")
        finally:
            await conn.close()


async def drop(admin_url: str, databases: list[str]) -> None:
    admin = await asyncpg.connect(admin_url)
    try:
        for database in databases:
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await admin.close()


def write_config(directory: Path, admin_url: str, names: list[str], databases: list[str]) -> Path:
    lines = [f'journal = "{directory / "journal.jsonl"}"', ""]
    for name, database in zip(names, databases):
        lines += [f"[targets.{name}]", 'kind = "postgres"', f'url = "{with_database(admin_url, database)}"',
                  "allow_fixes = true", ""]
    path = directory / "dbvitals.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def timed(argv: list[str], expect: int = 0) -> float:
    """Seconds for one `dbvitals ARGV` in this process, output swallowed."""
    out, err = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    elapsed = time.perf_counter() - started
    if code != expect:
        raise SystemExit(f"dbvitals {' '.join(argv)} exited {code}, expected {expect}:\n{out.getvalue()}{err.getvalue()}")
    return elapsed


def median(argv: list[str], runs: int, expect: int = 0) -> float:
    return statistics.median(timed(argv, expect) for _ in range(runs))


def main_bench() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("DBVITALS_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    tag = uuid.uuid4().hex[:8]
    names = ["forum"] + [f"shop{n}" for n in range(1, TARGETS)]
    databases = [f"dbv_bench_fix_{tag}_{name}" for name in names]
    with tempfile.TemporaryDirectory(prefix="dbvitals-fix-bench-") as scratch:
        directory = Path(scratch)
        os.environ["XDG_STATE_HOME"] = str(directory / "state")  # the index and journal stay in scratch
        started = time.perf_counter()
        try:
            asyncio.run(build(args.url, databases))
            print(f"fleet: {TARGETS} PostgreSQL targets, {TABLES} tables and {TABLES - 1} unindexed foreign keys "
                  f"each (built in {time.perf_counter() - started:.1f}s)")
            config = str(write_config(directory, args.url, names, databases))
            report_path = directory / "report.json"
            fleet = timed(["check", "--config", config, "--format", "json", "--fail-on", "never",
                           "--output", str(report_path)])
            report = json.loads(report_path.read_text(encoding="utf-8"))
            finding = next(f for f in report["findings"] if f["target"] == "forum" and f["check"] == CHECK)
            finding_id = finding["id"]
            print(f"`dbvitals check` over the fleet: {fleet:.2f}s, {len(report['findings']):,} findings "
                  f"(finding {finding_id}: {finding['object']})")

            baseline = median(["check", "--config", config, "--target", "forum", "--check", CHECK,
                               "--fail-on", "never"], args.runs)
            quiet = median(["check", "--config", config, "--target", "forum", "--check", CHECK, "--fail-on", "never",
                            "--format", "json", "--output", str(directory / "one.json")], args.runs)
            by_id = median(["fix", finding_id, "--dry-run", "--config", config], args.runs)
            by_reference = median(["fix", f"forum/{CHECK}/{finding_id}", "--dry-run", "--config", config], args.runs)
            for index in (directory / "findings").glob("*.json"):  # beside the journal
                index.unlink()  # worst case: this config's last report is unknown
            unknown = median(["fix", finding_id, "--dry-run", "--config", config], args.runs, expect=2)
        finally:
            asyncio.run(drop(args.url, databases))

    ratio = by_id / baseline
    print(f"median of {args.runs} runs, in this process (no interpreter start-up in any figure):")
    print(f"  check --target forum --check {CHECK}:  {baseline:.3f}s  (baseline: text report of its "
          f"{TABLES - 1} findings to stdout)")
    print(f"  the same with --format json --output FILE:     {quiet:.3f}s  (the check's run without the table)")
    print(f"  fix ID --dry-run:                              {by_id:.3f}s  {ratio:.2f}x the baseline (goal <= {GOAL}x), "
          f"{by_id / quiet:.2f}x the json run")
    print(f"  fix forum/{CHECK}/ID --dry-run: {by_reference:.3f}s  {by_reference / baseline:.2f}x")
    print(f"  id not in the last report (refused, exit 2):   {unknown:.3f}s  {unknown / baseline:.2f}x "
          f"(the fleet's full check: {fleet / baseline:.2f}x)")
    verdict = "PASS" if ratio <= GOAL else "FAIL"
    print(f"{verdict}: fix ID --dry-run takes {ratio:.2f}x the time of the one check that reports the finding")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main_bench())
