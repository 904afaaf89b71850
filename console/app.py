"""The dbvitals console: a Textual app for on-call use over SSH.

Checks run in async workers, one per target, each in its own exclusive group: a slow or
dead target delays nobody else, and re-running one target cancels only its own previous
run. Workers never touch widgets; they post messages (console/messages.py) that the app
folds into its state and the screens redraw from.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any, cast

from rich.markup import escape
from textual.app import App, SystemCommand
from textual.notifications import SeverityLevel
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from checks.actions.journal import Journal
from checks.actions.kill import plan_kill, work_text
from checks.actions.pipeline import ActionRefused, Outcome, perform
from checks.activity import ActivitySample
from checks.budget import ServerBudgets
from checks.config import ConfigError, Settings
from checks.registry import Registry, load_registry, validate_check_options
from checks.runner import Runner
from checks.model import CheckError, Finding, FixSafety, Severity, TargetStatus
from checks.display import terminal_safe
from checks.secrets import mask_text
from console.replay import Replay
from console.messages import CheckCompleted, ConnectionsMeasured, TargetRunFinished, TargetStatusChanged
from console.screens.activity import ActivityScreen
from console.screens.confirm_fix import Confirmation, ConfirmFixModal
from console.screens.detail import FindingDetailScreen
from console.screens.export import ExportModal, default_path, write_export
from console.screens.fix_progress import FixProgressModal
from console.screens.help import HelpScreen
from console.screens.history import FixHistoryScreen, HistoryEntryScreen
from console.screens.main import MainScreen
from console.widgets.finding_store import FindingFilter, FindingStore
from console.widgets.findings_table import FindingsTable
from console.widgets.fix_view import fix_text
from console.widgets.targets_table import TargetRow
from themes import DEFAULT_THEME, FALLBACK_VARIABLES, load_themes

# How often each target's connection is probed between full runs, so a target that goes
# away mid-session shows as down within this many seconds (plus its connect timeout). A probe
# is one connect and close: cheap enough to run often.
PROBE_INTERVAL = 10.0

def replay_clock() -> float:
    return 0.0


class DbVitalsApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "dbvitals"
    BINDINGS = [
        Binding("left_square_bracket", "replay_step(-1)", "Prev", tooltip="Replay: the snapshot before"),
        Binding("right_square_bracket", "replay_step(1)", "Next", tooltip="Replay: the snapshot after"),
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
        self.settings = settings
        self.registry = registry
        self.config_path = str(Path(config_path).resolve()) if config_path else None
        if config_path:
            self.sub_title = Path(config_path).name
        self.replay = replay
        # Wall-clock seconds; tests fix it so ages do not change between runs. A replay shows
        # each recorded moment as it was: its answers are as fresh as they were then.
        self.clock = replay_clock if replay is not None else clock
        # A replay shows what was recorded: nothing runs, nothing is probed.
        self.run_on_start = run_on_start and replay is None
        self.probe_interval = probe_interval if replay is None else None
        self.store = FindingStore()
        # One session budget per server for the app's lifetime: targets re-run one by one share it.
        self.budgets = ServerBudgets()
        self.targets = {
            name: TargetRow(name, t.kind, t.environment, t.is_production) for name, t in settings.targets.items()
        }
        for snapshot in replay.snapshots if replay else ():
            for status in snapshot.targets:  # a recorded target since removed from the config
                if status.name not in self.targets:
                    self.targets[status.name] = TargetRow(status.name, status.kind, status.environment,
                                                          (status.environment or "").lower() == "production")
        self.check_errors: dict[tuple[str, str], CheckError] = {}
        self._probing: set[str] = set()
        self.fix_notes: dict[str, str] = {}
        self.main_screen = MainScreen()
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
        if not self.targets:
            self.notify("No targets configured: add a [targets.NAME] table (see config.example.toml).",
                        severity="warning", timeout=30)
        if self.replay is not None:
            self.call_after_refresh(self.show_replay)
        if self.run_on_start:
            # After the first frame: the screen is usable before any check has started.
            self.call_after_refresh(self.action_rerun_all)
        if self.probe_interval:
            self.set_interval(self.probe_interval, self.probe_all)
        # The age of every target's last answer, redrawn each second.
        self.set_interval(1.0, self._tick)

    def _tick(self) -> None:
        from console.widgets.targets_table import TargetsTable

        for table in self.main_screen.query(TargetsTable):  # none while the app shuts down
            table.tick()

    # --- running checks --------------------------------------------------------------------

    def ensure_registry(self) -> Registry | None:
        if self.registry is None:
            registry = load_registry()
            for problem in registry.problems:
                self.notify(problem, title="Plugin", severity="warning", timeout=15)
            try:
                validate_check_options(self.settings, registry)
            except ConfigError as exc:
                self.notify(str(exc), title="Invalid config", severity="error", timeout=30)
                return None
            self.registry = registry
        return self.registry

    def action_rerun_all(self) -> None:
        for name in self.targets:
            self.run_target(name)

    def run_target(self, name: str) -> None:
        if name not in self.targets or self.ensure_registry() is None:
            return
        self.targets[name].running = True
        self._show_target(name)
        self.run_worker(self._check_target(name), name=f"checks on {name}", group=f"target-{name}",
                        exclusive=True, exit_on_error=False)

    async def _check_target(self, name: str) -> None:
        assert self.registry is not None  # run_target loaded it before starting this worker
        runner = Runner(
            self.settings,
            self.registry,
            targets=[name],
            on_target=lambda status: self.post_message(TargetStatusChanged(status)),
            on_result=lambda result: self.post_message(CheckCompleted(result)),
            budgets=self.budgets,
        )
        try:
            report = await runner.run()
        except Exception as exc:  # reported on the row; the other targets go on
            message = mask_text(f"{type(exc).__name__}: {exc}", self.settings.targets[name].secret_values())
            self.post_message(TargetRunFinished(name, frozenset(), error=message))
            return
        self.post_message(TargetRunFinished(name, frozenset(c["check"] for c in report.checks)))
        if report.targets and report.targets[0].reachable:
            await self._measure(name)

    async def _measure(self, name: str) -> None:
        from checks.engines import adapter_for
        from checks.connectors import connect

        target = self.settings.targets[name]
        async with self.budgets.for_target(name, self.settings):
            try:
                connection = await asyncio.wait_for(connect(name, target), target.timeout * 2 + 2)
            except TimeoutError:
                return  # the figure stays unknown; the next run tries again
            try:
                if connection.session is not None:
                    used, allowed = await asyncio.wait_for(
                        adapter_for(target.kind).measure_connections(connection.session), target.timeout
                    )
                    self.post_message(ConnectionsMeasured(name, used, allowed))
            except Exception:  # a figure we cannot read stays "?", it is not an incident
                pass
            finally:
                await connection.close()

    def probe_all(self) -> None:
        for name, row in self.targets.items():
            if not row.running:
                self.probe(name)

    def probe(self, name: str) -> None:
        if name in self._probing:  # one probe in flight per target is enough
            return
        self._probing.add(name)
        self.run_worker(self._probe(name), name=f"probe {name}", group=f"probe-{name}", exit_on_error=False)

    async def _probe(self, name: str) -> None:
        from checks.connectors import connect, failed

        target = self.settings.targets[name]
        try:
            async with self.budgets.for_target(name, self.settings):
                try:
                    connection = await asyncio.wait_for(connect(name, target), target.timeout * 2 + 2)
                except TimeoutError as exc:
                    connection = failed(name, target, exc)
                await connection.close()
        finally:
            self._probing.discard(name)
        self.post_message(TargetStatusChanged(connection.status, probe=True))

    def running_targets(self) -> set[str]:
        return {name for name, row in self.targets.items() if row.running}

    # --- folding results into state --------------------------------------------------------

    def on_target_status_changed(self, message: TargetStatusChanged) -> None:
        status = message.status
        row = self.targets.get(status.name)
        if row is None:
            return
        before = row.status
        row.status = status
        row.answered_at = self.clock()
        self._show_target(status.name)
        if before is None or before.reachable == status.reachable:
            return
        if status.reachable:
            self.notify(f"{status.name} is back", title="Target up", timeout=8)
        else:
            self.store.mark_stale(status.name)
            self._findings_changed(status.name)
            self.notify(f"{status.name} is down: {status.state.value}", title="Target down", severity="error", timeout=15)
        if message.probe and not row.running:
            self.run_target(status.name)

    def on_check_completed(self, message: CheckCompleted) -> None:
        result = message.result
        if result.error is not None and not result.findings and (result.target, result.check) in self.store.slots:
            # A check that failed has not disproved what it found last time: keep it, stale.
            self.store.mark_stale(result.target, result.check)
        else:
            self.store.replace(result.target, result.check, result.findings)
        if result.error is None:
            self.check_errors.pop((result.target, result.check), None)
        else:
            self.check_errors[(result.target, result.check)] = result.error
            # A check that failed may mean the server froze or died: ask it now, not at the next probe.
            self.probe(result.target)
        self._findings_changed(result.target)

    def on_target_run_finished(self, message: TargetRunFinished) -> None:
        row = self.targets[message.target]
        row.running = False
        reachable = row.status is not None and row.status.reachable
        if message.error:
            self.notify(message.error, title=f"{message.target}: checks failed", severity="error", timeout=15)
        elif not reachable:
            # The checks could not run: what they last found stays, marked stale with its time.
            self.store.mark_stale(message.target, keep=message.checks)
        else:
            self.store.keep_only(message.target, message.checks)
            for key in [k for k in self.check_errors if k[0] == message.target and k[1] not in message.checks]:
                del self.check_errors[key]
        errors = [e for (t, _), e in self.check_errors.items() if t == message.target]
        if errors:
            listed = ", ".join(f"{e.check} ({e.kind})" for e in errors[:4]) + ("…" if len(errors) > 4 else "")
            self.notify(f"{len(errors)} check(s) could not run: {listed}", title=message.target,
                        severity="warning", timeout=10)
        self._findings_changed(message.target)

    def on_connections_measured(self, message: ConnectionsMeasured) -> None:
        row = self.targets[message.target]
        row.used, row.allowed = message.used, message.allowed
        self._show_target(message.target)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR:
            error = event.worker.error
            self.notify(mask_text(f"{type(error).__name__}: {error}"), title=f"{event.worker.name} failed",
                        severity="error", timeout=15)
            if event.worker.group.startswith("target-"):
                name = event.worker.group.removeprefix("target-")
                if name in self.targets:
                    self.targets[name].running = False
                    self._show_target(name)

    def _findings_changed(self, target: str) -> None:
        row = self.targets.get(target)
        if row is not None:
            row.counts = self.store.counts_for(target)
            self._show_target(target)
        self.main_screen.schedule_refresh()

    def _show_target(self, name: str) -> None:
        if self.main_screen.is_mounted:
            from console.widgets.targets_table import TargetsTable

            tables = self.main_screen.query(TargetsTable)
            if not tables:  # the app is shutting down
                return
            tables.first().show(self.targets[name])
            self.main_screen.update_title()

    def ingest(self, statuses: Iterable[TargetStatus], findings: Iterable[Finding]) -> None:
        """Show known results without running anything (snapshots, demos, the benchmark)."""
        for status in statuses:
            self.on_target_status_changed(TargetStatusChanged(status))
        by_slot: dict[tuple[str, str], list[Finding]] = {}
        for f in findings:
            by_slot.setdefault((f.target, f.check), []).append(f)
        for (target, check), group in by_slot.items():
            self.store.replace(target, check, group)
        for name in self.targets:
            self._findings_changed(name)

    # --- one finding -----------------------------------------------------------------------

    def fix_permission(self, finding: Finding) -> tuple[bool, str | None]:
        target = self.settings.targets.get(finding.target)
        if target is None:
            return False, f"{finding.target} is not in the config"
        if not target.allow_fixes:
            return False, f"allow_fixes is off for {finding.target} in the config"
        return True, None

    def open_finding(self, finding: Finding) -> None:
        check = self.registry.checks.get(finding.check) if self.registry else None
        allowed, why_not = self.fix_permission(finding)
        stale = self.store.confirmed_at(finding) if self.store.is_stale(finding) else None
        screen = FindingDetailScreen(finding, getattr(check, "rationale", None), allowed, why_not, stale)
        self.push_screen(screen)
        if finding.id in self.fix_notes:
            screen.call_after_refresh(screen.show_outcome, self.fix_notes[finding.id])

    def copy_fix(self, finding: Finding) -> None:
        if finding.fix is None:
            self.notify("This finding has no fix to copy.", severity="warning")
            return
        text = fix_text(finding.fix)
        self.copy_to_clipboard(text)
        self.notify(f"Fix copied to the clipboard ({text.count(chr(10))} lines, OSC 52)", title="Copied")

    def copy_evidence(self, finding: Finding) -> None:
        text = json.dumps({"finding": finding.id, "target": finding.target, "check": finding.check,
                           "object": finding.object, "evidence": finding.evidence}, indent=2, default=str)
        self.copy_to_clipboard(text)
        self.notify(f"Evidence copied to the clipboard ({len(finding.evidence)} fields, OSC 52)", title="Copied")

    # --- applying a fix --------------------------------------------------------------------

    def start_fix(self, finding: Finding) -> None:
        fix = finding.fix
        if fix is None:
            self.notify("This finding has no fix.", severity="warning")
            return
        if fix.safety is FixSafety.MANUAL:
            self.notify("A manual fix is for a human to adapt and run: copy it with c.", severity="warning")
            return
        allowed, why_not = self.fix_permission(finding)
        if not allowed:
            self.notify(f"Not applied: {why_not}.", title="Fixes off", severity="warning")
            return
        self.run_worker(self._fix_flow(finding), name=f"fix {finding.id}", group="fix", exclusive=True,
                        exit_on_error=False)

    async def _fix_flow(self, finding: Finding) -> None:
        from checks.runner import KeptConnections

        if self.ensure_registry() is None:
            return
        kept = KeptConnections()  # the re-check's connection, kept for the verification
        try:
            await self._plan_and_apply(finding, kept)
        finally:
            await kept.close()

    async def _plan_and_apply(self, finding: Finding, kept: Any) -> None:
        from checks.fixes import FixRefused, apply_fix, plan_fix

        registry = self.registry
        assert registry is not None  # _fix_flow loaded it before calling this
        target = self.settings.targets[finding.target]
        unsafe = finding.fix is not None and finding.fix.safety is FixSafety.UNSAFE
        self.notify(f"Re-checking {finding.object} before planning the fix…", title="Fix", timeout=3)
        try:
            plan = await plan_fix(self.settings, registry, finding, allow_unsafe=unsafe, kept=kept)
        except FixRefused as exc:
            self.notify(str(exc), title="Fix refused", severity="error", timeout=15)
            return
        if plan.gone:
            self._finding_gone(finding)
            self.notify("The check no longer reports this finding: nothing to fix.", title="Already gone")
            return
        modal = ConfirmFixModal(plan, target=finding.target, where=getattr(plan, "url", "") or target.masked_url,
                                production=target.is_production)
        progress = FixProgressModal(finding.fix.summary if finding.fix else finding.title, finding.target)
        done = await self._confirm_and_run(
            "Fix", modal, progress,
            lambda: apply_fix(self.settings, registry, plan, on_progress=progress.add_line, kept=kept),
        )
        if done is not None:
            self._fix_done(finding, done, progress)

    async def _confirm_and_run(self, what: str, modal: ConfirmFixModal, progress: FixProgressModal,
                               run: Callable[[], Awaitable[Outcome]],
                               on_next: Callable[[str | None], None] | None = None) -> Outcome | None:
        """What every action shares in the console: the confirmation, then the progress dialog
        while the pipeline runs it. None when not confirmed or refused (both said here)."""
        # No toast may sit on top of the confirmation.
        self.clear_notifications()
        if not await self.push_screen_wait(modal):
            self.notify(f"{what} not confirmed: nothing was run.", title="Cancelled")
            return None
        await self.push_screen(progress, on_next)
        try:
            return await run()
        except ActionRefused as exc:
            progress.finish(f"[$error b]Refused:[/] {escape(terminal_safe(str(exc)))}")
            return None

    def _fix_done(self, finding: Finding, outcome: Any, progress: FixProgressModal) -> None:
        # Said once in the progress dialog, and kept on the finding's screen; no toast repeats it.
        kind = str(getattr(outcome.outcome, "value", outcome.outcome))
        message = getattr(outcome, "message", "") or ""
        entry = getattr(outcome, "entry_id", None)
        journal = f" (journal entry {entry})" if entry else ""
        fixed = kind == "fixed"
        if fixed:
            verified = " and verified: the check no longer reports it" if getattr(outcome, "verified", False) else ""
            note = f"[$success b]Fixed[/]{verified}.{journal}"
            self._finding_gone(finding)
        else:
            note = f"[$error b]{kind.replace('_', ' ').capitalize()}[/]: {escape(message)}{journal}"
        self.fix_notes[finding.id] = note
        progress.finish(note)
        for screen in self.screen_stack:
            if isinstance(screen, FindingDetailScreen) and screen.finding.id == finding.id:
                screen.show_outcome(note, fixed=fixed)

    # --- undoing a fix ---------------------------------------------------------------------

    def start_undo(self, entry_id: str) -> None:
        self.run_worker(self._undo_flow(entry_id), name=f"undo {entry_id}", group="fix", exclusive=True,
                        exit_on_error=False)

    async def _undo_flow(self, entry_id: str) -> None:
        from checks.engines import steps_lock
        from checks.fixes import FixRefused, inspect_undo, plan_undo, undo_fix
        from console.commands.applying import outcome_word
        from console.screens.confirm_fix import Confirmation

        registry = self.ensure_registry()
        if registry is None:
            return
        journal = Journal.for_settings(self.settings)
        try:
            # Unsafe inverses are allowed here because the confirmation makes the user type the
            # target's name for them, as it does for an unsafe fix.
            plan = await asyncio.to_thread(plan_undo, self.settings, entry_id, allow_unsafe=True, journal=journal)
            # What the fix left must still be there: the confirmation shows any refusal this finds.
            plan = await inspect_undo(self.settings, plan)
        except FixRefused as exc:
            self.notify(str(exc), title="Undo refused", severity="error", timeout=15)
            return
        entry = plan.entry
        target = self.settings.targets.get(entry.target)
        confirmation = Confirmation(
            verb="Undo", title=f"entry {entry.id}: {entry.summary}", target=entry.target, where=entry.url,
            object=str(entry.finding.get("object", "")), safety=FixSafety(entry.safety),
            lock=steps_lock(plan.steps), steps=plan.steps, refusals=list(plan.refusals),
            warnings=list(plan.warnings), production=bool(target and target.is_production),
        )
        progress = FixProgressModal(f"the undo of {entry.id} ({entry.summary})", entry.target, verb="Undoing")
        outcome = await self._confirm_and_run(
            "Undo", ConfirmFixModal(confirmation=confirmation), progress,
            lambda: undo_fix(self.settings, registry, entry.id, allow_unsafe=True,
                             on_progress=progress.add_line, journal=journal),
        )
        if outcome is None:
            return
        word = outcome_word(outcome.outcome, undo=True)
        style = "$success" if outcome.outcome == "fixed" else "$error"
        message = outcome.message.removeprefix(f"{word}: ")
        progress.finish(f"[{style} b]{word.capitalize()}[/]: {escape(message)} (journal entry {outcome.entry_id})")
        # The finding the fix removed should be back: show it again.
        self.run_target(entry.target)
        entries = await asyncio.to_thread(journal.entries)
        for screen in self.screen_stack:
            if isinstance(screen, FixHistoryScreen):
                screen.reload(entries)

    # --- cancelling or terminating what runs ---------------------------------------------------

    def start_kill(self, name: str, watch: Any, sample: ActivitySample | None, ident: str, terminate: bool) -> None:
        """Cancel or terminate one row of the activity view (`sample`: what the user saw; None:
        what runs now, for the next action an outcome offered)."""
        verb = "terminate" if terminate else "cancel"
        self.run_worker(self._kill_flow(name, watch, sample, ident, terminate), name=f"{verb} {ident}",
                        group="fix", exclusive=True, exit_on_error=False)

    async def _kill_flow(self, name: str, watch: Any, sample: ActivitySample | None, ident: str, terminate: bool) -> None:
        target = self.settings.targets[name]
        try:
            if sample is None:
                sample = await watch.reread(name)
            # Unsafe is allowed here: the confirmation makes the user type the target's name for it.
            action = plan_kill(self.settings, watch, name, sample, ident, terminate=terminate, allow_unsafe=True)
        except ActionRefused as exc:
            self.notify(str(exc), title="Refused", severity="warning", timeout=8)
            return
        except Exception as exc:  # the view's connection went away: said, nothing sent
            self.notify(f"cannot read {name} again: {type(exc).__name__}: {exc}", title="Not sent", severity="error",
                        timeout=10)
            return
        confirmation = Confirmation(
            verb=f"{action.verb.capitalize()} {action.noun}", title=terminal_safe(action.entry.summary), target=name,
            where=target.masked_url, object=terminal_safe(f"{action.noun} {ident}: {work_text(action.row)[:300]}"),
            safety=FixSafety.UNSAFE, lock=action.step.description, steps=(action.step,),
            refusals=list(action.refusals), production=target.is_production,
        )
        progress = FixProgressModal(terminal_safe(action.entry.summary), name,
                                    verb="Terminating" if terminate else "Cancelling")

        def next_action(taken: str | None) -> None:
            if taken == "terminate":
                self.start_kill(name, watch, None, ident, True)

        outcome = await self._confirm_and_run(
            action.verb.capitalize(), ConfirmFixModal(confirmation=confirmation), progress,
            lambda: perform(action, Journal.for_settings(self.settings), on_progress=progress.add_line), next_action,
        )
        if outcome is None:
            return
        done = outcome.outcome == "fixed"
        word = outcome.outcome.replace("_", " ").capitalize()
        progress.finish(f"[{'$success' if done else '$error'} b]{word}[/]: {escape(terminal_safe(outcome.message))} "
                        f"(journal entry {outcome.entry_id})", offer=outcome.next_action)
        for screen in self.screen_stack:
            if isinstance(screen, ActivityScreen):
                screen.refresh_sample()

    def _finding_gone(self, finding: Finding) -> None:
        self.store.remove(finding.id)
        self._findings_changed(finding.target)

    # --- everyday actions ------------------------------------------------------------------

    async def action_quit(self) -> None:
        # Quitting mid-fix would leave its journal entry unfinished and its outcome unseen.
        if any(w.group == "fix" and w.is_running for w in self.workers) and isinstance(self.screen, FixProgressModal):
            self.notify("A fix is running and cannot be stopped midway: wait for its outcome.", severity="warning")
            return
        await super().action_quit()

    # --- replay and activity -----------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "replay_step":
            return self.replay is not None
        if action in {"rerun_all", "history"}:  # a replay runs nothing and applies nothing
            return self.replay is None
        return True

    def show_replay(self) -> None:
        """Show the findings and targets as the current snapshot of the recording had them."""
        assert self.replay is not None
        snapshot = self.replay.current
        for name in self.targets:
            self.store.keep_only(name, ())
        self.ingest(snapshot.targets, snapshot.findings)
        self.sub_title = self.replay.position()

    def action_replay_step(self, by: int) -> None:
        if self.replay is not None and self.replay.step(by):
            self.show_replay()
            if isinstance(self.screen, ActivityScreen):
                self.screen.dismiss()
                self.open_activity(self.screen.target)
        elif self.replay is not None:
            self.notify("the recording's " + ("first" if by < 0 else "last") + " snapshot", timeout=2)

    def open_activity(self, name: str) -> None:
        """The activity view of one target: live, or as recorded when replaying."""
        row = self.targets.get(name)
        if row is None:
            return
        if self.replay is not None:
            recorded = self.replay.current.activity.get(name)
            if recorded is None:
                self.notify(f"no activity was recorded for {name} at this time", severity="warning")
                return
            self.push_screen(ActivityScreen(name, row.kind, replay=ActivitySample.from_dict(recorded),
                                            replay_time=self.replay.position()))
            return
        target = self.settings.targets.get(name)
        if target is None:
            return
        self.push_screen(ActivityScreen(name, row.kind, settings=self.settings, allow_kill=target.allow_fixes))

    def action_help(self) -> None:
        # Every BINDINGS listed holds Binding objects (no tuples), all HelpScreen shows.
        sections = cast(list[tuple[str, list[Binding]]], [
            ("everywhere", self.BINDINGS),
            ("main", MainScreen.BINDINGS),
            ("findings table", FindingsTable.BINDINGS),
            ("finding detail", FindingDetailScreen.BINDINGS),
            ("confirm fix", ConfirmFixModal.BINDINGS),
            ("export", ExportModal.BINDINGS),
            ("fix history", FixHistoryScreen.BINDINGS),
            ("activity", ActivityScreen.BINDINGS),
            ("history entry", HistoryEntryScreen.BINDINGS),
            ("help", HelpScreen.BINDINGS),
        ])
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(sections))

    def action_history(self) -> None:
        self.run_worker(self._open_history(), name="fix history", group="history", exclusive=True)

    async def _open_history(self) -> None:
        journal = Journal.for_settings(self.settings)
        where: dict[str, Any] = dict(journal=str(journal.path), config=self.config_path)
        try:
            entries = await asyncio.to_thread(lambda: list(journal.entries()))
        except Exception as exc:  # an unreadable journal is shown, not raised
            self.push_screen(FixHistoryScreen([], f"Cannot read the journal: {exc}", **where))
            return
        self.push_screen(FixHistoryScreen(entries, **where))

    def action_export(self, fmt: str = "json") -> None:
        findings = list(self.main_screen.shown_findings())
        statuses = [row.status for row in self.targets.values() if row.status is not None]
        description = self.main_screen.filter.describe()

        async def write(path: Path) -> Path:
            return await asyncio.to_thread(write_export, findings, statuses, path, description)

        self.push_screen(ExportModal(len(findings), write, default_path(fmt)))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield SystemCommand("Re-run all checks", "Run every check on every target again (r)", self.action_rerun_all)
        for name in self.targets:
            yield SystemCommand(f"Re-run {name}", f"Run the checks on {name} again (R)", partial(self.run_target, name))
        for severity in Severity:
            yield SystemCommand(
                f"Show only {severity.value} findings", "Filter the findings table by severity",
                partial(self.main_screen.set_filter, FindingFilter(severities=frozenset({severity}))),
            )
        yield SystemCommand("Clear filters", "Show every finding (x)", self.main_screen.action_clear_filters)
        yield SystemCommand("Export findings as JSON", "The findings shown, to a file you name (e)",
                            partial(self.action_export, "json"))
        yield SystemCommand("Export findings as Markdown", "The findings shown, to a file you name (e)",
                            partial(self.action_export, "markdown"))
        yield SystemCommand("Fix history", "Every fix applied, from the journal (h)", self.action_history)
        yield SystemCommand("Help", "Every key binding (?)", self.action_help)
        yield from super().get_system_commands(screen)


def run_app(settings: Settings, *, theme: str | None = None, config_path: str | None = None,
            replay: Replay | None = None) -> int:
    app = DbVitalsApp(settings, theme=theme, config_path=config_path, replay=replay)
    app.run()
    return app.return_code or 0
