"""The `dbvitals` command. `dbvitals --help` must answer without importing the drivers or the
Textual app: those load inside the code that uses them (a connector, `console.app`)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from checks.catalog_cache import catalog
from checks.config import Settings
from checks.display import terminal_safe
from checks.registry import UsageError, load_registry
from checks.runner import Runner, select_targets
from checks.secrets import mask_text, mask_tree
from checks.snapshots.store import SnapshotError
from console.commands import (
    activity,
    baseline,
    demo,
    diff,
    fix,
    history,
    init,
    migration,
    profiler,
    record,
    serve,
    snapshot,
    undo,
)
from console.formats import FORMATS
from console.gate import exit_code, failing, gate
from console.replay import open_replay
from checks.actions.journal import JournalError
from console.runtime import (
    EXIT_FINDINGS,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_USAGE,
    SEVERITIES,
    CliError,
    load_checks,
    load_settings,
    run_async,
    run_report,
    write_report,
)
from console.textwidth import Column, print_fitted
from console.version import version

Handler = Callable[[argparse.Namespace], int]
# Subcommands other modules add (fix, history, undo, baseline, demo): name -> (module, help).
# Each module has `add_arguments(parser)` and `run(args) -> int`.
EXTRA_COMMANDS: dict[str, tuple[ModuleType, str]] = {
    "init": (init, "write the starter config (every key documented) where dbvitals finds it"),
    "demo": (demo, "a local playground with real problems, then the console"),
    "fix": (fix, "apply a finding's fix: re-check, confirm, apply, verify, journal"),
    "undo": (undo, "apply the inverse of a journaled fix"),
    "history": (history, "list the journal: every fix, undo, cancel and terminate"),
    "baseline": (baseline, "record current findings so the gate fails only on new ones"),
    "profiler": (profiler, "show the MongoDB profiler, or turn it on for a while and restore it"),
    "activity": (activity, "what is running now: sessions, blocking, operations, slow commands"),
    "snapshot": (snapshot, "store the findings and figures now, list, show or prune snapshots"),
    "diff": (diff, "what changed between two snapshots (or a snapshot and now)"),
    "record": (record, "take snapshots on a schedule, with bounded retention, for replay"),
    "serve": (serve, "a Prometheus exporter: /metrics and /probe?target=NAME"),
    "migration": (migration, "judge a migration file against the live PostgreSQL before it runs"),
}


def _common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    default = None if top else argparse.SUPPRESS
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=default,
        help="config file (default: $DBVITALS_CONFIG, else ./dbvitals.toml)",
    )
    parser.add_argument("--group", action="append", metavar="NAME", default=None if top else argparse.SUPPRESS,
                        help="only targets of this group (repeatable: any of them)")
    parser.add_argument("--tag", action="append", metavar="K=V", default=None if top else argparse.SUPPRESS,
                        help="only targets with this tag (repeatable: all of them)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dbvitals",
        description="Health checks and safe fixes for the PostgreSQL, MongoDB and Redis behind a service. "
        "With no command, opens the console.",
    )
    _common(parser, top=True)
    parser.add_argument("--theme", help="console theme (with no command or `ui`)")
    parser.add_argument("--version", action="version", version=f"dbvitals {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = sub.add_parser("check", help="run checks headless and report (for CI and scripts)")
    _common(check, top=False)
    check.add_argument("--target", action="append", metavar="NAME", help="only this target (repeatable)")
    check.add_argument("--check", action="append", metavar="ID", help="only checks matching this id or glob (repeatable)")
    check.add_argument("--format", default="text", metavar="FORMAT", help="text (default), json, sarif, junit or markdown")
    check.add_argument("--baseline", metavar="FILE", help="report every finding, fail only on those not in FILE (`dbvitals baseline save`)")
    check.add_argument(
        "--fail-on",
        default="high",
        choices=SEVERITIES,
        metavar="SEVERITY",
        help="exit 1 when a finding is at least this severe: critical, high (default), medium, low, info, never",
    )
    check.add_argument(
        "--allow-partial",
        action="store_true",
        help="do not fail on a check cut short by its time budget or sample cut-off (outcome partial); "
        "by default one fails the gate whatever --fail-on says",
    )
    check.add_argument("--output", metavar="FILE", help="write the report to FILE instead of standard output")
    check.set_defaults(handler=_cmd_check)

    catalog = sub.add_parser("checks", help="list every available check")
    _common(catalog, top=False)
    catalog.add_argument("--format", default="text", choices=("text", "json"))
    catalog.set_defaults(handler=_cmd_checks)

    targets = sub.add_parser("targets", help="connect to every target and show its state")
    _common(targets, top=False)
    targets.add_argument("--format", default="text", choices=("text", "json"))
    targets.add_argument("--target", action="append", metavar="NAME", help="only this target (repeatable)")
    targets.set_defaults(handler=_cmd_targets)

    ui = sub.add_parser("ui", help="open the console (the default with no command)")
    _common(ui, top=False)
    ui.add_argument("--theme", help="console theme", default=argparse.SUPPRESS)
    ui.add_argument("--replay", metavar="FILE-or-LABEL",
                    help="open a recording (`dbvitals record`) instead of live targets; [ and ] step through time")
    ui.set_defaults(handler=_cmd_ui)

    for name, (module, help_text) in EXTRA_COMMANDS.items():
        extra = sub.add_parser(name, help=help_text)
        _common(extra, top=False)
        extra.set_defaults(handler=module.run, extra_module=module.__name__, open_console=open_console)
        module.add_arguments(extra)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = getattr(args, "handler", _cmd_ui)
    try:
        return handler(args)
    except CliError as exc:
        _error(str(exc))
        return exc.code
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", 2)  # runtime.Interrupted: SIGTERM, SIGHUP or SIGINT
        _error("interrupted" if signum == 2 else f"stopped by {exc}")
        return 128 + signum
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, no traceback
        if isinstance(exc, JournalError):  # a journal path that cannot be used: the user's to fix
            _error(str(exc))
            return EXIT_USAGE
        if os.environ.get("DBVITALS_DEBUG"):
            raise
        _error(f"internal error: {type(exc).__name__}: {mask_text(str(exc))} (set DBVITALS_DEBUG=1 for a traceback)")
        return EXIT_INTERNAL


def _error(message: str) -> None:
    # mask_text also masks every secret of the loaded config, however it got into the message;
    # a name from a database in it is shown terminal-safe.
    print(f"dbvitals: error: {mask_text(terminal_safe(message, keep_newlines=True))}", file=sys.stderr)


def _cmd_check(args: argparse.Namespace) -> int:
    if args.format not in FORMATS:
        raise CliError(f"--format {args.format}: expected one of {', '.join(FORMATS)}")
    settings = load_settings(args)
    registry = load_checks(settings)
    report = run_report(settings, registry, targets=args.target, checks=args.check)
    report = gate(report, settings, args)  # suppressions, expired ones, --baseline
    write_report(report, args.format, args.output)
    return exit_code(failing(report), args.fail_on, allow_partial=args.allow_partial)


def _cmd_checks(args: argparse.Namespace) -> int:
    import json

    def load() -> Any:  # only on a cache miss: importing the engine and every check is the slow part
        return load_registry()

    entries, problems = catalog(load)
    for problem in problems:
        print(f"dbvitals: warning: {problem}", file=sys.stderr)
    if args.format == "json":
        doc = {"schema": "dbvitals.catalog/1", "checks": entries, "problems": problems}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return EXIT_OK
    columns = [Column("id", 9, words=False), Column("engine", 2), Column("severity", 5), Column("fix", 4),
               Column("title", 9)]
    print_fitted(columns, [[e["id"], e["engine"], e["severity"], e["fix"], e["title"]] for e in entries])
    return EXIT_OK


def _cmd_targets(args: argparse.Namespace) -> int:
    import json

    settings = load_settings(args)
    try:
        names = select_targets(settings, args.target)
        # The runner, with only the connection checks: the per-server session budget and the
        # free-slot floor hold for `targets` as for `check` (50 targets of one server are 2 sessions).
        runner = Runner(settings, load_checks(settings), targets=names, checks=["*.connection"])
    except UsageError as exc:
        raise CliError(str(exc)) from None

    statuses = run_async(runner.run()).targets
    if args.format == "json":
        doc = {"schema": "dbvitals.targets/1", "targets": [s.to_dict() for s in statuses]}
        sys.stdout.write(json.dumps(mask_tree(doc), indent=2) + "\n")
    else:
        columns = [Column("target", 9, words=False), Column("kind", 6), Column("environment", 3),
                   Column("state", 9, words=False), Column("latency", 5), Column("version", 2), Column("role", 1),
                   Column("url", 4, words=False), Column("error", 7)]
        print_fitted(columns, [[mask_text(terminal_safe(cell)) for cell in (
            s.name, s.kind, s.environment or "", s.state.value,
            "" if s.latency_ms is None else f"{s.latency_ms:.1f} ms",
            s.server_version or "", s.role or "", s.url, s.error or "",
        )] for s in statuses])
    return EXIT_OK if all(s.reachable for s in statuses) else EXIT_FINDINGS


def open_console(settings: Settings, *, theme: str | None = None, config_path: str | None = None,
                 replay: Any = None) -> int:
    """Run the Textual console. Textual is imported here, when the console opens: `--help` and the
    headless commands never load it."""
    from console.app import run_app

    return run_app(settings, theme=theme, config_path=config_path, replay=replay)


def _cmd_ui(args: argparse.Namespace) -> int:
    replay = None
    if getattr(args, "replay", None):
        settings = _settings_for_replay(args)
        try:
            replay = open_replay(args.replay, settings)
        except SnapshotError as exc:
            raise CliError(str(exc)) from None
    else:
        settings = load_settings(args)
    return open_console(settings, theme=getattr(args, "theme", None), config_path=getattr(args, "config", None),
                        replay=replay)


def _settings_for_replay(args: argparse.Namespace) -> Any:
    """A recording file opens without a config (on another machine, say); a label needs one."""
    from pathlib import Path

    if Path(args.replay).expanduser().is_file() and not getattr(args, "config", None) \
            and not os.environ.get("DBVITALS_CONFIG") and not Path("dbvitals.toml").exists():
        return Settings(targets={})
    return load_settings(args)
