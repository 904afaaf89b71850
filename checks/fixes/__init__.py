"""Fix and undo: two planners over the action pipeline (checks.actions.pipeline).

1. `plan_fix` re-runs the finding's check on its target: the problem may be gone, or changed.
   The plan lists why it may not be applied (refusals) instead of raising, so a UI can show it.
2. `apply_fix` makes the plan a `StepsAction` and hands it to `perform`: a "started" journal
   entry, the steps through the engine's executor (its own read-write session, bounded by lock
   and statement timeouts), the check re-run to verify, the entry completed. A crash between
   the two leaves an unfinished entry.
3. `undo_fix` applies a journal entry's inverse with the same refusals, journaled the same way,
   after `inspect_undo` has compared what the inverse would touch with what the fix left on the
   server (recorded in the entry's `expect`): it refuses to undo anything dbvitals did not do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from checks.actions.journal import Journal, JournalEntry
from checks.actions.pipeline import (
    ActionFailed,
    ActionRefused,
    Outcome,
    Progress,
    Verdict,
    Work,
    masked_step,
    new_entry,
    perform,
    refusals,
)
from checks.engines import adapter_for, steps_lock
from checks.config import ConfigError, Settings, TargetBase
from checks.registry import Registry, UsageError
from checks.runner import KeptConnections, Runner
from checks.fixes.execution import Execution, FixLimits, StepFailed
from checks.model import Finding, Fix, FixSafety, FixStep, Report
from checks.secrets import mask_text

__all__ = [
    "OWN_UNDO", "FixLimits", "FixPlan", "FixRefused", "Journal", "JournalEntry", "StepsAction", "UndoPlan",
    "apply_fix", "find_finding", "fix_entry", "inspect_undo", "locate_finding", "plan_fix", "plan_undo",
    "refusals_for", "undo_fix",
]

# After a stop signal: how long recording what the applied steps left may take.
RECORD_TIMEOUT_S = 10.0


# Changes that are no finding's fix (the MongoDB profiler's setting) have no check to re-run:
# their undo is an action of their own, verified by reading the setting back. An engine's
# executor module registers its maker here under the `check` its entries' subjects name:
# make(target_name, target, original_entry, inverse_steps, extra_refusals=...) -> Action.
OWN_UNDO: dict[str, Callable[..., Any]] = {}


class FixRefused(ActionRefused):
    """The fix cannot even be planned or undone; the message says why."""


@dataclass
class FixPlan:
    finding: Finding | None  # the fresh finding; None when the problem is gone
    target: str
    steps: tuple[FixStep, ...]
    inverse: tuple[FixStep, ...]
    safety: FixSafety | None
    lock: str | None
    refusals: list[str]
    gone: bool = False
    summary: str = ""
    notes: str | None = None
    engine: str = ""
    environment: str | None = None
    url: str = ""  # masked
    requested: Finding | None = None  # the finding the plan was asked for
    allow_unsafe: bool = False  # what the refusals were computed with
    role: str | None = None  # primary / replica / secondary of ...: fixes go to a primary

    @property
    def applicable(self) -> bool:
        return not self.gone and not self.refusals


@dataclass
class UndoPlan:
    entry: JournalEntry
    steps: tuple[FixStep, ...]
    refusals: list[str]
    warnings: list[str] = field(default_factory=list)

    @property
    def applicable(self) -> bool:
        return not self.refusals


# --- planning ------------------------------------------------------------------------------------

async def find_finding(
    settings: Settings,
    registry: Registry,
    finding_id: str,
    *,
    targets: Sequence[str] | None = None,
    where: Mapping[str, Sequence[str]] | None = None,
) -> Finding | None:
    """The finding with this id (or unique id prefix of 6+ characters), from a run of only the
    checks that could report it: `where` (target -> check ids, see checks.fixes.locate), else
    every check on `targets`, else on every target."""
    finding, _report = await locate_finding(settings, registry, finding_id, targets=targets, where=where)
    return finding


async def locate_finding(
    settings: Settings,
    registry: Registry,
    finding_id: str,
    *,
    targets: Sequence[str] | None = None,
    where: Mapping[str, Sequence[str]] | None = None,
    kept: KeptConnections | None = None,
) -> tuple[Finding | None, Report]:
    """find_finding, with the report of the run that found it: that run is the finding's re-check,
    so plan_fix(..., report=...) plans from it instead of running the check again. Not found
    while a check or a target failed: the finding may be among what could not be re-checked, so
    FixRefused says what failed and why. With `kept`, the connections stay open for the fix's
    verification."""
    if where:
        checks = list(dict.fromkeys(c for cs in where.values() for c in cs))
        report = await _run(settings, registry, targets=list(where), checks=checks, kept=kept)
    else:
        report = await _run(settings, registry, targets=targets, checks=None, kept=kept)
    exact = [f for f in report.findings if f.id == finding_id]
    if len(finding_id) >= 6 and not exact:
        exact = [f for f in report.findings if f.id.startswith(finding_id)][:2]
    if len(exact) == 1 or (exact and exact[0].id == finding_id):
        if kept is not None:  # only the finding's target keeps its connection, for the verification
            await kept.release_except(exact[0].target)
        return exact[0], report
    failures = [f"target {t.name} is unreachable ({t.state.value}: {t.error})" for t in report.targets if not t.reachable]
    failures += [f"{e.check} on {e.target} failed ({e.kind}: {e.message})" for e in report.errors]
    if failures:
        shown = "; ".join(failures[:5]) + (f"; and {len(failures) - 5} more" if len(failures) > 5 else "")
        raise FixRefused(f"finding {finding_id} was not found, but the re-check failed, so it may still exist: {shown}")
    return None, report


async def plan_fix(
    settings: Settings, registry: Registry, finding: Finding, *, allow_unsafe: bool = False,
    report: Report | None = None, kept: KeptConnections | None = None,
) -> FixPlan:
    """Re-check the finding (or take `report`, a run of its check on its target that has just
    happened: locate_finding's) and plan its fix, with every refusal, computed here once. With
    `kept`, the re-check's connection stays open for the fix's verification."""
    target = _target(settings, finding.target)
    if report is None:
        report = await _run(settings, registry, targets=[finding.target], checks=[finding.check], kept=kept)
    status = next((t for t in report.targets if t.name == finding.target), None)
    if status is not None and not status.reachable:
        raise FixRefused(f"target {finding.target} is unreachable ({status.state.value}: {status.error}): cannot re-check")
    error = next((e for e in report.errors if e.check == finding.check and e.target == finding.target), None)
    if error is not None:
        raise FixRefused(f"re-running {finding.check} on {finding.target} failed ({error.kind}: {error.message})")
    fresh = next((f for f in report.findings if f.id == finding.id), None)
    common: dict[str, Any] = dict(target=finding.target, engine=target.kind, environment=target.environment,
                  url=target.masked_url, requested=finding, role=status.role if status else None,
                  allow_unsafe=allow_unsafe)
    if fresh is None:
        return FixPlan(finding=None, steps=(), inverse=(), safety=None, lock=None, refusals=[], gone=True,
                       summary="the problem no longer exists", **common)
    fix = fresh.fix
    return FixPlan(
        finding=fresh,
        steps=fix.steps if fix else (),
        inverse=fix.inverse if fix else (),
        safety=fix.safety if fix else None,
        lock=fix.lock if fix else None,
        refusals=refusals_for(finding.target, target, fresh.fix, allow_unsafe=allow_unsafe,
                              role=status.role if status else None),
        summary=fix.summary if fix else "",
        notes=fix.notes if fix else None,
        **common,
    )


def refusals_for(name: str, target: TargetBase, fix: Fix | None, *, allow_unsafe: bool, role: str | None = None) -> list[str]:
    """Every reason this fix may not be applied here as asked, phrased with what to do about it."""
    if fix is None:
        return ["this finding has no fix dbvitals can apply"]
    return refusals(name, target, kind="fix", safety=fix.safety, lock=fix.lock, has_steps=bool(fix.steps),
                    allow_unsafe=allow_unsafe, role=role)


# --- applying ------------------------------------------------------------------------------------

async def apply_fix(
    settings: Settings,
    registry: Registry,
    plan: FixPlan,
    *,
    allow_unsafe: bool | None = None,
    on_progress: Progress | None = None,
    journal: Journal | None = None,
    limits: FixLimits | None = None,
    kept: KeptConnections | None = None,
) -> Outcome:
    """Apply a plan. Its refusals are the plan's, computed once: passing allow_unsafe=True here
    lifts none of them, and allow_unsafe=False contradicts a plan made with it (plan again).
    `kept`: the check connections of the run that found the finding, reused to verify."""
    if allow_unsafe is False and plan.allow_unsafe:
        raise ValueError("the plan was made with allow_unsafe=True: plan it again without it")
    if plan.gone or plan.finding is None:
        return Outcome("", "refused", "the problem no longer exists: nothing to apply", None, 0.0)
    journal = journal or Journal.for_settings(settings)
    target = _target(settings, plan.target)
    finding = plan.finding
    entry = fix_entry("fix", plan.target, target, finding_summary(finding), finding.fix, plan.steps, plan.inverse)
    action = StepsAction(settings, registry, journal, entry, target, plan.steps, list(plan.refusals),
                         judge=_judge_fixed, limits=limits or FixLimits(), kept=kept)
    if not plan.refusals:
        concrete = adapter_for(target.kind).concrete_inverse(plan.steps, plan.inverse, entry.id)
        entry.inverse = [masked_step(s, action.secrets) for s in concrete]
        action.resume = _resume_cursors(journal, entry, plan.steps)
        action.earlier_builds = _earlier_builds(journal, entry)
    return await perform(action, journal, on_progress=on_progress)


@dataclass
class StepsAction:
    """A fix or an undo as the pipeline runs it: steps through the engine's executor, verified
    by re-running the finding's check (`judge` reads its report)."""

    settings: Settings
    registry: Registry
    journal: Journal
    entry: JournalEntry
    target: TargetBase
    steps: Sequence[FixStep]
    refusals: list[str]
    judge: Callable[[Report, dict[str, Any]], tuple[str, bool, str]]
    limits: FixLimits
    kept: KeptConnections | None = None
    resume: dict[int, Any] = field(default_factory=dict)
    earlier_builds: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what the undo's guard found, journaled with it

    @property
    def secrets(self) -> tuple[str, ...]:
        return self.target.secret_values()

    async def apply(self, work: Work) -> None:
        work.notes.extend(self.notes)
        run = Execution(
            target_name=self.entry.target, target=self.target, entry_id=self.entry.id,
            side_dir=self.journal.side_dir, limits=self.limits, on_progress=work.progress,
            resume_cursors=self.resume, earlier_builds=self.earlier_builds, notes=work.notes,
        )
        failure = None
        try:
            await adapter_for(self.entry.engine).execute(run, self.steps)
        except StepFailed as exc:
            failure = str(exc)
        except asyncio.CancelledError:
            # The executor has put back what the interrupted step started (its notes and
            # leftovers say what); what the done steps left is recorded for a guarded undo.
            work.steps_done, work.leftovers = run.steps_done, run.leftovers
            if run.steps_done:
                try:
                    await asyncio.wait_for(_record_state(self.entry, run, self.steps), RECORD_TIMEOUT_S)
                except TimeoutError:
                    work.notes.append("could not record what the fix left for a guarded undo in time")
            raise
        except Exception as exc:  # an executor bug or driver surprise is still a journaled failure
            failure = f"{type(exc).__name__}: {exc}"
        work.steps_done, work.leftovers = run.steps_done, run.leftovers
        await _record_state(self.entry, run, self.steps)
        if failure is not None:
            raise ActionFailed(failure)

    async def verify(self, work: Work) -> Verdict:
        await work.progress("verifying: re-running the check")
        return Verdict(*await verify_after(self.settings, self.registry, self.entry, self.judge, kept=self.kept))


async def verify_after(
    settings: Settings, registry: Registry, entry: JournalEntry,
    judge: Callable[[Report, dict[str, Any]], tuple[str, bool, str]], *, kept: KeptConnections | None = None,
) -> tuple[str, bool | None, str]:
    """Re-run the finding's check and let `judge` read its report against the entry's finding.
    A check that cannot run again shows nothing: the action is then not_fixed, unverified, and
    says why."""
    check = entry.finding["check"]
    try:
        report = await _run(settings, registry, targets=[entry.target], checks=[check], kept=kept)
    except FixRefused as exc:
        return "not_fixed", None, f"applied; could not verify: {exc}"
    error = next((e for e in report.errors if e.check == check), None)
    if error is not None or (report.targets and not report.targets[0].reachable):
        why = error.message if error else report.targets[0].error
        return "not_fixed", None, f"applied; could not verify: re-running {check} failed ({why})"
    return judge(report, entry.finding)


def _judge_fixed(report: Report, finding: dict[str, Any]) -> tuple[str, bool, str]:
    check, finding_id = finding["check"], finding["id"]
    if any(f.id == finding_id for f in report.findings):
        return "not_fixed", False, f"applied, but {check} still reports finding {finding_id}"
    return "fixed", True, f"fixed: {check} no longer reports finding {finding_id}"


def _judge_undone(report: Report, finding: dict[str, Any]) -> tuple[str, bool, str]:
    """Undone when the check reports the problem on the same object again. By object, not id:
    a finding's id also names what it was judged against (the wider index that covers a
    narrower one), which may have changed between the fix and its undo."""
    check, finding_id, obj = finding["check"], finding["id"], finding.get("object")
    on_object = [f for f in report.findings if f.check == check and obj is not None and f.object == obj]
    # By object only when it names one finding: several on it could be other problems than this one.
    again = next((f for f in report.findings if f.id == finding_id), None) or (
        on_object[0] if len(on_object) == 1 else None)
    if again is None and len(on_object) > 1:
        return ("not_fixed", False, f"inverse applied; {check} reports {len(on_object)} other findings on {obj}, "
                                    f"none of them finding {finding_id}: which one is this fix's cannot be told")
    if again is None:
        return "not_fixed", False, f"inverse applied, but {check} does not report {obj or finding_id} again"
    if again.id != finding_id:
        return ("fixed", True, f"undone: {check} reports {obj} again, as before the fix (as finding {again.id}: "
                               f"what it was judged against changed since finding {finding_id})")
    return "fixed", True, f"undone: {check} reports finding {finding_id} again, as before the fix"


# --- undo ----------------------------------------------------------------------------------------

def plan_undo(settings: Settings, entry_id: str, *, allow_unsafe: bool = False, journal: Journal | None = None) -> UndoPlan:
    journal = journal or Journal.for_settings(settings)
    try:
        entry = journal.get(entry_id)
    except LookupError as exc:
        raise FixRefused(str(exc)) from None
    if entry is None:
        raise FixRefused(f"no journal entry {entry_id} in {journal.path} (see `dbvitals history`)")
    steps = tuple(FixStep.from_dict(s) for s in entry.inverse)
    refusals: list[str] = []
    warnings: list[str] = []
    recorded_keys = any(adapter_for(entry.engine).has_undo_record(journal.side_file, s) for s in steps)
    if entry.outcome == "refused":
        refusals.append(f"entry {entry.id} was refused: nothing was applied")
    elif entry.steps_done == 0 and not recorded_keys and not adapter_for(entry.engine).inspects(steps):
        refusals.append(f"entry {entry.id} applied no step ({entry.state}): there is nothing to undo")
    elif entry.steps_done == 0 and not recorded_keys:
        # Its process may have died while the server went on (an index build finishes without
        # its client): what is on the server, not the journal, tells what there is to undo.
        warnings.append(
            f"entry {entry.id} did not finish ({entry.state}, no step recorded as applied): "
            "dbvitals looks at the server and undoes only what this fix left there"
        )
    elif entry.outcome in (None, "failed"):
        warnings.append(
            f"entry {entry.id} did not finish ({entry.state}, {entry.steps_done} of {len(entry.steps)} steps applied): "
            "its inverse may meet a half-applied state"
        )
    undone = journal.undone_by(entry.id)
    if undone is not None:
        refusals.append(f"entry {entry.id} was already undone by entry {undone.id} ({undone.started_at})")
    elif not recorded_keys and (not entry.finished or (entry.outcome == "failed" and not entry.expect)):
        again = _applied_again(journal, entry)
        if again is not None:
            # What an unfinished entry left, a later run of the same fix replaced (it drops its
            # INVALID leftover first): the objects on the server are that run's to undo.
            refusals.append(f"entry {entry.id} did not finish and the same fix ran again after it, as entry {again.id} "
                            f"({again.state}): what is on the server is that entry's: undo {again.id} instead")
    if not steps:
        refusals.append(f"this {entry.kind} has no inverse: dbvitals cannot undo it")
    target = settings.targets.get(entry.target)
    if target is None:
        refusals.append(f"target {entry.target} is no longer configured")
    else:
        if target.masked_url != entry.url:
            refusals.append(f"target {entry.target} now points at {target.masked_url}, but the fix was applied to {entry.url}")
        if steps:
            fix = Fix(summary=f"undo {entry.id}", steps=steps, safety=FixSafety(entry.safety), lock=undo_lock(entry, steps))
            refusals.extend(refusals_for(entry.target, target, fix, allow_unsafe=allow_unsafe))
    return UndoPlan(entry=entry, steps=steps, refusals=refusals, warnings=warnings)


def _applied_again(journal: Journal, entry: JournalEntry) -> JournalEntry | None:
    entries = journal.entries()
    ids = [e.id for e in entries]
    later = entries[ids.index(entry.id) + 1:] if entry.id in ids else []
    for other in later:
        if (other.kind == entry.kind == "fix" and other.target == entry.target and other.url == entry.url
                and other.finding.get("id") == entry.finding.get("id")
                and (other.outcome in ("fixed", "not_fixed") or other.steps_done > 0)):
            return other
    return None


async def inspect_undo(settings: Settings, plan: UndoPlan) -> UndoPlan:
    """Compare what the inverse would touch with what the fix left (the engine's guard) and
    narrow an unfinished entry's inverse to what is there. Refusals say what changed."""
    entry = plan.entry
    target = settings.targets.get(entry.target)
    if plan.refusals or target is None or not plan.steps:
        return plan
    try:
        check = await adapter_for(entry.engine).guard_undo(target, entry, plan.steps)
    except Exception as exc:  # the guard cannot tell: never undo blind
        plan.refusals.append("could not check what the fix left on the server "
                             f"({mask_text(f'{type(exc).__name__}: {exc}', target.secret_values())[:300]})")
        return plan
    plan.steps = tuple(check.steps)
    plan.refusals.extend(check.refusals)
    plan.warnings.extend(check.notes)
    if not plan.steps and not plan.refusals:
        plan.refusals.append(f"entry {entry.id} ({entry.state}) left nothing on the server that its inverse "
                             "would undo: there is nothing to undo")
    return plan


async def undo_fix(
    settings: Settings,
    registry: Registry,
    entry_id: str,
    *,
    allow_unsafe: bool = False,
    on_progress: Progress | None = None,
    journal: Journal | None = None,
    limits: FixLimits | None = None,
) -> Outcome:
    journal = journal or Journal.for_settings(settings)
    plan = await inspect_undo(settings, plan_undo(settings, entry_id, allow_unsafe=allow_unsafe, journal=journal))
    original = plan.entry
    target = settings.targets.get(original.target)
    fix = Fix(summary=f"undo of {original.id}: {original.summary}", steps=plan.steps,
              safety=FixSafety(original.safety), lock=undo_lock(original, plan.steps))
    redo = tuple(FixStep.from_dict(s) for s in original.steps)
    if target is None:
        raise FixRefused(plan.refusals[0])
    adapter_for(original.engine).inspects(plan.steps)  # imports the engine's executor: its OWN_UNDO makers
    own = OWN_UNDO.get(str(original.finding.get("check")))
    if own is not None:
        # A change with no check to re-run (a server setting): its own action reads it back.
        return await perform(own(original.target, target, original, plan.steps, extra_refusals=plan.refusals),
                             journal, on_progress=on_progress)
    entry = fix_entry("undo", original.target, target, original.finding, fix, plan.steps, redo, undoes=original.id)
    action = StepsAction(settings, registry, journal, entry, target, plan.steps, list(plan.refusals),
                         judge=_judge_undone, limits=limits or FixLimits(), notes=list(plan.warnings))
    return await perform(action, journal, on_progress=on_progress)


# --- helpers -------------------------------------------------------------------------------------

def undo_lock(entry: JournalEntry, inverse: Sequence[FixStep]) -> str | None:
    """The locks the inverse takes, in its own words: restoring a dropped index is a build, not
    the drop the fix's lock described. The fix's own wording only when no step is known."""
    return steps_lock(inverse) or entry.lock


def finding_summary(finding: Finding) -> dict[str, Any]:
    return {"id": finding.id, "check": finding.check, "object": finding.object, "title": finding.title,
            "severity": finding.severity.value}


def fix_entry(
    kind: str, name: str, target: TargetBase, finding: dict[str, Any], fix: Fix | None,
    steps: Sequence[FixStep], inverse: Sequence[FixStep], *, undoes: str | None = None,
) -> JournalEntry:
    return new_entry(kind, name, target, finding, summary=fix.summary if fix else "",
                     safety=fix.safety if fix else FixSafety.MANUAL, lock=fix.lock if fix else None,
                     steps=steps, inverse=inverse, undoes=undoes)


def _earlier_builds(journal: Journal, entry: JournalEntry) -> dict[str, str]:
    """What earlier entries on this target that did not finish were building: name -> entry id.
    A build's INVALID leftover of that name may then be dropped to build it again."""
    adapter = adapter_for(entry.engine)
    builds: dict[str, str] = {}
    for earlier in journal.entries():
        if earlier.target != entry.target or earlier.url != entry.url or earlier.outcome not in (None, "failed"):
            continue
        for name in adapter.interruptible_builds([FixStep.from_dict(s) for s in earlier.steps]):
            builds[name] = earlier.id
    return builds


async def _record_state(entry: JournalEntry, run: Execution, steps: Sequence[FixStep]) -> None:
    """Note what the applied steps left, for the undo's guard; failing that, say so."""
    try:
        entry.expect = await adapter_for(entry.engine).record_state(run, steps)
    except Exception as exc:
        run.notes.append(f"could not record what the fix left for a guarded undo ({type(exc).__name__}: {exc})")


def _resume_cursors(journal: Journal, entry: JournalEntry, steps: Sequence[FixStep]) -> dict[int, Any]:
    """Where an earlier, interrupted run of this same fix stopped, for engines that can resume."""
    adapter = adapter_for(entry.engine)
    if not adapter.resumable(steps):
        return {}
    earlier = [
        e for e in journal.entries()
        if e.kind == "fix" and e.target == entry.target and e.url == entry.url
        and e.finding.get("id") == entry.finding["id"] and e.steps == entry.steps and e.outcome != "refused"
    ]
    # Only the latest attempt counts: a later one may have finished the work.
    if not earlier or earlier[-1].outcome not in (None, "failed"):
        return {}
    last = earlier[-1]
    # An undo (even one that stopped half-way) took back what the run had done before its
    # resume point: resuming there would leave that undone. Start over instead.
    if any(e.undoes == last.id and e.outcome != "refused" for e in journal.entries()):
        return {}
    return adapter.resume_points(journal.side_file, last.id, steps)


def _target(settings: Settings, name: str) -> TargetBase:
    target = settings.targets.get(name)
    if target is None:
        known = ", ".join(settings.targets) or "none configured"
        raise FixRefused(f"unknown target {name} (configured: {known})")
    return target


async def _run(
    settings: Settings, registry: Registry, *, targets: Sequence[str] | None, checks: Sequence[str] | None,
    kept: KeptConnections | None = None,
) -> Report:
    try:
        runner = Runner(settings, registry, targets=targets, checks=checks, kept=kept)
    except (UsageError, ConfigError) as exc:
        raise FixRefused(str(exc)) from None
    return await runner.run()
