"""`dbvitals migration FILE...`: judge a migration against the live PostgreSQL before it runs.

The files are read in order as one migration and split by PostgreSQL's own parser. The migration
is never executed: the target is only read (catalog and statistics), in the usual read-only
session with statement and lock timeouts."""

from __future__ import annotations

import argparse
import shutil
import sys
from typing import Any

# A PostgreSQL-only command: its analysis is the PostgreSQL engine's (an allowed exception in the
# import contracts, like the MongoDB profiler).
from checks.display import terminal_safe
from checks.postgres.migration.analyze import SEVERITY_ORDER, gate_severity
from checks.postgres.migration.parse import MigrationSyntaxError, read_files
from checks.postgres.migration.run import TargetChoiceError, analyse, choose_target, scratch_url
from checks.secrets import known_secrets, mask_text
from console.formats.migration_report import render
from console.runtime import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, SEVERITIES, CliError, load_settings, run_async


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "For each statement: the lock it takes on each table (named as in the PostgreSQL manual) and what it "
        "blocks, whether it rewrites or scans the table under that lock, an estimate from the live table's "
        "size, who it would queue behind now, and findings with the safer way. Never executes the migration. "
        f"Exit codes: 0 fine; {EXIT_FINDINGS} a finding reaches --fail-on or the analysis did not complete; "
        f"{EXIT_USAGE} usage errors, unparseable SQL included."
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="SQL files, read in order as one migration")
    parser.add_argument("--target", metavar="NAME", help="the PostgreSQL target (needed when several are configured)")
    parser.add_argument("--scratch", metavar="URL",
                        help="a PostgreSQL database dbvitals may empty and reuse: the target's schema (no data) is "
                        "copied there, the migration applied, and the schema checks' new findings reported under "
                        "`after` (default: the target's migration_scratch)")
    parser.add_argument("--format", default="text", choices=("text", "json", "sarif", "junit", "markdown"))
    parser.add_argument("--fail-on", default="high", choices=SEVERITIES, metavar="SEVERITY",
                        help="exit 1 when a finding is at least this severe: critical, high (default), medium, "
                        "low, info, never")
    parser.add_argument("--output", metavar="FILE", help="write the report here instead of stdout")


def run(args: argparse.Namespace) -> int:
    try:
        statements = read_files(args.files)  # parse before connecting: a syntax error costs nothing
    except MigrationSyntaxError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"{exc.filename}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise CliError(f"cannot read a file as UTF-8: {exc}") from None
    settings = load_settings(args)
    try:
        name = choose_target(settings, args.target)
    except TargetChoiceError as exc:
        raise CliError(str(exc)) from None
    target = settings.targets[name]
    scratch = args.scratch or target.migration_scratch
    if args.scratch:
        try:
            scratch_url(args.scratch)
        except ValueError as exc:
            raise CliError(f"--scratch: {exc}") from None
    doc = run_async(analyse(target, name, args.files, statements, scratch))
    return _finish(doc, args)


def _finish(doc: dict[str, Any], args: argparse.Namespace) -> int:
    width = 80
    if args.format == "text" and not args.output:
        width = min(shutil.get_terminal_size((80, 24)).columns, 120)
    text = render(doc, args.format, width=width)
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as exc:
            raise CliError(f"--output {args.output}: cannot write: {exc.strerror}") from None
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    if doc["errors"]:
        for error in doc["errors"]:
            print(f"dbvitals: {terminal_safe(mask_text(error, known_secrets()))}", file=sys.stderr)
        return EXIT_FINDINGS
    worst = gate_severity(doc["statements"], doc["after"])
    if args.fail_on == "never" or worst is None:
        return EXIT_OK
    reaches = SEVERITY_ORDER.index(worst) >= SEVERITY_ORDER.index(args.fail_on)
    return EXIT_FINDINGS if reaches else EXIT_OK
