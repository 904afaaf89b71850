"""`dbvitals demo`: a local playground with real problems, then the console (or a report)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from console.demo.seed import demo_config, seed_all
from console.demo.servers import DemoError, DemoRefused, Playground, start_playground
from console.demo.toml_writer import dumps
from console.gate import exit_code
from console.runtime import CliError, load_checks, load_settings, require_terminal, run_report, write_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Start disposable PostgreSQL, Redis and MongoDB-compatible (SecantusDB) servers on free loopback "
        "ports, seed them with an application that has real problems, and open the console on them. "
        "Quitting stops the servers and removes their data."
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--headless", action="store_true", help="print a report instead of opening the console")
    mode.add_argument("--keep", action="store_true", help="leave the servers running and print the config path")
    mode.add_argument("--stop", metavar="DIR",
                      help="stop a playground left by --keep and remove its data (only one dbvitals started)")
    parser.add_argument("--format", default="text", help="report format with --headless (default text)")
    parser.add_argument("--dir", metavar="DIR",
                        help="where the servers keep their data: a new or empty directory (default: a new temp dir)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    if args.stop is not None:
        # Only what dbvitals can show it started: see console/demo/ownership.py.
        try:
            playground = Playground.verified(args.stop)
        except DemoRefused as exc:
            raise CliError(f"demo --stop {args.stop}: refused: {exc}; nothing was stopped or removed") from None
        for line in playground.stop():
            print(line)
        return 0
    if not (args.keep or args.headless):
        require_terminal()  # before any server starts: the console is what this run is for
    try:
        playground, config_path = create_demo(Path(args.dir) if args.dir else None, progress=_say,
                                                  keep=args.keep)
    except DemoError as exc:
        raise CliError(f"demo: {exc}") from None
    if args.keep:
        print(f"demo servers running; config: {config_path}")
        print(f"  dbvitals --config {config_path}")
        print(f"  dbvitals demo --stop {playground.directory}")
        return 0
    try:
        if args.headless:
            return _headless(config_path, args.format)
        return _console(args.open_console, config_path, getattr(args, "theme", None))
    finally:
        _say("stopping the demo servers")
        playground.stop()


def _say(message: str) -> None:
    import sys

    print(f"demo: {message}", file=sys.stderr, flush=True)


def create_demo(directory: Any = None, *, progress: Any = None, keep: bool = False) -> tuple[Any, Any]:
    """Start and seed the playground (with `keep`, its servers outlive this process); return it
    with the path of the config written for it."""
    import asyncio
    import tempfile
    from pathlib import Path

    say = progress or (lambda _message: None)
    directory = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="dbvitals-demo-"))
    say(f"starting PostgreSQL, Redis and SecantusDB in {directory}")
    playground = start_playground(directory, keep=keep)
    directory = playground.directory  # its real path
    try:
        say("seeding users, wallets, transactions, posts, votes, follows, sessions, rate limits and feeds")
        urls = (playground.url("postgres"), playground.url("mongodb"), playground.url("redis"))
        asyncio.run(seed_all(*urls))
        config_path = directory / "dbvitals-demo.toml"
        config = demo_config(*urls)
        # The demo's fixes are journaled beside its servers, never in the user's own journal,
        # and vanish with them.
        config["journal"] = str(directory / "journal.jsonl")
        config_path.write_text("# Written by `dbvitals demo`: disposable servers, fixes allowed.\n" + dumps(config))
    except BaseException:
        playground.stop()
        raise
    return playground, config_path


def _headless(config_path: Any, fmt: str) -> int:
    args = argparse.Namespace(config=str(config_path))
    settings = load_settings(args)
    report = run_report(settings, load_checks(settings))
    write_report(report, fmt, None)
    # The same verdict as `dbvitals check` with its default gate, which the report states.
    return exit_code(report, "high")


def _console(open_console: Callable[..., int], config_path: Any, theme: str | None = None) -> int:
    """Open the console on the playground. The CLI hands in how (console.cli.open_console): the
    console imports the commands, so a command does not import the console back."""
    settings = load_settings(argparse.Namespace(config=str(config_path)))
    return open_console(settings, theme=theme, config_path=str(config_path))
