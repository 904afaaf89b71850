"""`dbvitals history`: the action journal, newest first; one entry in full with its id."""

from __future__ import annotations

import argparse
from typing import Any

from checks.config import ConfigError, load_config
from checks.display import terminal_safe
from checks.engines import adapter_for, step_text
from checks.fixes import Journal
from checks.model import FixStep
from console.commands.applying import outcome_word
from console.runtime import CliError
from console.textwidth import Column, print_fitted


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "List the journal: every fix, undo, cancel and terminate attempted, who ran it, where, and how it ended."
    parser.add_argument("entry_id", nargs="?", metavar="ENTRY_ID", help="show this entry in full")
    parser.add_argument("--target", action="append", metavar="NAME", help="only entries on this target (repeatable)")
    parser.add_argument("--limit", type=int, default=50, metavar="N", help="at most N entries, newest first (default 50; 0: all)")
    parser.add_argument("--format", default="text", choices=("text", "json"))


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    explicit = getattr(args, "config", None)
    try:
        # The journal outlives configs: without one, read the default journal.
        settings = load_config(explicit, required=bool(explicit))
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    journal = Journal.for_settings(settings)
    entries = journal.entries()  # JournalError (a directory, say): a one-line error, exit 2
    for problem in journal.problems:
        print(f"dbvitals: warning: {problem}", file=sys.stderr)
    undone = {e.undoes: e.id for e in entries if e.undoes and e.outcome in {"fixed", "not_fixed"}}
    if args.entry_id:
        try:
            entry = journal.get(args.entry_id)
        except LookupError as exc:
            raise CliError(str(exc)) from None
        if entry is None:
            raise CliError(f"no journal entry {args.entry_id} in {journal.path}", code=1)
        if args.format == "json":
            sys.stdout.write(json.dumps({**entry.to_dict(), "undone_by": undone.get(entry.id)}, indent=2) + "\n")
        else:
            sys.stdout.write(_detail(entry, undone.get(entry.id)))
        return 0
    if args.target:
        entries = [e for e in entries if e.target in args.target]
    entries = list(reversed(entries))
    if args.limit:
        entries = entries[: args.limit]
    if args.format == "json":
        doc = {"schema": "dbvitals.history/1", "journal": str(journal.path),
               "entries": [{**e.to_dict(), "undone_by": undone.get(e.id)} for e in entries]}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return 0
    if not entries:
        sys.stdout.write(f"no fixes journaled yet ({journal.path})\n")
        return 0
    _table(entries, undone)
    return 0


def state_text(entry: Any, undone_by: str | None) -> str:
    text = outcome_word(entry.outcome, undo=bool(entry.undoes))
    if entry.outcome is None:
        return text
    if undone_by:
        text += f", undone by {undone_by}"
    return text


def _table(entries: list[Any], undone: dict[str, str]) -> None:
    # At 80 columns: which entry, when, where, on what, and how it ended; the rest when there is room.
    columns = [Column("entry", 9, words=False), Column("started", 8), Column("user", 2),
               Column("target", 7, words=False), Column("kind", 4), Column("check", 3, words=False),
               Column("object", 6, words=False), Column("outcome", 9), Column("verified", 1), Column("duration", 2)]
    rows = []
    for e in entries:
        verified = {True: "yes", False: "no", None: ""}[e.verified]
        rows.append([terminal_safe(str(cell)) for cell in (
            e.id, _local(e.started_at), e.user, e.target, e.kind if not e.undoes else f"undo {e.undoes}",
            e.finding.get("check", ""), e.finding.get("object", ""), state_text(e, undone.get(e.id)), verified,
            "" if e.duration_ms is None else f"{e.duration_ms / 1000:.2f}s",
        )])
    print_fitted(columns, rows)


def _detail(entry: Any, undone_by: str | None) -> str:
    def s(value: Any) -> str:
        return terminal_safe(str(value))

    def steps(title: str, items: list[dict[str, Any]]) -> list[str]:
        lines = [f"{title}:"] if items else [f"{title}: none"]
        for number, item in enumerate(items, 1):
            text = step_text(FixStep.from_dict(item)).splitlines() or [""]
            lines.append(f"  {number}. {text[0]}")
            lines += [f"     {line}" for line in text[1:]]
        return lines

    finding = entry.finding
    lines = [
        f"entry     {entry.id} ({entry.kind}{' of ' + entry.undoes if entry.undoes else ''})",
        f"state     {state_text(entry, undone_by)}" + ("" if entry.verified is None else f", verified: {entry.verified}"),
        f"started   {entry.started_at} by {entry.user} on {entry.host}",
        f"finished  {entry.finished_at or '-'}" + (f" ({entry.duration_ms / 1000:.2f}s)" if entry.duration_ms is not None else ""),
        f"target    {s(entry.target)} ({entry.engine}{', ' + s(entry.environment) if entry.environment else ''}) {s(entry.url)}",
        f"finding   {s(finding.get('id'))} {s(finding.get('check'))} [{s(finding.get('severity'))}] "
        f"{s(finding.get('object'))}: {s(finding.get('title'))}",
        f"fix       {s(entry.summary)}",
        f"safety    {s(entry.safety)}" + (f"; lock/impact: {s(entry.lock)}" if entry.lock else ""),
        f"steps     {entry.steps_done} of {len(entry.steps)} applied",
        *steps("steps", entry.steps),
        *steps("inverse", entry.inverse),
        f"message   {s(entry.message) if entry.message else ('the process stopped before the fix finished: check the target' if entry.outcome is None else '')}",
        *(f"left      {s(item)}" for item in entry.leftovers),
        *(f"undo sees {s(adapter_for(entry.engine).expected_text(item))}" for item in getattr(entry, "expect", [])),
    ]
    return "\n".join(lines) + "\n"


def _local(iso: str) -> str:
    import datetime as dt

    try:
        return dt.datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return iso
