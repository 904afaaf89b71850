"""The console's state, workers and actions, apart from the Textual App that shows them.

The App owns one `Controller` and hands it to the screens that read its state (typed, as a
constructor argument). Screens never call it to act: they post messages (console/messages.py),
and the App's handlers call the controller. The controller changes no widget either: when a
target or the findings change it calls the two callbacks the App gave it, and the App tells the
main screen to redraw.

Checks run in async workers, one per target, each in its own exclusive group: a slow or dead
target delays nobody else, and re-running one target cancels only its own previous run. Workers
never touch widgets; they post messages that the App folds in through the controller.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from rich.markup import escape
from textual.app import App
from textual.worker import Worker
from typing import Any

from checks.actions.journal import Journal
from checks.actions.kill import plan_kill, work_text
from checks.actions.pipeline import ActionRefused, Outcome, perform
from checks.activity import ActivitySample
from checks.budget import ServerBudgets
from checks.config import ConfigError, Settings
from checks.connectors import connect
from checks.display import terminal_safe
from checks.engines import adapter_for, steps_lock
from checks.fixes import FixRefused, apply_fix, inspect_undo, plan_fix, plan_undo, undo_fix
from checks.model import CheckError, Finding, FixSafety, TargetStatus
from checks.registry import Registry, load_registry, validate_check_options
from checks.runner import CheckResult, KeptConnections, Runner
from checks.secrets import mask_text
from checks.snapshots import store as snapshot_store
from checks.snapshots.store import SnapshotError, SnapshotStore
from console.commands.applying import outcome_word
from console.messages import CheckCompleted, ConnectionsMeasured, TargetRunFinished, TargetStatusChanged
from console.replay import Replay
from console.screens.activity import ActivityScreen
from console.screens.confirm_fix import ConfirmFixModal, Confirmation
from console.screens.detail import FindingDetailScreen
from console.screens.export import ExportModal, default_path, write_export
from console.screens.fix_progress import FixProgressModal
from console.screens.history import FixHistoryScreen
from console.widgets.finding_store import FindingStore
from console.widgets.fix_view import fix_text
from console.widgets.targets_table import TargetRow
from console.widgets.trend import trend_of


class Controller:
    """Targets, findings and what acts on them, for one console session.

    `app` is used only for Textual's own services: workers, messages, screens, toasts, the
    clipboard. `on_target_changed(name)` and `on_findings_changed(name)` are how the App
    learns what to redraw.
    """

    def __init__(
        self,
        app: App[Any],
        settings: Settings,
        *,
        registry: Registry | None,
        config_path: str | None,
        clock: Callable[[], float],
        replay: Replay | None,
        on_target_changed: Callable[[str], None],
        on_findings_changed: Callable[[str], None],
    ) -> None:
        self.app = app
        self.settings = settings
        self.registry = registry
        self.config_path = config_path
        self.replay = replay
        # Wall-clock seconds; tests fix it so ages do not change between runs.
        self.clock = clock
        self.on_target_changed = on_target_changed
        self.on_findings_changed = on_findings_changed
        self.store = FindingStore()
        # One session budget per server for the app's lifetime: targets re-run one by one share it.
        self.budgets = ServerBudgets()
        self.targets: dict[str, TargetRow] = {
            name: TargetRow(name, t.kind, t.environment, t.is_production) for name, t in settings.targets.items()
        }
        for snapshot in replay.snapshots if replay else ():
            for status in snapshot.targets:  # a recorded target since removed from the config
                if status.name not in self.targets:
                    self.targets[status.name] = TargetRow(status.name, status.kind, status.environment,
                                                          (status.environment or "").lower() == "production")
        self.check_errors: dict[tuple[str, str], CheckError] = {}
        # Finding id -> what its last fix came to, shown again when the finding is reopened.
        self.fix_notes: dict[str, str] = {}
        self._probing: set[str] = set()

    # --- what the screens read -------------------------------------------------------------

    @property
    def replaying(self) -> bool:
        """A replay shows what was recorded: nothing runs, nothing is probed or applied."""
        return self.replay is not None

    def running_targets(self) -> set[str]:
        return {name for name, row in self.targets.items() if row.running}

    def read_only_targets(self) -> set[str]:
        """Targets whose config does not allow fixes (or that are not in the config any more)."""
        return {name for name in self.targets
                if (target := self.settings.targets.get(name)) is None or not target.allow_fixes}

    def fix_permission(self, finding: Finding) -> tuple[bool, str | None]:
        target = self.settings.targets.get(finding.target)
        if target is None:
            return False, f"{finding.target} is not in the config"
        if not target.allow_fixes:
            return False, f"allow_fixes is off for {finding.target} in the config"
        return True, None

    # --- running checks --------------------------------------------------------------------

    def ensure_registry(self) -> Registry | None:
        if self.registry is None:
            registry = load_registry()
            for problem in registry.problems:
                self.app.notify(problem, title="Plugin", severity="warning", timeout=15)
            try:
                validate_check_options(self.settings, registry)
            except ConfigError as exc:
                self.app.notify(str(exc), title="Invalid config", severity="error", timeout=30)
                return None
            self.registry = registry
        return self.registry

    def rerun_all(self) -> None:
        for name in self.targets:
            self.run_target(name)

    def recheck_all(self) -> None:
        """The schedule's round: every target not still being checked. A slow target skips the
        round rather than have its run cancelled and restarted, or a second one stacked on it."""
        for name, row in self.targets.items():
            if not row.running:
                self.run_target(name)

    def run_target(self, name: str) -> None:
        if self.replaying or name not in self.targets or self.ensure_registry() is None:
            return
        self.targets[name].running = True
        self.on_target_changed(name)
        self.app.run_worker(self._check_target(name), name=f"checks on {name}", group=f"target-{name}",
                            exclusive=True, exit_on_error=False)

    async def _check_target(self, name: str) -> None:
        assert self.registry is not None  # run_target loaded it before starting this worker
        post = self.app.post_message
        runner = Runner(
            self.settings,
            self.registry,
            targets=[name],
            on_target=lambda status: post(TargetStatusChanged(status)),
            on_result=lambda result: post(CheckCompleted(result)),
            budgets=self.budgets,
        )
        try:
            report = await runner.run()
        except Exception as exc:  # reported on the row; the other targets go on
            message = mask_text(f"{type(exc).__name__}: {exc}", self.settings.targets[name].secret_values())
            post(TargetRunFinished(name, frozenset(), error=message))
            return
        post(TargetRunFinished(name, frozenset(c["check"] for c in report.checks)))
        if report.targets and report.targets[0].reachable:
            await self._measure(name)

    async def _measure(self, name: str) -> None:
        target = self.settings.targets[name]
        async with self.budgets.for_target(name, self.settings):
            connection = await connect(name, target)  # a failure leaves the figure unknown until the next run
            try:
                if connection.session is not None:
                    used, allowed = await asyncio.wait_for(
                        adapter_for(target.kind).measure_connections(connection.session), target.call_deadline
                    )
                    self.app.post_message(ConnectionsMeasured(name, used, allowed))
            except Exception:  # a figure we cannot read stays "?", it is not an incident
                pass
            finally:
                await connection.close()

    def probe_all(self) -> None:
        for name, row in self.targets.items():
            if not row.running:
                self.probe(name)

    def probe(self, name: str) -> None:
        if self.replaying or name in self._probing:  # one probe in flight per target is enough
            return
        self._probing.add(name)
        self.app.run_worker(self._probe(name), name=f"probe {name}", group=f"probe-{name}", exit_on_error=False)

    async def _probe(self, name: str) -> None:
        target = self.settings.targets[name]
        try:
            async with self.budgets.for_target(name, self.settings):
                connection = await connect(name, target)
                await connection.close()
        finally:
            self._probing.discard(name)
        self.app.post_message(TargetStatusChanged(connection.status, probe=True))

    # --- folding results into state --------------------------------------------------------

    def target_status(self, status: TargetStatus, *, probe: bool = False, at: float | None = None) -> None:
        """`at`: when the target answered (a snapshot's time in a replay); default now."""
        row = self.targets.get(status.name)
        if row is None:
            return
        before = row.status
        row.status = status
        row.answered_at = self.clock() if at is None else at
        if self._rank_targets():
            self.on_findings_changed(status.name)
        self.on_target_changed(status.name)
        if before is None or before.reachable == status.reachable:
            return
        if status.reachable:
            self.app.notify(f"{status.name} is back", title="Target up", timeout=8)
        else:
            self.store.mark_stale(status.name)
            self._findings_changed(status.name)
            self.app.notify(f"{status.name} is down: {status.state.value}", title="Target down", severity="error",
                            timeout=15)
        if probe and not row.running:
            self.run_target(status.name)

    def _rank_targets(self) -> bool:
        """The urgency order of the findings: a down target's first, then production's."""
        return self.store.rank_targets(
            (name for name, row in self.targets.items() if row.status is not None and not row.status.reachable),
            (name for name, row in self.targets.items() if row.production),
        )

    def check_completed(self, result: CheckResult) -> None:
        if result.error is not None and not result.findings and (result.target, result.check) in self.store.slots:
            # A check that failed has not disproved what it found last time: keep it, stale.
            self.store.mark_stale(result.target, result.check)
        else:
            self.store.replace(result.target, result.check, result.findings, at=self.clock())
        if result.error is None:
            self.check_errors.pop((result.target, result.check), None)
        else:
            self.check_errors[(result.target, result.check)] = result.error
            # A check that failed may mean the server froze or died: ask it now, not at the next probe.
            self.probe(result.target)
        self._findings_changed(result.target)

    def target_run_finished(self, target: str, checks: frozenset[str], error: str | None) -> None:
        row = self.targets[target]
        row.running = False
        reachable = row.status is not None and row.status.reachable
        if error:
            self.app.notify(error, title=f"{target}: checks failed", severity="error", timeout=15)
        elif not reachable:
            # The checks could not run: what they last found stays, marked stale with its time.
            self.store.mark_stale(target, keep=checks)
        else:
            self.store.keep_only(target, checks)
            for key in [k for k in self.check_errors if k[0] == target and k[1] not in checks]:
                del self.check_errors[key]
        errors = [e for (t, _), e in self.check_errors.items() if t == target]
        if errors:
            listed = ", ".join(f"{e.check} ({e.kind})" for e in errors[:4]) + ("…" if len(errors) > 4 else "")
            self.app.notify(f"{len(errors)} check(s) could not run: {listed}", title=target,
                            severity="warning", timeout=10)
        self._findings_changed(target)

    def connections_measured(self, target: str, used: int | None, allowed: int | None) -> None:
        row = self.targets[target]
        row.used, row.allowed = used, allowed
        self.on_target_changed(target)

    def worker_failed(self, worker: Worker[Any]) -> None:
        error = worker.error
        self.app.notify(mask_text(f"{type(error).__name__}: {error}"), title=f"{worker.name} failed",
                        severity="error", timeout=15)
        if worker.group.startswith("target-"):
            name = worker.group.removeprefix("target-")
            if name in self.targets:
                self.targets[name].running = False
                self.on_target_changed(name)

    def _findings_changed(self, target: str) -> None:
        row = self.targets.get(target)
        if row is not None:
            row.counts = self.store.counts_for(target)
        self.on_findings_changed(target)

    def ingest(self, statuses: Iterable[TargetStatus], findings: Iterable[Finding], *, at: float | None = None) -> None:
        """Show known results without running anything (snapshots, demos, the benchmark);
        `at`: when they were found (default: now)."""
        for status in statuses:
            self.target_status(status, at=at)
        by_slot: dict[tuple[str, str], list[Finding]] = {}
        for f in findings:
            by_slot.setdefault((f.target, f.check), []).append(f)
        for (target, check), group in by_slot.items():
            self.store.replace(target, check, group, at=self.clock() if at is None else at)
        for name in self.targets:
            self._findings_changed(name)

    def finding_gone(self, finding: Finding) -> None:
        self.store.remove(finding.id)
        self._findings_changed(finding.target)

    # --- replay ----------------------------------------------------------------------------

    def show_replay(self) -> None:
        """Show the findings and targets as the current snapshot of the recording had them."""
        assert self.replay is not None
        snapshot = self.replay.current
        for name in self.targets:
            self.store.keep_only(name, ())
        self.ingest(snapshot.targets, snapshot.findings, at=self.replay.taken_epoch())
        self.app.sub_title = self.replay.position()

    def replay_step(self, by: int) -> None:
        """`[` / `]`: the snapshot before or after; an open activity view follows to the same moment."""
        if self.replay is None:
            return
        if not self.replay.step(by):
            self.app.notify("the recording's " + ("first" if by < 0 else "last") + " snapshot", timeout=2)
            return
        self.show_replay()
        screen = self.app.screen
        if isinstance(screen, ActivityScreen):
            # Read before dismissing: afterwards `app.screen` is the screen below.
            target = screen.target
            screen.dismiss()
            self.open_activity(target)

    # --- opening screens -------------------------------------------------------------------

    def open_finding(self, finding: Finding) -> None:
        check = self.registry.checks.get(finding.check) if self.registry else None
        allowed, why_not = self.fix_permission(finding)
        seen = self.store.confirmed_at(finding)
        stale = seen if self.store.is_stale(finding) else None
        screen = FindingDetailScreen(finding, getattr(check, "rationale", None), allowed and not self.replaying,
                                     "a replay shows what was; nothing in it is applied" if self.replaying else why_not,
                                     stale, None if seen is None else max(self.clock() - seen, 0))
        self.app.push_screen(screen)
        if finding.id in self.fix_notes:
            screen.call_after_refresh(screen.show_outcome, self.fix_notes[finding.id])
        if self.replay is None and not snapshot_store.default_path(self.settings).exists():
            # Said at once (reading must not create a store): nothing to wait for.
            screen.show_trend(None, "no snapshots recorded yet (dbvitals record, or dbvitals snapshot save)")
            return
        self.app.run_worker(self._show_trend(screen, finding), name=f"trend of {finding.id}", group="trend",
                            exclusive=True, exit_on_error=False)

    async def _show_trend(self, screen: FindingDetailScreen, finding: Finding) -> None:
        """The finding across the recorded snapshots (the replay's, else the store beside the
        journal), then as it is now."""
        if self.replay is not None:
            history = [(s.info.taken_at, f) for s in self.replay.snapshots[: self.replay.index + 1]
                       for f in s.findings if f.id == finding.id]
        else:
            store = SnapshotStore(snapshot_store.default_path(self.settings))
            try:
                history = await asyncio.to_thread(store.finding_history, finding.id)
            except SnapshotError as exc:
                screen.show_trend(None, str(exc))
                return
            now = dt.datetime.fromtimestamp(self.clock(), dt.timezone.utc).isoformat(timespec="seconds")
            history.append((now, finding))
        screen.show_trend(trend_of(history), "fewer than two recorded readings of this finding")

    def open_activity(self, name: str) -> None:
        """The activity view of one target: live, or as recorded when replaying."""
        row = self.targets.get(name)
        if row is None:
            return
        if self.replay is not None:
            recorded = self.replay.current.activity.get(name)
            if recorded is None:
                self.app.notify(f"no activity was recorded for {name} at this time", severity="warning")
                return
            self.app.push_screen(ActivityScreen(name, row.kind, replay=ActivitySample.from_dict(recorded),
                                                replay_time=self.replay.position()))
            return
        target = self.settings.targets.get(name)
        if target is None:
            return
        self.app.push_screen(ActivityScreen(name, row.kind, settings=self.settings, allow_kill=target.allow_fixes))

    def open_history(self) -> None:
        if self.replaying:  # a replay applied nothing: its history is not this session's
            return
        self.app.run_worker(self._open_history(), name="fix history", group="history", exclusive=True)

    async def _open_history(self) -> None:
        journal = Journal.for_settings(self.settings)
        where: dict[str, Any] = dict(journal=str(journal.path), config=self.config_path)
        try:
            entries = await asyncio.to_thread(lambda: list(journal.entries()))
        except Exception as exc:  # an unreadable journal is shown, not raised
            self.app.push_screen(FixHistoryScreen([], f"Cannot read the journal: {exc}", **where))
            return
        self.app.push_screen(FixHistoryScreen(entries, **where))

    def export(self, findings: Sequence[Finding], description: str, fmt: str = "json") -> None:
        """The export dialog for the findings the main screen shows (`description`: its filter)."""
        shown = list(findings)
        statuses = [row.status for row in self.targets.values() if row.status is not None]

        async def write(path: Path) -> Path:
            return await asyncio.to_thread(write_export, shown, statuses, path, description)

        self.app.push_screen(ExportModal(len(shown), write, default_path(fmt)))

    # --- copying ---------------------------------------------------------------------------

    def copy_fix(self, finding: Finding) -> None:
        if finding.fix is None:
            self.app.notify("This finding has no fix to copy.", severity="warning")
            return
        text = fix_text(finding.fix)
        self.app.copy_to_clipboard(text)
        self.app.notify(f"Fix copied to the clipboard ({text.count(chr(10))} lines, OSC 52)", title="Copied")

    def copy_evidence(self, finding: Finding) -> None:
        text = json.dumps({"finding": finding.id, "target": finding.target, "check": finding.check,
                           "object": finding.object, "evidence": finding.evidence}, indent=2, default=str)
        self.app.copy_to_clipboard(text)
        self.app.notify(f"Evidence copied to the clipboard ({len(finding.evidence)} fields, OSC 52)", title="Copied")

    # --- actions through the pipeline: fix, undo, cancel, terminate -----------------------------

    def action_running(self) -> bool:
        """A fix, undo, cancel or terminate under way (it cannot be stopped midway)."""
        return any(w.group == "fix" and w.is_running for w in self.app.workers)

    def start_fix(self, finding: Finding) -> None:
        if self.replaying:
            self.app.notify("a replay shows what was; nothing in it is applied", severity="warning")
            return
        fix = finding.fix
        if fix is None:
            self.app.notify("This finding has no fix.", severity="warning")
            return
        if fix.safety is FixSafety.MANUAL:
            self.app.notify("A manual fix is for a human to adapt and run: copy it with c.", severity="warning")
            return
        allowed, why_not = self.fix_permission(finding)
        if not allowed:
            self.app.notify(f"Not applied: {why_not}.", title="Fixes off", severity="warning")
            return
        self.app.run_worker(self._fix_flow(finding), name=f"fix {finding.id}", group="fix", exclusive=True,
                            exit_on_error=False)

    async def _fix_flow(self, finding: Finding) -> None:
        if self.ensure_registry() is None:
            return
        kept = KeptConnections()  # the re-check's connection, kept for the verification
        try:
            await self._plan_and_apply(finding, kept)
        finally:
            await kept.close()

    async def _plan_and_apply(self, finding: Finding, kept: Any) -> None:
        registry = self.registry
        assert registry is not None  # _fix_flow loaded it before calling this
        target = self.settings.targets[finding.target]
        unsafe = finding.fix is not None and finding.fix.safety is FixSafety.UNSAFE
        self.app.notify(f"Re-checking {finding.object} before planning the fix…", title="Fix", timeout=3)
        try:
            plan = await plan_fix(self.settings, registry, finding, allow_unsafe=unsafe, kept=kept)
        except FixRefused as exc:
            self.app.notify(str(exc), title="Fix refused", severity="error", timeout=15)
            return
        if plan.gone:
            self.finding_gone(finding)
            self.app.notify("The check no longer reports this finding: nothing to fix.", title="Already gone")
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
        self.app.clear_notifications()
        if not await self.app.push_screen_wait(modal):
            self.app.notify(f"{what} not confirmed: nothing was run.", title="Cancelled")
            return None
        await self.app.push_screen(progress, on_next)
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
            self.finding_gone(finding)
        else:
            note = f"[$error b]{kind.replace('_', ' ').capitalize()}[/]: {escape(message)}{journal}"
        self.fix_notes[finding.id] = note
        progress.finish(note)
        self.run_target(finding.target)  # what else the fix changed shows now, not at the next round
        for screen in self.app.screen_stack:
            if isinstance(screen, FindingDetailScreen) and screen.finding.id == finding.id:
                screen.show_outcome(note, fixed=fixed)

    def start_undo(self, entry_id: str) -> None:
        if self.replaying:
            return
        self.app.run_worker(self._undo_flow(entry_id), name=f"undo {entry_id}", group="fix", exclusive=True,
                            exit_on_error=False)

    async def _undo_flow(self, entry_id: str) -> None:
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
            self.app.notify(str(exc), title="Undo refused", severity="error", timeout=15)
            return
        entry = plan.entry
        target = self.settings.targets.get(entry.target)
        confirmation = Confirmation(
            verb="Undo", title=f"entry {entry.id}: {entry.summary}", target=entry.target, where=entry.url,
            object=str(entry.finding.get("object", "")), safety=FixSafety(entry.safety),
            lock=steps_lock(plan.steps), steps=plan.steps, refusals=list(plan.refusals),
            warnings=list(plan.warnings), production=bool(target and target.is_production),
        )
        # "Undoing fix 2026…-0001 (Index t.c)", never "Undoing the undo of …".
        progress = FixProgressModal(f"{entry.kind} {entry.id} ({entry.summary})", entry.target, verb="Undoing")
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
        for screen in self.app.screen_stack:
            if isinstance(screen, FixHistoryScreen):
                screen.reload(entries)

    def start_kill(self, name: str, watch: Any, sample: ActivitySample | None, ident: str, terminate: bool) -> None:
        """Cancel or terminate one row of the activity view (`sample`: what the user saw; None:
        what runs now, for the next action an outcome offered)."""
        if self.replaying:
            return
        verb = "terminate" if terminate else "cancel"
        self.app.run_worker(self._kill_flow(name, watch, sample, ident, terminate), name=f"{verb} {ident}",
                            group="fix", exclusive=True, exit_on_error=False)

    async def _kill_flow(self, name: str, watch: Any, sample: ActivitySample | None, ident: str,
                         terminate: bool) -> None:
        target = self.settings.targets[name]
        try:
            if sample is None:
                sample = await watch.reread(name)
            # Unsafe is allowed here: the confirmation makes the user type the target's name for it.
            action = plan_kill(self.settings, watch, name, sample, ident, terminate=terminate, allow_unsafe=True)
        except ActionRefused as exc:
            self.app.notify(str(exc), title="Refused", severity="warning", timeout=8)
            return
        except Exception as exc:  # the view's connection went away: said, nothing sent
            self.app.notify(f"cannot read {name} again: {type(exc).__name__}: {exc}", title="Not sent",
                            severity="error", timeout=10)
            return
        # Whom it holds up and waits on, and where the chain it waits in starts: what decides
        # between stopping this session and its root blocker (`b` in the activity view).
        relation = f" ({action.relation})" if action.relation else ""
        root = ([f"{action.noun} {ident} waits behind {action.root_blocker}, the root blocker: Esc, then b "
                 f"terminates {action.root_blocker} instead"] if action.root_blocker else [])
        confirmation = Confirmation(
            verb=f"{action.verb.capitalize()} {action.noun}", title=terminal_safe(action.entry.summary), target=name,
            where=target.masked_url,
            object=terminal_safe(f"{action.noun} {ident}{relation}: {work_text(action.row)[:300]}"),
            safety=FixSafety.UNSAFE, lock=action.step.description, steps=(action.step,),
            refusals=list(action.refusals), warnings=root, production=target.is_production,
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
        self.run_target(name)  # a lock finding the session held goes at once
        for screen in self.app.screen_stack:
            if isinstance(screen, ActivityScreen):
                screen.refresh_sample()
