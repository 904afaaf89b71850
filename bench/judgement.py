"""Judgement figures on the project's seed-shaped fixtures (issue #25, "Done when").

Builds each fixture of tests/data/judgement.py on local servers (PostgreSQL in a database of its
own and, for server-wide pieces such as a replication slot, a private cluster; a private
redis-server; a SecantusDB started here for MongoDB), runs every check of the
engine's pack without and then with the fixture's declared rules, compares the findings with
the written list of expected problems, and prints per engine and in total: problems expected,
found, missed, wrong advice, false positives (each listed), and the findings left unjudged
(server-wide settings, objects the fixture says nothing about). Everything it builds it removes.

    .venv/bin/python bench/judgement.py [--pg-url postgresql://postgres@127.0.0.1:5432/postgres]
        [--engines postgres,redis,mongodb,demo] [--verbose]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg  # noqa: E402
import pymongo  # noqa: E402
import redis  # noqa: E402

from checks.config import config_from_dict  # noqa: E402
from checks.model import Report  # noqa: E402
from console.demo.seed import SEEDED_PROBLEMS, demo_config, seed_all  # noqa: E402
from console.demo.servers import start_playground  # noqa: E402
from checks.mongodb import _inventory  # noqa: E402
from tests import support  # noqa: E402
from tests.data import judgement  # noqa: E402

RUNS = ("without rules", "with rules")


def run_pack(target: dict[str, Any], engine: str) -> Report:
    """Every check of the engine's pack, for one target, as `dbvitals check` runs them."""
    report = support.run_report(support.settings_for(app=target))
    if report.errors:
        raise RuntimeError(f"{engine}: {report.errors}")
    return report


def judged_runs(target: dict[str, Any], rules: dict[str, Any], engine: str, expected, healthy,
                object_of: Callable = lambda finding: finding.object) -> dict[str, judgement.Figures]:
    figures = {}
    for run, expect in zip(RUNS, ({}, rules)):
        report = run_pack({**target, "expect": expect}, engine)
        partial = [c["check"] for c in report.checks if c.get("outcome") == "partial"]
        if partial:
            print(f"  {engine} {run}: partial checks {partial}")
        figures[run] = judgement.judge(report.findings, expected, healthy, object_of)
    return figures


