"""What `dbvitals fix` and `dbvitals undo` share (and `history`, the outcome words): exit codes,
the step description, the confirmation prompt, progress lines, the outcome line and the fix
limits from the options."""

from __future__ import annotations

import argparse
from typing import Any

from checks.actions.journal import JournalError
from checks.display import terminal_safe
from checks.engines import step_text
from checks.fixes import FixLimits, Journal
from checks.secrets import mask_text
from console.runtime import CliError
from console.textwidth import write_message

EXIT_OK = 0
EXIT_NOT_FIXED = 1  # applied but still found, failed, or no such finding
EXIT_REFUSED = 3  # refused, declined at the prompt, or nothing to confirm on


def describe_steps(title: str, steps: Any) -> list[str]:
    lines = [f"  {title}:"]
    for number, step in enumerate(steps, 1):
        text = step_text(step).splitlines() or [""]
        where = ""
        if not step.transactional:
            where = "   [outside a transaction]"
        lines.append(f"    {number}. {text[0]}{where}")
        lines += [f"       {line}" for line in text[1:]]
        if step.description:
            lines.append(f"       ({terminal_safe(step.description)})")
    return lines


def confirm(question: str, target: str, environment: str | None) -> None:
    """Ask on the terminal; production needs the target's name typed. No terminal: refuse."""
    import sys


    if not sys.stdin or not sys.stdin.isatty():
        raise CliError("no terminal to confirm on: pass --yes to apply without a prompt "
                       "(review it first with --dry-run)", code=EXIT_REFUSED)
    production = (environment or "").lower() in {"production", "prod", "live"}
    prompt = (f"{question}? {target} is {environment}: type the target name to confirm: " if production
              else f"{question}? [y/N] ")
    sys.stderr.write(prompt)
    sys.stderr.flush()
    answer = sys.stdin.readline().strip()
    accepted = answer == target if production else answer.lower() in {"y", "yes"}
    if not accepted:
        raise CliError("not confirmed: nothing applied", code=EXIT_REFUSED)


def progress(message: str) -> None:
    import sys

    # Progress names key patterns and objects: terminal-safe and masked like everything printed.
    write_message(f"  {mask_text(terminal_safe(message))}", sys.stderr)


def outcome_word(outcome: str | None, *, undo: bool = False) -> str:
    """An outcome as the user reads it: an undo that worked is "undone", not "fixed"."""
    if outcome is None:
        return "DID NOT FINISH"
    if undo and outcome in UNDO_WORDS:
        return UNDO_WORDS[outcome]
    return outcome.replace("_", " ")


UNDO_WORDS = {"fixed": "undone", "not_fixed": "not undone"}


def report_outcome(outcome: Any, journal: Any, *, undo: bool = False) -> int:
    verified = {True: "verified", False: "verified: still found", None: "not verified"}[outcome.verified]
    if undo:
        verified = {True: "verified", False: "verified: the finding is not back", None: "not verified"}[outcome.verified]
    say(f"{outcome_word(outcome.outcome, undo=undo)} ({verified}) in {outcome.duration_ms / 1000:.2f}s, journal entry {outcome.entry_id} "
         f"in {journal.path}")
    say(f"  {outcome.message}")
    return exit_code(outcome)


def exit_code(outcome: Any) -> int:
    """Every action's exit code: done and seen on the server, refused, or anything else."""
    if outcome.outcome == "fixed":
        return EXIT_OK
    return EXIT_REFUSED if outcome.outcome == "refused" else EXIT_NOT_FIXED


def journal_for(settings: Any) -> Any:
    """The journal, known usable before anything is planned or applied."""
    journal = Journal.for_settings(settings)
    try:
        journal.check()
    except JournalError as exc:
        raise CliError(str(exc)) from None
    return journal


def limits_from(args: argparse.Namespace) -> Any:
    defaults = FixLimits()
    lock = args.lock_timeout if args.lock_timeout is not None else defaults.lock_timeout_s
    statement = args.statement_timeout if args.statement_timeout is not None else defaults.statement_timeout_s
    if lock <= 0 or statement <= 0:
        raise CliError("--lock-timeout and --statement-timeout must be positive")
    return FixLimits(lock_timeout_s=lock, statement_timeout_s=statement)


def say(text: str) -> None:
    import sys

    # The last line of defence for everything fix and undo print: no secret, no control character.
    write_message(mask_text(terminal_safe(text, keep_newlines=True)), sys.stdout)
