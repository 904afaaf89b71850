"""The `dbvitals` command. `dbvitals --help` must answer without importing the drivers or the
Textual app: those load inside the code that uses them (a connector, `console.app`)."""

from __future__ import annotations

import argparse
import copy
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
    require_terminal,
    run_async,
    run_report,
    write_report,
)
from console.textwidth import WIDTH_VARIABLE, Column, print_fitted, write_message
from console.version import version

Handler = Callable[[argparse.Namespace], int]
EXIT_BROKEN_PIPE = 128 + 13  # as a shell reports a process ended by SIGPIPE
MIN_WIDTH = 40
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


def _width(text: str) -> int:
    if not text.isdigit() or int(text) < MIN_WIDTH:
        raise argparse.ArgumentTypeError(f"expected a number of columns, {MIN_WIDTH} or more")
    return int(text)


# Options of the whole run. They are accepted before the command, after it and after its action
# (`dbvitals snapshot save --config FILE` as well as `dbvitals --config FILE snapshot save`):
# people type them where they think of them. Given in two places, they are refused, not merged.
GLOBAL_OPTIONS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("--config", {"metavar": "PATH", "help": "config file (default: $DBVITALS_CONFIG, else ./dbvitals.toml)"}),
    ("--group", {"action": "append", "metavar": "NAME", "help": "only targets of this group (repeatable: any of them)"}),
    ("--tag", {"action": "append", "metavar": "K=V", "help": "only targets with this tag (repeatable: all of them)"}),
    ("--theme", {"metavar": "NAME", "help": "console theme (with no command, `ui` or `demo`)"}),
    ("--width", {"metavar": "N", "type": _width,
                 "help": "wrap text output at N columns (default: the terminal's; when piped, tables are 160 "
                         "columns, the report 120, and messages are not wrapped); also $DBVITALS_WIDTH"}),
)


def _global_dest(flag: str, depth: int) -> str:
    """Where a global option given at this depth (0: before the command) is parsed to."""
    name = flag.lstrip("-")
    return name if depth == 0 else f"{name}@{depth}"


def _add_global_options(parser: argparse.ArgumentParser, depth: int) -> None:
    group = parser.add_argument_group("global options (before or after the command)")
    for flag, options in GLOBAL_OPTIONS:
        # SUPPRESS below the top: a subcommand that is not given one leaves no attribute behind.
        group.add_argument(flag, dest=_global_dest(flag, depth), default=None if depth == 0 else argparse.SUPPRESS,
                           **options)


def _accept_global_options_below(parser: argparse.ArgumentParser, depth: int = 1) -> None:
    """Every command and every action of a command (`snapshot save`) takes the global options,
    and an action takes its command's own options too (`snapshot list --store FILE`)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            own = [a for a in parser._actions if a.option_strings and "@" not in a.dest
                   and not isinstance(a, (argparse._HelpAction, argparse._VersionAction))] if depth > 1 else []
            for subparser in dict.fromkeys(action.choices.values()):
                _add_global_options(subparser, depth)
                for option in own:
                    _accept_option(subparser, option, depth)
                _accept_global_options_below(subparser, depth + 1)


def _accept_option(parser: argparse.ArgumentParser, option: argparse.Action, depth: int) -> None:
    """`option` of a command, accepted after one of its actions too (unless the action has its own).
    Only an option whose default is None: there, a value is a value typed, so two are refused."""
    if option.default is not None or any(flag in parser._option_string_actions for flag in option.option_strings):
        return
    accepted = copy.copy(option)
    accepted.dest, accepted.default, accepted.required = f"{option.dest}@{depth}", argparse.SUPPRESS, False
    parser._add_action(accepted)


def _merge_positions(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """One value per option, wherever it was typed; refused when typed in two places."""
    placed: dict[str, list[Any]] = {}
    for key in [k for k in vars(args) if "@" in k]:
        placed.setdefault(key.split("@")[0], []).append(getattr(args, key))
        delattr(args, key)
    for name, values in placed.items():
        given = [value for value in [getattr(args, name, None), *values] if value is not None]
        if len(given) > 1:
            parser.error(f"--{name.replace('_', '-')} given in two places (before and after the command or its "
                         "action): give it once")
        setattr(args, name, given[0] if given else None)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dbvitals",
        description="Health checks and safe fixes for the PostgreSQL, MongoDB and Redis behind a service. "
        "With no command, opens the console.",
    )
    _add_global_options(parser, depth=0)
    parser.add_argument("--version", action="version", version=f"dbvitals {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = sub.add_parser("check", help="run checks headless and report (for CI and scripts)")
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
    catalog.add_argument("--format", default="text", choices=("text", "json"))
    catalog.set_defaults(handler=_cmd_checks)

    targets = sub.add_parser("targets", help="connect to every target and show its state")
    targets.add_argument("--format", default="text", choices=("text", "json"))
    targets.add_argument("--target", action="append", metavar="NAME", help="only this target (repeatable)")
    targets.set_defaults(handler=_cmd_targets)

    ui = sub.add_parser("ui", help="open the console (the default with no command)")
    ui.add_argument("--replay", metavar="FILE-or-LABEL",
                    help="open a recording (`dbvitals record`) instead of live targets; [ and ] step through time")
    ui.set_defaults(handler=_cmd_ui)

    for name, (module, help_text) in EXTRA_COMMANDS.items():
        extra = sub.add_parser(name, help=help_text)
        extra.set_defaults(handler=module.run, extra_module=module.__name__, open_console=open_console)
        module.add_arguments(extra)
    _accept_global_options_below(parser)
    return parser


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    _merge_positions(parser, args)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    if args.width:  # the tables and the report (and Rich) read COLUMNS, messages DBVITALS_WIDTH
        os.environ["COLUMNS"] = os.environ[WIDTH_VARIABLE] = str(args.width)
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
        return _output_closed()
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, no traceback
        if isinstance(exc, JournalError):  # a journal path that cannot be used: the user's to fix
            _error(str(exc))
            return EXIT_USAGE
        if os.environ.get("DBVITALS_DEBUG"):
            raise
        _error(f"internal error: {type(exc).__name__}: {mask_text(str(exc))} (set DBVITALS_DEBUG=1 for a traceback)")
        return EXIT_INTERNAL


def _output_closed() -> int:
    """The reader of standard output went away (`dbvitals check | head -c 1`): the report was not
    delivered whole, so the command fails, as a process killed by SIGPIPE would (141); a gate that
    lost its output never passes."""
    # Whatever is still buffered for the closed pipe goes nowhere, not into a second error at exit.
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # a stand-in stdout without a file descriptor: nothing buffered there
        pass
    _error("standard output was closed before the output was written whole (broken pipe)")
    return EXIT_BROKEN_PIPE


def _error(message: str) -> None:
    # mask_text also masks every secret of the loaded config, however it got into the message;
    # a name from a database in it is shown terminal-safe.
    write_message(f"dbvitals: error: {mask_text(terminal_safe(message, keep_newlines=True))}", sys.stderr)


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
        require_terminal()  # after the recording is read: a wrong file is said first
    else:
        require_terminal()  # before any target is connected to
        settings = load_settings(args)
    return open_console(settings, theme=args.theme, config_path=args.config, replay=replay)


def _settings_for_replay(args: argparse.Namespace) -> Any:
    """A recording file opens without a config (on another machine, say); a label needs one."""
    from pathlib import Path

    if Path(args.replay).expanduser().is_file() and not getattr(args, "config", None) \
            and not os.environ.get("DBVITALS_CONFIG") and not Path("dbvitals.toml").exists():
        return Settings(targets={})
    return load_settings(args)
