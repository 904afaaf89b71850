"""`dbvitals baseline save FILE`: record the current finding ids for the gate (console/gate.py)."""

from __future__ import annotations

import argparse

from console.gate import gate
from console.runtime import EXIT_FINDINGS, EXIT_OK, CliError, load_checks, load_settings, run_report
from checks.units import counted

SCHEMA = "dbvitals.baseline/1"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Record the current findings so that `dbvitals check --baseline FILE` fails only on new ones. "
        "Suppressed findings are left out: when a suppression expires, its findings fail the gate again."
    )
    actions = parser.add_subparsers(dest="baseline_action", metavar="ACTION", required=True)
    save = actions.add_parser("save", help="run the checks and write the finding ids to FILE")
    save.add_argument("file", metavar="FILE")
    save.add_argument("--target", action="append", metavar="NAME", help="only this target (repeatable)")
    save.add_argument("--check", action="append", metavar="ID", help="only checks matching this id or glob (repeatable)")


def run(args: argparse.Namespace) -> int:
    import datetime as dt
    import json
    import sys

    settings = load_settings(args)
    registry = load_checks(settings)
    report = gate(run_report(settings, registry, targets=args.target, checks=args.check), settings, args)
    if report.errors:
        for error in report.errors:
            print(f"dbvitals: error: {error.target} {error.check}: {error.kind}: {error.message}", file=sys.stderr)
        print("dbvitals: error: not saving a baseline from a run in which checks failed", file=sys.stderr)
        return EXIT_FINDINGS
    doc = {
        "schema": SCHEMA,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "findings": [
            {"id": f.id, "check": f.check, "target": f.target, "object": f.object, "severity": f.severity.value,
             "title": f.title}
            for f in report.findings
        ],
    }
    try:
        with open(args.file, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    except OSError as exc:
        raise CliError(f"{args.file}: cannot write: {exc.strerror}") from None
    print(f"baseline of {counted(len(report.findings), 'finding')} written to {args.file}")
    return EXIT_OK
