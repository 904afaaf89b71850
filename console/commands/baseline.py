"""`dbvitals baseline save FILE`, and the gate `dbvitals check` applies: suppressions from the
config, then `--baseline FILE` (report every finding, fail only on those not in the file)."""

from __future__ import annotations

import argparse
from typing import Any

SCHEMA = "dbvitals.baseline/1"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Record the current findings so that `dbvitals check --baseline FILE` fails only on new ones. "
        "Suppressed findings are left out: when a suppression expires, its findings fail the gate again."
    )
    actions = parser.add_subparsers(dest="baseline_action", metavar="ACTION", required=True)
    save = actions.add_parser("save", help="run the checks and write the finding ids to FILE")
    save.add_argument("file", metavar="FILE")
    save.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help="config file")
    save.add_argument("--target", action="append", metavar="NAME", help="only this target (repeatable)")
    save.add_argument("--check", action="append", metavar="ID", help="only checks matching this id or glob (repeatable)")


def run(args: argparse.Namespace) -> int:
    import datetime as dt
    import json
    import sys

    from console.cli import EXIT_FINDINGS, EXIT_OK, CliError, load_checks, load_settings, run_report

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
    print(f"baseline of {len(report.findings)} finding(s) written to {args.file}")
    return EXIT_OK


def load_baseline(path: str) -> list[str]:
    """Finding ids from a baseline file (or from a `dbvitals check --format json` report)."""
    import json

    from console.cli import CliError

    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise CliError(f"--baseline {path}: cannot read: {exc.strerror}") from None
    except ValueError as exc:
        raise CliError(f"--baseline {path}: not JSON: {exc}") from None
    items = data.get("findings") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise CliError(f"--baseline {path}: expected a dbvitals baseline (`dbvitals baseline save FILE`)")
    ids = [item.get("id") if isinstance(item, dict) else item for item in items]
    if not all(isinstance(i, str) for i in ids):
        raise CliError(f"--baseline {path}: every finding needs an id")
    return ids


def gate(report: Any, settings: Any, args: argparse.Namespace) -> Any:
    """The report with the config's suppressions applied and, with --baseline, new findings
    marked. Expired suppressions are said on standard error as well as in the report."""
    import sys

    from checks.config import ConfigError, resolve_config_path
    from checks.suppressions import gated
    from console.cli import CliError

    baseline = getattr(args, "baseline", None)
    try:
        result = gated(
            report,
            settings.suppressions,
            baseline=baseline,
            known=load_baseline(baseline) if baseline else (),
            fail_on=getattr(args, "fail_on", "high"),
            config_path=str(resolve_config_path(getattr(args, "config", None))),
        )
    except ConfigError as exc:
        raise CliError(f"invalid config: {exc}") from None
    for expired in result.expired:
        print(f"dbvitals: warning: {expired.describe()}", file=sys.stderr)
    return result


def failing(report: Any) -> Any:
    """What the exit code is judged on: with a baseline, only the findings not in it."""
    from checks.model import Report

    if getattr(report, "baseline", None) is None:
        return report
    return Report(targets=report.targets, findings=[f for f in report.findings if report.is_new(f)],
                  errors=report.errors, duration_ms=report.duration_ms, checks=report.checks)
