"""`dbvitals activity`: what is running now on each target, headless; cancel or terminate one
session or operation through the action pipeline (checks.actions), unsafe and journalled."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from checks.actions.journal import Journal
from checks.actions.kill import kill_refusals, plan_kill, work_text
from checks.actions.pipeline import ActionRefused, perform
from checks.activity.session import ActivityWatch
from checks.config import parse_duration
from checks.display import terminal_safe
from checks.engines import step_text
from checks.registry import UsageError
from checks.runner import select_targets
from checks.secrets import mask_text
from console.commands.applying import EXIT_NOT_FIXED, EXIT_OK, EXIT_REFUSED, confirm, exit_code, outcome_word
from console.formats.activity_text import render_activity
from console.runtime import CliError, load_settings, run_async
from console.textwidth import write_message


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Sessions, blocking, operations and command rates now, read-only: PostgreSQL pg_stat_activity, "
        "MongoDB currentOp and top, Redis CLIENT LIST, SLOWLOG and commandstats. Rates need two "
        "refreshes. --cancel/--terminate stop one session (unsafe: needs allow_fixes, --allow-unsafe "
        "and confirmation; journalled). Exit codes with them: "
        f"{EXIT_OK} stopped, as reading the server again shows; {EXIT_NOT_FIXED} not stopped or failed; "
        f"{EXIT_REFUSED} refused or not confirmed."
    )
    parser.add_argument("--target", action="append", metavar="NAME", help="only this target (repeatable)")
    parser.add_argument("--format", default="text", choices=("text", "json"))
    parser.add_argument("--every", metavar="DURATION", help="refresh this often (e.g. 2s); without it, one sample")
    parser.add_argument("--count", type=int, metavar="N", help="stop after N samples (default: 1, or endless with --every)")
    kill = parser.add_mutually_exclusive_group()
    kill.add_argument("--cancel", metavar="ID", help="cancel this session's statement (PostgreSQL), "
                      "stop this operation (MongoDB killOp), end the blocking command this client waits in "
                      "(Redis CLIENT UNBLOCK)")
    kill.add_argument("--terminate", metavar="ID", help="end this session (PostgreSQL pg_terminate_backend), "
                      "MongoDB killOp, Redis CLIENT KILL ID")
    parser.add_argument("--yes", action="store_true", help="no confirmation prompt")
    parser.add_argument("--allow-unsafe", action="store_true", help="permit cancel/terminate (they are unsafe fixes)")


def run(args: argparse.Namespace) -> int:
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
        sys.stdout.write(render_activity(samples, statuses, width=_width()))
    sys.stdout.flush()


def _width() -> int:
    import shutil

    return shutil.get_terminal_size((100, 24)).columns  # $COLUMNS first, then the terminal


def _kill(settings: Any, name: str, args: argparse.Namespace) -> int:
    """Plan from the sample the preview shows, confirm, and hand the action to the pipeline."""
    terminate = args.terminate is not None
    # Known before connecting: said without touching the server or the journal.
    problems = kill_refusals(settings, name, terminate=terminate, allow_unsafe=args.allow_unsafe)
    if problems:
        for problem in problems:
            print(f"refused: {problem}", file=sys.stderr)
        return EXIT_REFUSED
    return run_async(_plan_confirm_perform(settings, name, args.cancel or args.terminate, terminate, args))


async def _plan_confirm_perform(settings: Any, name: str, ident: str, terminate: bool, args: argparse.Namespace) -> int:
    import asyncio

    watch = ActivityWatch(settings, [name])
    try:
        samples = await watch.refresh()
        if name not in samples:
            status = watch.statuses[name]
            raise CliError(f"target {name} is unreachable ({status.state.value}: {status.error})", code=1)
        try:
            action = plan_kill(settings, watch, name, samples[name], ident, terminate=terminate,
                               allow_unsafe=args.allow_unsafe)
        except ActionRefused as exc:
            print(f"refused: {exc}", file=sys.stderr)
            return EXIT_REFUSED
        _preview(action, settings.targets[name])
        if not args.yes:
            await asyncio.to_thread(confirm, f"{action.verb} {action.ident} on {name}", name,
                                    settings.targets[name].environment)
        journal = Journal.for_settings(settings)
        outcome = await perform(action, journal, on_progress=_progress)
    finally:
        await watch.close()
    _say(f"{outcome_word(outcome.outcome)}: {outcome.message} (journal entry {outcome.entry_id} in {journal.path})")
    if outcome.next_action == "terminate":
        _say(f"to end the session: dbvitals activity --target {name} --terminate {action.ident} --allow-unsafe")
    return exit_code(outcome)


def _preview(action: Any, target: Any) -> None:
    lines = [
        f"target   {action.target} ({target.kind}, {target.environment or 'no environment'}) {target.masked_url}",
        f"action   {action.verb} {action.noun} {action.ident}: UNSAFE, {action.step.description}",
        f"what     {work_text(action.row)[:200]}",
        f"run      {step_text(action.step)}",
        "inverse  none: work that was stopped is not resumed",
    ]
    _say("\n".join(lines))


def _progress(message: str) -> None:
    _say(f"  {message}")


def _say(text: str) -> None:
    """On stderr (stdout stays the sample's), terminal-safe and masked like everything printed."""
    write_message(mask_text(terminal_safe(text, keep_newlines=True)), sys.stderr)
