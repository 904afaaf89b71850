"""Cancel and terminate: the planner that stops one session or operation seen in the activity view.

An unsafe action like any other in the pipeline: refused unless the target allows fixes and the
caller allows unsafe ones, never aimed at dbvitals's own sessions, and before the signal the
server is read again: the session must still run what the preview showed. Verified by reading
the activity again: a terminate is done when the session is gone; a cancel when the statement
the preview showed no longer runs. A cancel that finds nothing running (a PostgreSQL session
idle in transaction, holding its locks) changes nothing: `not_fixed`, and terminate offered.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from checks.actions.journal import JournalEntry
from checks.actions.pipeline import ActionFailed, ActionRefused, Verdict, Work, new_entry, refusals
from checks.activity import OWN_SECTION, ActivitySample, EngineActivity, for_engine, relation, root_blocker, shorten
from checks.activity.session import ActivityWatch
from checks.engines import step_text
from checks.config import Settings
from checks.model import Engine, FixSafety, FixStep

# How long a signalled session or operation may take to stop before the verdict is not_fixed.
VERIFY_WAIT_S = 3.0


def kill_refusals(settings: Settings, name: str, *, terminate: bool, allow_unsafe: bool) -> list[str]:
    """Why no cancel or terminate may run on this target as asked: known before reading it."""
    return refusals(name, settings.targets[name], kind=verb(terminate), safety=FixSafety.UNSAFE,
                    lock=None, has_steps=True, allow_unsafe=allow_unsafe)


def verb(terminate: bool) -> str:
    return "terminate" if terminate else "cancel"


def plan_kill(settings: Settings, watch: ActivityWatch, name: str, sample: ActivitySample, ident: str, *,
              terminate: bool, allow_unsafe: bool) -> KillAction:
    """The cancel or terminate of `ident` as `sample` (what the user saw) shows it. Raises
    ActionRefused for a row that is not there or is one of dbvitals's own."""
    target = settings.targets[name]
    module = for_engine(Engine(sample.engine))
    if module.KILLABLE is None:
        raise ActionRefused(f"{name}: nothing on a {sample.engine} target can be cancelled or terminated")
    noun = module.KILLABLE[:-1]
    rows = sample.sections.get(module.KILLABLE, [])
    row = next((r for r in [*rows, *sample.sections.get(OWN_SECTION, [])] if str(r.get("id")) == str(ident)), None)
    if row is None:
        raise ActionRefused(f"no {noun} {ident} on {name} now (it may have ended)")
    if row.get("own"):
        raise ActionRefused(f"{ident} is one of dbvitals's own sessions: never cancelled or terminated by it")
    try:
        step = module.kill_step(str(ident), terminate=terminate)
    except LookupError as exc:
        raise ActionRefused(str(exc)) from None
    kind = verb(terminate)
    what = shorten(work_text(row), 160)
    entry = new_entry(
        kind, name, target,
        {"id": f"activity:{ident}", "check": "activity", "object": str(ident), "title": f"{kind} {noun} {ident}",
         "severity": "info"},
        summary=f"{kind} {noun} {ident}: {what}", safety=FixSafety.UNSAFE, lock=step.description,
        steps=[step], inverse=[],
    )
    return KillAction(
        entry=entry,
        refusals=refusals(name, target, kind=kind, safety=FixSafety.UNSAFE, lock=step.description,
                          has_steps=True, allow_unsafe=allow_unsafe),
        secrets=target.secret_values(), watch=watch, module=module, terminate=terminate,
        ident=str(ident), noun=noun, row=row, step=step,
        terminate_step=None if terminate else module.kill_step(str(ident), terminate=True),
        relation=relation(row), root_blocker=root_blocker(rows, str(ident)),
    )


@dataclass
class KillAction:
    entry: JournalEntry
    refusals: list[str]
    secrets: tuple[str, ...]
    watch: ActivityWatch
    module: EngineActivity
    terminate: bool
    ident: str
    noun: str  # session / operation / client
    row: dict[str, Any]  # the row the preview showed
    step: FixStep
    terminate_step: FixStep | None  # a cancel's: what terminating would run instead
    relation: str | None = None  # "blocks 3, waits on none", where the engine tells
    root_blocker: str | None = None  # the head of the chain this session waits in, if it waits

    @property
    def verb(self) -> str:
        return verb(self.terminate)

    @property
    def target(self) -> str:
        return self.entry.target

    async def apply(self, work: Work) -> None:
        now = await self._row()
        if now is None:
            raise ActionRefused(f"{self.noun} {self.ident} ended before it was signalled: nothing was sent")
        changed = self.module.changed(self.row, now)
        if changed:
            raise ActionRefused(f"{changed}: nothing was sent; look again and choose anew")
        await work.progress(f"running {step_text(self.step)}")
        try:
            async with self.watch.using(self.target) as session:
                said = await self.module.apply(session, self.step)
        except Exception as exc:  # the server refused (permissions, a vanished operation)
            raise ActionFailed(f"{self.verb} {self.ident}: {type(exc).__name__}: {exc}"[:1000]) from None
        work.steps_done = 1
        await work.progress(said)

    async def verify(self, work: Work) -> Verdict:
        await work.progress("verifying: reading the activity again")
        nothing_running = None if self.terminate else self.module.idle(self.row)
        # Where a terminate would do more than this cancel did, it is what to try next.
        offer = "terminate" if self.terminate_step is not None and self.terminate_step != self.step else None
        deadline = time.monotonic() + VERIFY_WAIT_S
        while True:
            try:
                now = await self._row()
            except Exception as exc:  # the view's connection died: the signal went, its effect is unseen
                return Verdict("not_fixed", None, f"signal sent; could not read the activity again "
                                                  f"({type(exc).__name__}: {shorten(exc, 160)})")
            if now is None:
                return Verdict("fixed", True, f"{self.verb}: {self.noun} {self.ident} is gone")
            if nothing_running:
                return Verdict("not_fixed", False, f"not stopped: {nothing_running}", next_action=offer)
            if not self.terminate and not self.module.still_running(self.row, now):
                return Verdict("fixed", True, f"cancelled: {self.noun} {self.ident} no longer runs the statement "
                                              f"(it is {now.get('state') or 'idle'} now)")
            if time.monotonic() > deadline:
                return Verdict("not_fixed", False, f"not stopped: {self.noun} {self.ident} still runs it "
                                                   f"{VERIFY_WAIT_S:g}s after the signal", next_action=offer)
            await asyncio.sleep(0.2)

    async def _row(self) -> dict[str, Any] | None:
        sample = await self.watch.reread(self.target)
        rows = sample.sections.get(for_engine(sample.engine).KILLABLE or "", [])
        return next((r for r in rows if str(r.get("id")) == self.ident), None)


def work_text(row: dict[str, Any]) -> str:
    """What a row is doing, in one line: its statement, command or address."""
    return str(row.get("query") or row.get("command") or row.get("last_command") or row.get("address") or "")
