"""`dbvitals snapshot save|list|show|prune`: the fleet's health at a moment, kept for `diff`."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from typing import Any

from checks.config import parse_duration
from checks.display import terminal_safe as safe_line
from checks.registry import UsageError
from checks.runner import sort_findings
from checks.snapshots.store import SnapshotError, SnapshotStore, default_path
from checks.snapshots.take import take
from checks.units import counted
from console.runtime import CliError, load_checks, load_settings, run_async, write_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Snapshots keep, per target, the findings and the figures that explain change "
                          "(index and table usage, statement totals, collection counts, key patterns) in "
                          "an SQLite file beside the journal. Compare two with `dbvitals diff`.")
    parser.add_argument("--store", metavar="FILE", help="the snapshot database (default: snapshots.db beside the journal)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    save = actions.add_parser("save", help="run the checks now and store a snapshot")
    save.add_argument("--label", metavar="TEXT", help="a name to refer to it by (e.g. before-deploy)")
    save.add_argument("--target", action="append", metavar="NAME", help="only this target (repeatable)")
    save.add_argument("--check", action="append", metavar="ID", help="only checks matching this id or glob")
    save.add_argument("--no-activity", action="store_true", help="do not record what is running")
    listing = actions.add_parser("list", help="list stored snapshots")
    listing.add_argument("--format", default="text", choices=("text", "json"))
    show = actions.add_parser("show", help="a stored snapshot's report")
    show.add_argument("ref", metavar="SNAPSHOT", help="an id, a label, latest or latest~N")
    show.add_argument("--format", default="text", metavar="FORMAT", help="text (default), json, markdown, ...")
    prune = actions.add_parser("prune", help="delete old snapshots")
    prune.add_argument("--keep", type=int, metavar="N", help="keep the newest N")
    prune.add_argument("--older-than", metavar="DURATION", help="delete those older than this (e.g. 30d)")
    prune.add_argument("--label", metavar="TEXT", help="only snapshots with this label")


def store_for(args: argparse.Namespace, settings: Any) -> Any:
    return SnapshotStore(args.store or default_path(settings))


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    store = store_for(args, settings)
    try:
        return ACTIONS[args.action](args, settings, store)
    except SnapshotError as exc:
        raise CliError(str(exc)) from None


def save_snapshot(settings: Any, store: Any, *, label: str | None, targets: Any = None, checks: Any = None,
                  with_activity: bool = True, source: str = "snapshot save") -> tuple[int, Any]:
    if not settings.targets:
        raise CliError("no targets configured (add a [targets.NAME] table; see config.example.toml)")
    registry = load_checks(settings)
    try:
        taken = run_async(take(settings, registry, targets=targets, checks=checks, with_activity=with_activity))
    except UsageError as exc:
        raise CliError(str(exc)) from None
    for problem in taken.problems:
        print(f"dbvitals: warning: {problem}", file=sys.stderr)
    sid = store.save(taken.report, taken.figures, label=label, source=source, activity=taken.activity)
    return sid, taken


def _save(args: argparse.Namespace, settings: Any, store: Any) -> int:
    sid, taken = save_snapshot(settings, store, label=args.label, targets=args.target, checks=args.check,
                               with_activity=not args.no_activity)
    report = taken.report
    figures = sum(len(v) for v in taken.figures.values())
    print(f"snapshot {sid}{f' ({args.label})' if args.label else ''}: {len(report.targets)} targets, "
          f"{len(report.findings)} findings, {figures} figures, in {store.path}")
    return 0


def _list(args: argparse.Namespace, settings: Any, store: Any) -> int:
    infos = store.list()
    if args.format == "json":
        sys.stdout.write(json.dumps({"schema": "dbvitals.snapshots/1", "store": str(store.path),
                                     "snapshots": [i.to_dict() for i in infos]}, indent=2) + "\n")
        return 0
    if not infos:
        print(f"no snapshots in {store.path}")
        return 0
    print(f"{'id':>5}  {'taken at (UTC)':<25}  {'targets':>7}  {'findings':>8}  label")
    for i in infos:
        print(f"{i.id:>5}  {i.taken_at:<25}  {i.targets:>7}  {i.findings:>8}  {safe_line(i.label or '')[:25]}")
    return 0


def _show(args: argparse.Namespace, settings: Any, store: Any) -> int:
    snapshot = store.load(store.resolve(args.ref))
    print(f"snapshot {snapshot.info.id} taken at {snapshot.info.taken_at}", file=sys.stderr)
    report = snapshot.report()
    # The worst first, as `dbvitals check` reports it: a store keeps findings in the order saved.
    write_report(replace(report, findings=sort_findings(report.findings)), args.format, None)
    return 0


def _prune(args: argparse.Namespace, settings: Any, store: Any) -> int:
    if args.keep is None and args.older_than is None:
        raise CliError("prune needs --keep N or --older-than DURATION")
    if args.keep is not None and args.keep < 0:
        raise CliError("--keep must be 0 or more")
    older = None
    if args.older_than:
        try:
            older = parse_duration(args.older_than)
        except ValueError as exc:
            raise CliError(f"--older-than {args.older_than}: {exc}") from None
    gone = store.prune(keep=args.keep, older_than=older, label=args.label)
    print(f"pruned {counted(gone, 'snapshot')} from {store.path}")
    return 0


ACTIONS = {"save": _save, "list": _list, "show": _show, "prune": _prune}