def postgres(admin_url: str) -> dict[str, judgement.Figures]:
    name = support.unique("dbv_judgement")

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(admin_url, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def build(url: str) -> None:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            await conn.execute(judgement.POSTGRES_SCHEMA)
            try:
                await conn.execute(judgement.POSTGRES_INVALID_INDEX)
            except asyncpg.UniqueViolationError:
                pass
            await conn.execute("ANALYZE")
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        url = support.with_path(admin_url, name)
        asyncio.run(build(url))
        target = {"kind": "postgres", "url": url, "checks": judgement.POSTGRES_OPTIONS}
        return judged_runs(target, judgement.POSTGRES_RULES, "postgres", judgement.POSTGRES_EXPECTED,
                           judgement.POSTGRES_HEALTHY_OBJECTS)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def postgres_server() -> dict[str, judgement.Figures]:
    """The server-wide pieces, on a private cluster: the shared server must never carry a slot."""
    with support.private_postgres() as url:
        async def build() -> None:
            conn = await asyncpg.connect(url, timeout=10)
            try:
                await conn.execute(judgement.POSTGRES_SERVER_SETUP)
            finally:
                await conn.close()

        asyncio.run(build())
        return judged_runs({"kind": "postgres", "url": url}, {}, "postgres", judgement.POSTGRES_SERVER_EXPECTED, ())


def redis_pack() -> dict[str, judgement.Figures]:
    server = support.PrivateRedis()
    try:
        url = f"redis://127.0.0.1:{server.port}/0"
        judgement.seed_redis(redis.Redis.from_url(url, socket_timeout=30))
        target = {"kind": "redis", "url": url, **judgement.REDIS_TARGET}
        return judged_runs(target, judgement.REDIS_RULES, "redis", judgement.REDIS_EXPECTED,
                           judgement.REDIS_HEALTHY_OBJECTS)
    finally:
        server.stop()


def mongodb() -> dict[str, judgement.Figures]:
    """Two fixtures, each in a database of its own on one SecantusDB: the audits' collections and
    the social app. SecantusDB on a loaded machine answers slower than a production mongod: the
    per-call budget the tests use there (5 s) keeps a slow answer from reading as a miss."""
    _inventory.CALL_BUDGET = 5.0
    server = support.SecantusServer()
    client: pymongo.MongoClient = pymongo.MongoClient(server.uri, serverSelectionTimeoutMS=10000)
    try:
        audits, social = support.unique("dbv_judgement"), support.unique("dbv_judgement")
        judgement.seed_mongodb(client[audits], dt.datetime.now(dt.timezone.utc))
        judgement.seed_mongodb_social(client[social])

        def target(name: str) -> dict[str, Any]:
            return {"kind": "mongodb", "url": support.with_path(server.uri, name, support.urlsplit(server.uri).query),
                    "check_timeout": 120}

        figures = judged_runs(target(audits), judgement.MONGODB_RULES, "mongodb", judgement.MONGODB_EXPECTED,
                              judgement.MONGODB_HEALTHY_OBJECTS, judgement.mongodb_object)
        social_figures = judged_runs(target(social), {}, "mongodb", judgement.MONGODB_SOCIAL_EXPECTED,
                                     judgement.MONGODB_SOCIAL_HEALTHY_OBJECTS, judgement.mongodb_object)
        return both(figures, social_figures)
    finally:
        client.close()
        server.stop()


def demo() -> dict[str, judgement.Figures]:
    """The demo's playground (console/demo): its own three servers, its seed, and its list of
    SEEDED_PROBLEMS; with rules is the demo's config, without it the same with no `expect`."""
    with tempfile.TemporaryDirectory(prefix="dbvitals-judgement-") as base:
        os.environ["XDG_STATE_HOME"] = str(Path(base) / "state")  # the playground's record, not the user's
        playground = start_playground(Path(base) / "playground")
        try:
            urls = (playground.url("postgres"), playground.url("mongodb"), playground.url("redis"))
            asyncio.run(seed_all(*urls))
            declared = demo_config(*urls)["targets"]
            figures = {}
            for run, targets in zip(RUNS, (
                    {name: {k: v for k, v in target.items() if k != "expect"} for name, target in declared.items()},
                    declared)):
                report = support.run_report(config_from_dict({"targets": targets}))
                if report.errors:
                    raise RuntimeError(f"demo: {report.errors}")
                figures[run] = judgement.judge_seeded(report.findings, SEEDED_PROBLEMS)
            return figures
        finally:
            playground.stop()


def both(first: dict[str, judgement.Figures], second: dict[str, judgement.Figures]) -> dict[str, judgement.Figures]:
    for run in RUNS:
        first[run].add(second[run])
    return first


def show(title: str, figures: judgement.Figures, verbose: bool) -> None:
    judged = (f"wrong advice {len(figures.wrong_advice)}, false positives {len(figures.false_positives)} "
              f"(not judged: {len(figures.not_judged)})") if figures.judges_advice else \
        "advice and false positives not judged (no expectation declared)"
    print(f"  {title}: expected {figures.expected}, found {len(figures.found)}, missed {len(figures.missed)}, {judged}")
    lists = [("missed", figures.missed), ("wrong advice", figures.wrong_advice),
             ("false positive", figures.false_positives)]
    if verbose:
        lists.append(("not judged", figures.not_judged))
    for label, items in lists:
        for item in items:
            print(f"      {label}: {item}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pg-url", default=support.PG_URL)
    parser.add_argument("--engines", default="postgres,redis,mongodb,demo")
    parser.add_argument("--verbose", action="store_true", help="list the findings left unjudged too")
    args = parser.parse_args()
    engines = {"postgres": lambda: both(postgres(args.pg_url), postgres_server()), "redis": redis_pack,
               "mongodb": mongodb, "demo": demo}
    chosen = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = sorted(set(chosen) - set(engines))
    if unknown:
        parser.error(f"unknown engine(s) {', '.join(unknown)}; choose from {', '.join(engines)}")
    totals = {run: judgement.Figures() for run in RUNS}
    started = time.perf_counter()
    for engine in chosen:
        engine_started = time.perf_counter()
        figures = engines[engine]()
        print(f"{engine} ({time.perf_counter() - engine_started:.1f} s)")
        for run in RUNS:
            show(run, figures[run], args.verbose)
            if figures[run].judges_advice:
                totals[run].add(figures[run])
    print(f"total of the judged fixtures, the demo's list apart ({time.perf_counter() - started:.1f} s)")
    for run in RUNS:
        show(run, totals[run], verbose=False)


if __name__ == "__main__":
    main()
