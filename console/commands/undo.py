"""`dbvitals undo ENTRY_ID`: apply a journal entry's inverse, with the same refusals and
confirmation as a fix, journaled as an entry of its own."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from checks.display import terminal_safe as safe
from checks.engines import steps_lock
from checks.fixes import FixRefused, inspect_undo, plan_undo, undo_fix
from console.commands.applying import (
    EXIT_NOT_FIXED, EXIT_OK, EXIT_REFUSED, confirm, describe_steps, journal_for, limits_from, progress, report_outcome,
    say,
)
from console.runtime import CliError, load_checks, load_settings, run_async


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Undo a fix from the journal (`dbvitals history` lists them): show the inverse steps, confirm, "
        f"apply, and verify that the check sees the original state again. Exit codes: {EXIT_OK} undone, "
        f"{EXIT_NOT_FIXED} failed or not verified, 2 usage or config error, {EXIT_REFUSED} refused or not confirmed."
    )
    parser.add_argument("entry_id", metavar="ENTRY_ID", help="the journal entry (a unique prefix of 4+ characters will do)")
    parser.add_argument("--dry-run", action="store_true", help="show what would run, apply nothing")
    parser.add_argument("--yes", "-y", action="store_true", help="apply without a prompt (for scripts)")
    parser.add_argument("--allow-unsafe", action="store_true", help="permit an inverse of a fix marked unsafe")
    parser.add_argument("--lock-timeout", type=float, metavar="SECONDS", help="lock wait per statement (default 5)")
    parser.add_argument("--statement-timeout", type=float, metavar="SECONDS", help="time limit per statement (default 1800)")


def run(args: argparse.Namespace) -> int:


    settings = load_settings(args)
    journal = journal_for(settings)
    try:
        plan = plan_undo(settings, args.entry_id, allow_unsafe=args.allow_unsafe, journal=journal)
    except FixRefused as exc:
        raise CliError(str(exc), code=EXIT_REFUSED) from None
    finally:
        for problem in journal.problems:  # lines that could not be read: skipped, said
            print(f"dbvitals: warning: {problem}", file=sys.stderr)
    return run_async(_undo(args, settings, journal, plan))


async def _undo(args: argparse.Namespace, settings: Any, journal: Any, plan: Any) -> int:
    """Inspect, confirm, apply and verify in one event loop."""
    # What the fix left on the server decides what the undo may touch: shown before confirming.
    plan = await inspect_undo(settings, plan)
    entry = plan.entry
    finding = entry.finding
    say("\n".join([
        f"Undo of journal entry {entry.id} ({entry.kind}, {entry.state}, {entry.started_at} by {entry.user})",
        f"  target:  {entry.target} ({entry.engine}{', ' + entry.environment if entry.environment else ''}) {entry.url}",
        # Names in a finding come from the database: shown escaped, as `dbvitals fix` shows them.
        f"  finding: {finding.get('id')} {finding.get('check')} {safe(str(finding.get('object')))}: {safe(str(finding.get('title')))}",
        f"  fix:     {safe(entry.summary)}",
        f"  safety:  {entry.safety}",
        # The locks of the inverse steps it runs (a DROP), not the fix's (the build).
        f"  lock:    {steps_lock(plan.steps) or 'not stated'}",
        *describe_steps("inverse steps, in this order", plan.steps),
        *(f"  WARNING: {w}" for w in plan.warnings),
        *(f"  REFUSED: {safe(r)}" for r in plan.refusals),
    ]))
    if args.dry_run:
        say("dry run: nothing applied." if plan.applicable else "dry run: this undo would be refused.")
        return EXIT_OK if plan.applicable else EXIT_REFUSED
    registry = load_checks(settings)
    if plan.refusals:
        outcome = await undo_fix(settings, registry, entry.id, allow_unsafe=args.allow_unsafe, journal=journal)
        say(f"refused (journal entry {outcome.entry_id}).")
        return EXIT_REFUSED
    limits = limits_from(args)
    if not args.yes:
        await asyncio.to_thread(confirm, f"undo entry {entry.id} on {entry.target}", entry.target, entry.environment)
    outcome = await undo_fix(settings, registry, entry.id, allow_unsafe=args.allow_unsafe, on_progress=progress,
                             journal=journal, limits=limits)
    return report_outcome(outcome, journal, undo=True)
