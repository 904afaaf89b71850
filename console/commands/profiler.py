"""`dbvitals profiler`: show the MongoDB profiler's level and slowms, or turn it on for a while
and put the previous setting back. The checks only read the profiler; this is the one place
that changes it, and only when asked."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
from typing import Any

from checks.actions.pipeline import perform, raise_if_stopping
from checks.config import parse_duration
from checks.connectors import connect
from checks.mongodb.profiler import read_profiler_setting
from checks.mongodb.profiler_action import plan_profiler, undo_action
from console.commands.applying import EXIT_REFUSED, describe_steps, exit_code, journal_for, progress, say
from console.runtime import CliError, load_settings, run_async


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Show the MongoDB profiler setting of a target's databases, or set it for a limited time "
        "(--level with --for) and restore the previous setting afterwards, also on Ctrl-C, SIGTERM and SIGHUP. "
        "Setting it is a change like a fix: refused without allow_fixes = true on the target, journaled, "
        "verified by reading it back, and undone with `dbvitals undo ID`. "
        "mongodb.missing-index reads the queries the profiler records. "
        "Exit codes: 0 done, 1 not done or not restored, 2 usage or config error, 3 refused."
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
    parser.add_argument("--dry-run", action="store_true", help="show the change and its inverse, apply nothing")
    parser.add_argument("--yes", action="store_true", help="required to change the profiler of a production target")


def run(args: argparse.Namespace) -> int:

    settings = load_settings(args)
    target = settings.targets.get(args.target)
    if target is None:
        raise CliError(f"unknown target {args.target} (configured: {', '.join(settings.targets) or 'none'})")
    if target.kind != "mongodb":
        raise CliError(f"target {args.target} is {target.kind}: the profiler is a MongoDB feature")
    changing = args.level is not None
    if not changing and (args.slowms is not None or args.sample_rate is not None or args.duration or args.keep
                         or args.dry_run):
        raise CliError("--slowms, --sample-rate, --for, --keep and --dry-run need --level")
    if changing and target.is_production and not args.yes and not args.dry_run:
        raise CliError(f"{args.target} is a production target: add --yes to change its profiler")
    if args.keep and args.duration:
        raise CliError("--keep and --for exclude each other")
    try:
        seconds = parse_duration(args.duration or "5m").total_seconds()
    except ValueError as exc:
        raise CliError(f"--for {args.duration}: {exc}") from None
    return run_async(_run(args, settings, args.target, target, seconds if changing and not args.keep else None))


async def _run(args: argparse.Namespace, settings: Any, name: str, target: Any, hold_seconds: float | None) -> int:

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
        return await _change(args, settings, name, target, client, databases, hold_seconds)
    finally:
        await connection.close()


async def _change(args: argparse.Namespace, settings: Any, name: str, target: Any, client: Any,
                  databases: list[str], hold_seconds: float | None) -> int:
    """Set the profiler through the action pipeline (refused without allow_fixes, shown,
    journaled, verified by reading it back), then, with --for, undo it through the pipeline too:
    when the time is up, or at once on SIGINT, SIGTERM or SIGHUP (run_async cancels the wait)."""


    action = await plan_profiler(name, target, client, databases, args.level, slowms=args.slowms,
                                 sample_rate=args.sample_rate)
    entry = action.entry
    say("\n".join([
        f"Profiler change on {name} ({target.kind}{', ' + target.environment if target.environment else ''}) "
        f"{target.masked_url}",
        f"  change:  {entry.summary}",
        f"  impact:  {entry.lock}",
        *describe_steps("steps, in this order", action.steps),
        *describe_steps("inverse (what `dbvitals undo` runs, and --for when its time is up)",
                        [s for s in action.entry_inverse()]),
        *(f"  REFUSED: {r}" for r in action.refusals),
    ]))
    if args.dry_run:
        say("dry run: nothing applied." if not action.refusals else "dry run: this change would be refused.")
        return 0 if not action.refusals else EXIT_REFUSED
    journal = journal_for(settings)
    try:
        outcome = await perform(action, journal, on_progress=progress)
    except asyncio.CancelledError:  # a stop signal while it was being set: put back what was found
        await _restore(settings, name, target, entry, journal)
        raise
    if outcome.outcome == "refused":
        say(f"refused (journal entry {outcome.entry_id}):")
        for reason in action.refusals:
            say(f"  - {reason}")
        return EXIT_REFUSED
    for before in action.before:
        print(f"was    {before.describe()}")
    for db in databases:
        print(f"now    {(await read_profiler_setting(client, db)).describe()}")
    say(f"{outcome.outcome.replace('_', ' ')} (journal entry {outcome.entry_id} in {journal.path}): {outcome.message}")
    if outcome.outcome == "failed":  # part of it may have been set: put that back now
        if entry.steps_done:
            await _restore(settings, name, target, entry, journal)
        return exit_code(outcome)
    if hold_seconds is None:
        say(f"kept; to restore the previous setting: dbvitals undo {outcome.entry_id}")
        return exit_code(outcome)
    until = dt.datetime.now() + dt.timedelta(seconds=hold_seconds)
    print(f"profiling until {until:%H:%M:%S}; Ctrl-C (or SIGTERM, SIGHUP) restores the previous setting now", flush=True)
    try:
        raise_if_stopping()  # a signal that came while the change was read back
        await asyncio.sleep(hold_seconds)
    finally:
        restored = await _restore(settings, name, target, entry, journal)
    return restored if restored else exit_code(outcome)


RESTORE_TIMEOUT_S = 30.0


async def _restore(settings: Any, name: str, target: Any, entry: Any, journal: Any) -> int:
    """Undo the profiler change through the pipeline, bounded; 0 when the server shows the
    previous setting again, else 1 with how to put it back by hand."""

    from checks.mongodb.connector import make_client

    action = undo_action(name, target, entry)
    try:
        outcome = await asyncio.wait_for(perform(action, journal, on_progress=progress), RESTORE_TIMEOUT_S)
    except Exception as exc:  # TimeoutError, or a journal that cannot be written
        outcome = None
        say(f"could not restore the profiler ({type(exc).__name__}: {exc})")
    if outcome is not None and outcome.outcome == "fixed":
        client = make_client(target, maxPoolSize=1)
        try:
            for step in action.steps:
                print(f"restored {(await read_profiler_setting(client, str(step.database))).describe()}")
        finally:
            await client.close()
        say(f"restored (journal entry {outcome.entry_id}, undo of {entry.id})")
        return 0
    if outcome is not None:
        say(f"restore {outcome.outcome.replace('_', ' ')} (journal entry {outcome.entry_id}): {outcome.message}")
    for step in action.steps:
        say(f"to restore {step.database} by hand: db.getSiblingDB({json.dumps(step.database)})"
            f".runCommand({json.dumps(step.command)}), or run `dbvitals undo {entry.id}`")
    return 1
