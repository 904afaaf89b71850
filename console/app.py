"""The dbvitals console: a Textual app for on-call use over SSH.

The App is thin: it composes, installs the screens and the theme, and hands every message to
its controller (console/controller.py), which keeps the state (targets, findings, budgets,
replay), runs the workers (checks, probes) and performs the actions (fix, undo, cancel,
terminate through checks.actions, export). Screens receive the controller to read state and
post messages (console/messages.py) to act; their keys are registered in console/keys.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from checks.config import Settings
from checks.display import terminal_safe
from checks.model import Finding, Severity, TargetStatus
from checks.registry import Registry
from checks.secrets import mask_text
from console.controller import Controller
from console.keys import key_sections
from console.messages import (
    ApplyFix,
    CheckCompleted,
    ConnectionsMeasured,
    CopyEvidence,
    CopyFix,
    ExportFindings,
    OpenActivity,
    OpenFinding,
    RerunTarget,
    StopSession,
    TargetRunFinished,
    TargetStatusChanged,
    UndoEntry,
)
from console.replay import Replay
from console.screens.fix_progress import FixProgressModal
from console.screens.help import HelpScreen
from console.screens.main import MainScreen
from themes import DEFAULT_THEME, FALLBACK_VARIABLES, load_themes

# How often each target's connection is probed between full runs, so a target that goes
# away mid-session shows as down within this many seconds (plus its connect timeout). A probe
# is one connect and close: cheap enough to run often.
PROBE_INTERVAL = 10.0


class DbVitalsApp(App[None]):
    """Composes the console, installs its screens and theme, and turns messages into calls on
    its controller (console/controller.py), which holds the state, the workers and the actions."""

    CSS_PATH = "app.tcss"
    TITLE = "dbvitals"
    BINDINGS = [
        Binding("left_square_bracket", "replay_step(-1)", "Prev", tooltip="Replaying (ui --replay): the snapshot before"),
        Binding("right_square_bracket", "replay_step(1)", "Next", tooltip="Replaying (ui --replay): the snapshot after"),
        Binding("question_mark", "help", "Keys", tooltip="Every key, on every screen"),
        Binding("q", "quit", "Quit", tooltip="Quit (on another screen: back)"),
        Binding("r", "rerun_all", "Re-run", show=False, tooltip="Re-run every check on every target"),
        Binding("h", "history", "History", show=False, tooltip="The journal: every fix, undo, cancel and terminate; u undoes one"),
        Binding("ctrl+p", "command_palette", "Palette", show=False, tooltip="The command palette"),
    ]

    def __init__(
        self,
        settings: Settings,
        *,
        registry: Registry | None = None,
        theme: str | None = None,
        config_path: str | None = None,
        run_on_start: bool = True,
        probe_interval: float | None = PROBE_INTERVAL,
        user_theme_dir: Path | None = None,
        clock: Callable[[], float] = time.time,
        replay: Replay | None = None,
    ) -> None:
        super().__init__()
        # Over SSH an animated scroll takes most of a second to settle: every move is instant.
        self.animation_level = "none"
        if config_path:
            self.sub_title = Path(config_path).name
        self.controller = Controller(
            self, settings, registry=registry,
            config_path=str(Path(config_path).resolve()) if config_path else None,
            # In a replay the ages are the recording's: how long ago each snapshot was taken.
            clock=clock, replay=replay,
            on_target_changed=self._target_changed, on_findings_changed=self._findings_changed,
        )
        # A replay shows what was recorded: nothing runs, nothing is probed.
        self.run_on_start = run_on_start and replay is None
        self.probe_interval = probe_interval if replay is None else None
        self.main_screen = MainScreen(self.controller)
        found = load_themes(user_theme_dir)
        for custom in found.themes.values():
            self.register_theme(custom)
        self.startup_problems = list(found.problems)
        wanted = theme or settings.theme or DEFAULT_THEME
        if wanted not in self.available_themes:
            self.startup_problems.append(
                f'theme "{wanted}" not found; using {DEFAULT_THEME} (built in: dbvitals-dark, dbvitals-light, '
                "dbvitals-high-contrast; yours go in $XDG_CONFIG_HOME/dbvitals/themes/*.toml)"
            )
            wanted = DEFAULT_THEME
        self.theme = wanted

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = True) -> None:
        """Every toast shows names and server errors as data: control characters escaped, secrets
        masked, and no Rich markup read from them."""
        super().notify(mask_text(terminal_safe(message)), title=mask_text(terminal_safe(title)),
                       severity=severity, timeout=timeout, markup=False)

    def get_theme_variable_defaults(self) -> dict[str, str]:
        # Textual's own themes (chosen from the palette) lack our variables: fall back.
        return dict(FALLBACK_VARIABLES)

    def get_default_screen(self) -> Screen:
        return self.main_screen

    def on_mount(self) -> None:
        for problem in self.startup_problems:
            self.notify(problem, title="Theme", severity="warning", timeout=12)
        if not self.controller.targets:
            self.notify("No targets configured: add a [targets.NAME] table (see config.example.toml).",
                        severity="warning", timeout=30)
        if self.controller.replay is not None:
            self.call_after_refresh(self.controller.show_replay)
        if self.run_on_start:
            # After the first frame: the screen is usable before any check has started.
            self.call_after_refresh(self.controller.rerun_all)
        if self.probe_interval:
            self.set_interval(self.probe_interval, self.controller.probe_all)
        recheck = self.controller.settings.recheck_every.total_seconds()
        if recheck and self.run_on_start:
            self.set_interval(recheck, self.controller.recheck_all)
        # The age of every target's last answer, redrawn each second.
        self.set_interval(1.0, self.main_screen.tick)

    def ingest(self, statuses: Iterable[TargetStatus], findings: Iterable[Finding]) -> None:
        """Known results shown without running anything (demos, tests, bench/console_findings.py)."""
        self.controller.ingest(statuses, findings)

    # --- what the controller changed, redrawn ------------------------------------------------

    def _target_changed(self, name: str) -> None:
        self.main_screen.show_target(self.controller.targets[name])

    def _findings_changed(self, name: str) -> None:
        if name in self.controller.targets:
            self._target_changed(name)
        self.main_screen.schedule_refresh()

    # --- messages from the workers -------------------------------------------------------------

    def on_target_status_changed(self, message: TargetStatusChanged) -> None:
        self.controller.target_status(message.status, probe=message.probe)

    def on_check_completed(self, message: CheckCompleted) -> None:
        self.controller.check_completed(message.result)

    def on_target_run_finished(self, message: TargetRunFinished) -> None:
        self.controller.target_run_finished(message.target, message.checks, message.error)

    def on_connections_measured(self, message: ConnectionsMeasured) -> None:
        self.controller.connections_measured(message.target, message.used, message.allowed)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR:
            self.controller.worker_failed(event.worker)

    # --- messages from the screens -------------------------------------------------------------

    def on_open_finding(self, message: OpenFinding) -> None:
        self.controller.open_finding(message.finding)

    def on_apply_fix(self, message: ApplyFix) -> None:
        self.controller.start_fix(message.finding)

    def on_copy_fix(self, message: CopyFix) -> None:
        self.controller.copy_fix(message.finding)

    def on_copy_evidence(self, message: CopyEvidence) -> None:
        self.controller.copy_evidence(message.finding)

    def on_rerun_target(self, message: RerunTarget) -> None:
        self.controller.run_target(message.target)

    def on_open_activity(self, message: OpenActivity) -> None:
        self.controller.open_activity(message.target)

    def on_export_findings(self, message: ExportFindings) -> None:
        self.controller.export(message.findings, message.description, message.fmt)

    def on_undo_entry(self, message: UndoEntry) -> None:
        self.controller.start_undo(message.entry_id)

    def on_stop_session(self, message: StopSession) -> None:
        self.controller.start_kill(message.target, message.watch, message.sample, message.ident, message.terminate)

    # --- the keys bound everywhere ---------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "replay_step":
            return self.controller.replaying
        if action in {"rerun_all", "history"}:  # a replay runs nothing and applies nothing
            return not self.controller.replaying
        return True

    async def action_quit(self) -> None:
        # Quitting mid-fix would leave its journal entry unfinished and its outcome unseen.
        if self.controller.action_running() and isinstance(self.screen, FixProgressModal):
            self.notify("A fix is running and cannot be stopped midway: wait for its outcome.", severity="warning")
            return
        await super().action_quit()

    def action_help_quit(self) -> None:
        # Textual's own says it in markup, which this app's toasts show as typed (they never read
        # markup: names from databases go into them).
        self.notify("Press ctrl+q to quit", title="Do you want to quit?")

    def action_rerun_all(self) -> None:
        self.controller.rerun_all()

    def action_replay_step(self, by: int) -> None:
        self.controller.replay_step(by)

    def action_history(self) -> None:
        self.controller.open_history()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(key_sections(self), type(self.screen)))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        controller = self.controller
        if not controller.replaying:
            yield SystemCommand("Re-run all checks", "Run every check on every target again (r)", controller.rerun_all)
            for name in controller.targets:
                yield SystemCommand(f"Re-run {name}", f"Run the checks on {name} again (R)",
                                    partial(controller.run_target, name))
        for severity in Severity:
            yield SystemCommand(
                f"Show only {severity.value} findings", "Filter the findings table by severity",
                partial(self.main_screen.filter_on, "severity", {severity.value}),
            )
        yield SystemCommand("Clear filters", "Show every finding (x)", self.main_screen.action_clear_filters)
        yield SystemCommand("Export findings as JSON", "The findings shown, to a file you name (e)",
                            partial(self.main_screen.action_export, "json"))
        yield SystemCommand("Export findings as Markdown", "The findings shown, to a file you name (e)",
                            partial(self.main_screen.action_export, "markdown"))
        if not controller.replaying:
            yield SystemCommand("Fix history", "Every fix applied, from the journal (h)", controller.open_history)
        yield SystemCommand("Help", "Every key binding (?)", self.action_help)
        yield from super().get_system_commands(screen)


def run_app(settings: Settings, *, theme: str | None = None, config_path: str | None = None,
            replay: Replay | None = None) -> int:
    app = DbVitalsApp(settings, theme=theme, config_path=config_path, replay=replay)
    app.run()
    return app.return_code or 0
