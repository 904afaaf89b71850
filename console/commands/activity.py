"""`dbvitals activity`: what is running now on each target, headless; cancel or terminate one
session or operation as a journalled, unsafe fix."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

EXIT_REFUSED = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Sessions, blocking, operations and command rates now, read-only: PostgreSQL pg_stat_activity, "
        "MongoDB currentOp and top, Redis CLIENT LIST, SLOWLOG and commandstats. Rates need two "
        "refreshes. --cancel/--terminate stop one session (unsafe: needs allow_fixes, --allow-unsafe "
        "and confirmation; journalled)."
    )
    parser.add_argument("--target", action="append", metavar="NAME", help="only this target (repeatable)")
    parser.add_argument("--format", default="text", choices=("text", "json"))
    parser.add_argument("--every", metavar="DURATION", help="refresh this often (e.g. 2s); without it, one sample")
    parser.add_argument("--count", type=int, metavar="N", help="stop after N samples (default: 1, or endless with --every)")
    kill = parser.add_mutually_exclusive_group()
    kill.add_argument("--cancel", metavar="ID", help="cancel this session's statement (PostgreSQL), "
                      "or stop this operation (MongoDB killOp) / client (Redis CLIENT KILL ID)")
    kill.add_argument("--terminate", metavar="ID", help="end this session (PostgreSQL pg_terminate_backend), "
                      "MongoDB killOp, Redis CLIENT KILL ID")
    parser.add_argument("--yes", action="store_true", help="no confirmation prompt")
    parser.add_argument("--allow-unsafe", action="store_true", help="permit cancel/terminate (they are unsafe fixes)")


def run(args: argparse.Namespace) -> int:
    from checks.config import parse_duration
    from checks.engine import UsageError, select_targets
    from console.runtime import CliError, load_settings, run_async

    settings = load_settings(args)
    try:
        names = select_targets(settings, args.target)
    except UsageError as exc:
        raise CliError(str(exc)) from None
    if args.cancel or args.terminate:
        if len(names) != 1:
            raise CliError("--cancel/--terminate need exactly one --target")
        return _kill(settings, names[0], args)
    interval = None
    if args.every:
        try:
            interval = parse_duration(args.every).total_seconds()
        except ValueError as exc:
            raise CliError(f"--every {args.every}: {exc}") from None
        if interval < 0.2:
            raise CliError(f"--every {args.every}: at least 0.2s, so the view never loads the server")
    if args.count is not None and args.count < 1:
        raise CliError("--count must be at least 1")
    count = args.count or (None if interval else 1)
    return run_async(_watch(settings, names, args.format, interval, count))


async def _watch(settings: Any, names: list[str], fmt: str, interval: float | None, count: int | None) -> int:
    from checks.activity.session import ActivityWatch

    watch = ActivityWatch(settings, names)
    try:
        taken = 0
        while count is None or taken < count:
            samples = await watch.refresh()
            taken += 1
            _emit(samples, watch.statuses, fmt)
            if count is not None and taken >= count:
                break
            await watch.wait(interval or 0)
    finally:
        await watch.close()
    return 0 if all(s.reachable for s in watch.statuses.values()) else 1


def _emit(samples: dict[str, Any], statuses: dict[str, Any], fmt: str) -> None:
    if fmt == "json":
        doc = {
            "schema": "dbvitals.activity/1",
            "targets": [
                {"status": statuses[name].to_dict(), "activity": samples[name].to_dict() if name in samples else None}
                for name in statuses
            ],
        }
        sys.stdout.write(json.dumps(doc, default=str) + "\n")
    else:
        from console.formats.activity_text import render_activity

        sys.stdout.write(render_activity(samples, statuses, width=_width()))
    sys.stdout.flush()


def _width() -> int:
    import shutil

    return shutil.get_terminal_size((100, 24)).columns  # $COLUMNS first, then the terminal


def _kill(settings: Any, name: str, args: argparse.Namespace) -> int:
    from checks.activity.kill import KillRefused, apply_kill, plan_kill, refusals
    from checks.activity.session import ActivityWatch
    from checks.actions.journal import Journal
    from console.runtime import CliError, run_async
    from console.commands.applying import confirm

    ident = args.cancel or args.terminate
    terminate = args.terminate is not None
    problems = refusals(settings, name, allow_unsafe=args.allow_unsafe)
    if problems:
        for problem in problems:
            print(f"refused: {problem}", file=sys.stderr)
        return EXIT_REFUSED

    async def go() -> int:
        watch = ActivityWatch(settings, [name])
        try:
            samples = await watch.refresh()
            if name not in samples:
                status = watch.statuses[name]
                raise CliError(f"target {name} is unreachable ({status.state.value}: {status.error})", code=1)
            try:
                plan = plan_kill(settings, name, samples[name], ident, terminate=terminate)
            except KillRefused as exc:
                print(f"refused: {exc}", file=sys.stderr)
                return EXIT_REFUSED
            _preview(plan)
            if not args.yes:
                confirm(f"{plan.verb} {plan.ident} on {name}", name, plan.environment)
            journal = Journal.for_settings(settings)
            entry = await apply_kill(settings, watch.session(name), plan, journal)
        finally:
            await watch.close()
        print(f"{entry.outcome}: {entry.message} (journal entry {entry.id} in {journal.path})", file=sys.stderr)
        return 0 if entry.outcome == "fixed" else 1

    return run_async(go())


def _preview(plan: Any) -> None:
    from checks.adapters import step_text
    from checks.display import terminal_safe as safe_line

    row = plan.row
    lines = [
        f"target   {plan.target} ({plan.engine}, {plan.environment or 'no environment'}) {plan.url}",
        f"action   {plan.verb} {plan.ident}: UNSAFE, {plan.step.description}",
        f"what     {safe_line(str(row.get('query') or row.get('command') or row.get('last_command') or ''))[:200]}",
        f"run      {safe_line(step_text(plan.step))}",
        "inverse  none: work that was stopped is not resumed",
    ]
    print("\n".join(lines), file=sys.stderr)
