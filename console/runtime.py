"""What every `dbvitals` command shares: errors phrased for the user and their exit codes,
loading the config and the checks, running a report and writing it. Commands import this,
never console.cli, so that the parser can import the commands without a cycle."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from checks.actions.journal import Journal
from checks.config import ConfigError, load_config
from checks.fixes.locate import FindingIndex
from checks.fleet import SelectionError, discover, select
from checks.registry import UsageError, load_registry, validate_check_options
from checks.runner import Runner
from checks.tunnels import open_tunnels
from console.formats import render

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70
SEVERITIES = ("critical", "high", "medium", "low", "info", "never")


# What stops a command: Ctrl-C, `kill` (a service manager's stop) and a closed terminal.
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived while a command ran in `run_async`; whatever the command had
    started on a server has been finished or undone (or named as left behind) by then. The
    process exits 128 + the signal's number: 130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP."""

    def __init__(self, signum: int) -> None:
        import signal

        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class CliError(Exception):
    """A failure already phrased for the user; printed as one line, exit code `code`."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def require_terminal() -> None:
    """The console draws on a terminal and reads keys from one. Without (a CI job, `ssh host
    dbvitals`, a pipe) it would wait for keys that never come: say how to get a report instead."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise CliError("the console needs a terminal (standard input and output are not one); for a report, "
                       "run `dbvitals check --format text` (or json, sarif, junit, markdown)")


def load_settings(args: argparse.Namespace) -> Any:
    """The config, narrowed to --group/--tag, its SSH tunnels open, with discovered databases as
    targets of their own."""
    try:
        settings = load_config(getattr(args, "config", None))
        settings = select(settings, groups=getattr(args, "group", None) or (), tags=getattr(args, "tag", None) or ())
        settings, _ = open_tunnels(settings)  # closed when the process exits
    except (ConfigError, SelectionError) as exc:
        raise CliError(str(exc)) from None
    if any(t.databases is not None for t in settings.targets.values()):
        settings = run_async(discover(settings))
    return settings


def load_checks(settings: Any) -> Any:
    """The registry, with the config's per-check options validated against it."""
    registry = load_registry()
    for problem in registry.problems:
        print(f"dbvitals: warning: {problem}", file=sys.stderr)
    if settings is not None:
        try:
            validate_check_options(settings, registry)
        except ConfigError as exc:
            raise CliError(f"invalid config: {exc}") from None
    return registry


def run_async(coro: Any) -> Any:
    """Run a command's coroutine. SIGINT, SIGTERM and SIGHUP cancel it, once: an action under
    way gets its CancelledError where it waits, finishes or undoes what it started on the server
    (each within a bounded time) and journals it; then Interrupted is raised. Further signals
    while it puts things back are noted, not obeyed: the cleanup is bounded, and kill -9 remains."""
    import asyncio

    received: list[int] = []
    try:
        result = asyncio.run(_stoppable(coro, received))
    except BaseException as exc:
        if received and not isinstance(exc, Interrupted):
            raise Interrupted(received[0]) from None
        raise
    if received:  # the command caught the cancellation and put things back: it still stops
        raise Interrupted(received[0])
    return result


async def _stoppable(coro: Any, received: list[int]) -> Any:
    import asyncio
    import signal

    loop = asyncio.get_running_loop()
    task = asyncio.current_task()

    def on_signal(signum: int) -> None:
        name = signal.Signals(signum).name
        received.append(signum)
        if len(received) == 1:
            print(f"dbvitals: {name}: stopping; what was started on a server is finished or undone first",
                  file=sys.stderr, flush=True)
            if task is not None:
                task.cancel()
        else:
            print(f"dbvitals: {name}: still putting back what was started (bounded); kill -9 would leave it "
                  "half done", file=sys.stderr, flush=True)

    installed = []
    for name in STOP_SIGNALS:
        signum = getattr(signal, name)
        try:
            loop.add_signal_handler(signum, on_signal, signum)
        except (ValueError, RuntimeError, NotImplementedError):  # not the main thread
            continue
        installed.append(signum)
    try:
        return await coro
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


def run_report(settings: Any, registry: Any, *, targets: Any = None, checks: Any = None) -> Any:
    if not settings.targets:
        raise CliError("no targets configured (add a [targets.NAME] table; see config.example.toml)")
    try:
        runner = Runner(settings, registry, targets=targets, checks=checks)
    except UsageError as exc:
        raise CliError(str(exc)) from None
    report = run_async(runner.run())
    record_findings(settings, report)
    return report


def finding_index(settings: Any) -> Any:
    """Where this config's last report keeps its finding ids (beside the journal)."""
    state_dir = Journal.for_settings(settings).path.parent
    return FindingIndex.for_config(state_dir, settings.model_config.get("config_file"))


def record_findings(settings: Any, report: Any) -> None:
    """Remember where each finding of the report lives, so `dbvitals fix ID` runs one check on
    one target. A state directory that cannot be written costs that speed, not the report."""
    index = finding_index(settings)
    try:
        index.record(report)
    except OSError as exc:
        print(f"dbvitals: warning: cannot record the finding ids in {index.path}: {exc.strerror or exc}; "
              "`dbvitals fix` will need them as TARGET/CHECK/ID", file=sys.stderr)


def write_report(report: Any, fmt: str, output: str | None, **options: Any) -> None:
    color = output is None and sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    # Secrets are masked where they arise; render masks the report again, before it is serialized.
    text = render(report, fmt, color=color, **options)
    if output:
        try:
            with open(output, "w", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as exc:
            raise CliError(f"--output {output}: cannot write: {exc.strerror}") from None
    else:
        sys.stdout.write(text)
        sys.stdout.flush()

