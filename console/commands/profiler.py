"""`dbvitals profiler`: show the MongoDB profiler's level and slowms, or turn it on for a while
and put the previous setting back. The checks only read the profiler; this is the one place
that changes it, and only when asked."""

from __future__ import annotations

import argparse
from typing import Any

from checks.config import parse_duration
from checks.connectors import connect
from checks.mongodb.profiler import read_profiler_setting, restore_profiler, set_profiler
from console.runtime import CliError, load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Show the MongoDB profiler setting of a target's databases, or set it for a limited time "
        "(--level with --for) and restore the previous setting afterwards, also on Ctrl-C. "
        "mongodb.missing-index reads the queries the profiler records."
    )
    parser.add_argument("--target", required=True, metavar="NAME", help="a MongoDB target of the config")
    parser.add_argument("--database", action="append", metavar="DB",
                        help="only this database (repeatable; default: the URL's database, else every non-system one)")
    parser.add_argument("--level", type=int, choices=(0, 1, 2),
                        help="1: record operations slower than --slowms; 2: record everything (costly); 0: off")
    parser.add_argument("--slowms", type=int, metavar="MS", help="the threshold for level 1 (server default 100)")
    parser.add_argument("--sample-rate", type=float, metavar="RATE", help="fraction of slow operations recorded (0-1)")
    parser.add_argument("--for", dest="duration", metavar="DURATION",
                        help='how long to keep the new setting before restoring it, e.g. "10m" (default 5m)')
    parser.add_argument("--keep", action="store_true", help="leave the new setting in place (prints how to restore it)")
    parser.add_argument("--yes", action="store_true", help="required to change the profiler of a production target")


def run(args: argparse.Namespace) -> int:
    import asyncio

    settings = load_settings(args)
    target = settings.targets.get(args.target)
    if target is None:
        raise CliError(f"unknown target {args.target} (configured: {', '.join(settings.targets) or 'none'})")
    if target.kind != "mongodb":
        raise CliError(f"target {args.target} is {target.kind}: the profiler is a MongoDB feature")
    changing = args.level is not None
    if not changing and (args.slowms is not None or args.sample_rate is not None or args.duration or args.keep):
        raise CliError("--slowms, --sample-rate, --for and --keep need --level")
    if changing and target.is_production and not args.yes:
        raise CliError(f"{args.target} is a production target: add --yes to change its profiler")
    if args.keep and args.duration:
        raise CliError("--keep and --for exclude each other")
    try:
        seconds = parse_duration(args.duration or "5m").total_seconds()
    except ValueError as exc:
        raise CliError(f"--for {args.duration}: {exc}") from None
    return asyncio.run(_run(args, args.target, target, seconds if changing and not args.keep else None))


async def _run(args: argparse.Namespace, name: str, target: Any, hold_seconds: float | None) -> int:
    import asyncio
    import datetime as dt
    import json

    connection = await connect(name, target)
    if not connection.status.reachable:
        raise CliError(f"{name}: {connection.status.error or connection.status.state.value}", code=1)
    session = connection.session
    assert session is not None  # reachable
    client = session.client
    try:
        databases = args.database or await session.databases()
        if not databases:
            raise CliError(f"{name}: no database to profile (name one with --database)", code=1)
        if args.level is None:
            for db in databases:
                print((await read_profiler_setting(client, db)).describe())
            return 0
        previous = []
        try:
            for db in databases:
                before = await set_profiler(client, db, args.level, slowms=args.slowms, sample_rate=args.sample_rate)
                previous.append(before)
                print(f"was    {before.describe()}")
                print(f"now    {(await read_profiler_setting(client, db)).describe()}")
            if hold_seconds is None:
                for before in previous:
                    restore = json.dumps({"profile": before.level, "slowms": before.slowms})
                    print(f"kept; to restore {before.database}: db.runCommand({restore})")
                return 0
            until = dt.datetime.now() + dt.timedelta(seconds=hold_seconds)
            print(f"profiling until {until:%H:%M:%S}; Ctrl-C restores the previous setting now")
            await asyncio.sleep(hold_seconds)
        finally:
            if hold_seconds is not None:
                for before in previous:
                    print(f"restored {(await restore_profiler(client, before)).describe()}")
        return 0
    finally:
        await connection.close()
