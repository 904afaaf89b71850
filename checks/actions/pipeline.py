"""The one action pipeline: plan → refusals → confirmation → apply → verify → journal → inverse.

Everything dbvitals changes on a server is an `Action`, made by a planner: fix and undo
(checks.fixes), cancel and terminate (checks.actions.kill). A planner computes the action's
journal entry (one shape for every kind, checks.actions.journal), every reason it may not run
(`refusals`), and knows how to apply it and how to verify it by reading the server again. A
front-end (a CLI command, a console screen) shows the plan, asks for confirmation, and hands
the action to `perform`, which journals the start, applies, verifies and journals the outcome.

An action is `fixed` only when reading the server again shows its effect; otherwise it is
`not_fixed` (applied, no effect seen), `failed` (the server refused, or a step failed) or
`refused` (it may not run), each with the reason in words the user can act on.
"""

from __future__ import annotations

import asyncio
import secrets as _random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from checks.actions.journal import ENTRY_ID_HEX, Journal, JournalEntry, host_name, now_iso, os_user
from checks.config import TargetBase
from checks.model import FixSafety, FixStep
from checks.secrets import mask_text

Progress = Callable[[str], Any]


class ActionRefused(Exception):
    """The action cannot be planned, or what it was planned on changed before it ran; the
    message says why and what to do about it."""


class ActionFailed(Exception):
    """Applying failed (a step failed, the server refused); the message is phrased for the user."""


@dataclass
class Verdict:
    """What reading the server again showed."""

    outcome: str  # fixed | not_fixed
    verified: bool | None  # None: the server could not be read again
    message: str
    next_action: str | None = None  # what to try when this did not work (a cancel offers "terminate")


@dataclass
class Outcome:
    entry_id: str  # "" when nothing was journaled (the problem was already gone)
    outcome: str  # fixed | not_fixed | failed | refused
    message: str
    verified: bool | None
    duration_ms: float
    leftovers: list[str] = field(default_factory=list)
    next_action: str | None = None


@dataclass
class Work:
    """What applying reports as it goes, for the journal: steps done, what a failure left behind,
    notes for the user."""

    on_progress: Progress | None = None
    steps_done: int = 0
    leftovers: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    async def progress(self, message: str) -> None:
        if self.on_progress is None:
            return
        outcome = self.on_progress(message)
        if asyncio.iscoroutine(outcome):
            await outcome


class Action(Protocol):
    """One planned change to one server."""

    entry: JournalEntry  # masked; written when the action starts and again with its outcome
    refusals: list[str]  # why it may not run; empty when it may

    @property
    def secrets(self) -> tuple[str, ...]:
        """The target's secrets, masked out of every message."""
        ...

    async def apply(self, work: Work) -> None:
        """Make the change; raise ActionFailed (journaled as failed) or ActionRefused (what it was
        planned on changed: nothing was sent)."""
        ...

    async def verify(self, work: Work) -> Verdict:
        """Read the server again: does it show the change?"""
        ...


def refusals(name: str, target: TargetBase, *, kind: str, safety: FixSafety, lock: str | None,
             has_steps: bool, allow_unsafe: bool, role: str | None = None) -> list[str]:
    """Every reason an action of this safety may not run on this target as asked, phrased with
    what to do about it: the same words for a fix, an undo, a cancel and a terminate."""
    out = []
    if safety is FixSafety.MANUAL:
        out.append(f"a manual {kind}: dbvitals shows it for a human to adapt and run, and never applies it")
    if not target.allow_fixes:
        out.append(f"target {name} does not allow fixes (set allow_fixes = true in [targets.{name}] to permit them)")
    if safety is FixSafety.UNSAFE and not allow_unsafe:
        impact = f" ({lock})" if lock else ""
        out.append(f"an unsafe {kind}{impact}: it is applied only with --allow-unsafe")
    if role and (role == "replica" or role.startswith("secondary")):
        out.append(f"target {name} is a {role}: apply fixes on the primary")
    if not has_steps and safety is not FixSafety.MANUAL:
        out.append(f"the {kind} has no steps")
    return out


def new_entry(
    kind: str, name: str, target: TargetBase, subject: dict[str, Any], *, summary: str, safety: FixSafety,
    lock: str | None, steps: Sequence[FixStep], inverse: Sequence[FixStep], undoes: str | None = None,
) -> JournalEntry:
    """The journal entry of an action about to start, with every string masked."""
    secrets = target.secret_values()
    return JournalEntry(
        id=_random.token_hex(ENTRY_ID_HEX // 2),
        kind=kind,
        started_at=now_iso(),
        user=os_user(),
        host=host_name(),
        target=name,
        engine=target.kind,
        url=target.masked_url,
        environment=target.environment,
        finding=mask_value(subject, secrets),
        summary=mask_text(summary, secrets),
        safety=safety.value,
        lock=lock,
        steps=[masked_step(s, secrets) for s in steps],
        inverse=[masked_step(s, secrets) for s in inverse],
        undoes=undoes,
    )


def masked_step(step: FixStep, secrets: tuple[str, ...]) -> dict[str, Any]:
    return mask_value(step.to_dict(), secrets)


def mask_value(value: Any, secrets: tuple[str, ...]) -> Any:
    """Every string inside masked; tuples become lists, as the journal reads them back."""
    if isinstance(value, str):
        return mask_text(value, secrets)
    if isinstance(value, dict):
        return {k: mask_value(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_value(v, secrets) for v in value]
    return value


def raise_if_stopping() -> None:
    """Raise the CancelledError of a stop signal that was swallowed on the way: Python 3.11's
    asyncio.wait_for (redis-py writes through it) drops a cancellation that lands as its inner
    future completes, and leaves the task marked as cancelling. Called between steps and
    batches, so such a signal stops the work at the next boundary instead of being lost."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def perform(action: Action, journal: Journal, *, on_progress: Progress | None = None) -> Outcome:
    """Run a planned, confirmed action: refused if it has refusals, else journaled as started,
    applied, verified by reading the server again, and journaled with its outcome."""
    started = time.perf_counter()
    entry = action.entry
    if action.refusals:
        return _finish(journal, action, Work(), "refused", "refused: " + "; ".join(action.refusals), started)
    journal.append(entry)
    work = Work(on_progress=on_progress)
    try:
        await action.apply(work)
    except asyncio.CancelledError:
        # A stop signal (console.runtime.run_async) or a closed screen: the action's apply has
        # finished or undone what it started on the server by now, said in notes and leftovers.
        _finish(journal, action, work, "failed",
                f"interrupted after {work.steps_done} of {len(entry.steps)} steps", started)
        raise
    except ActionRefused as exc:
        return _finish(journal, action, work, "refused", f"refused: {exc}", started)
    except ActionFailed as exc:
        return _finish(journal, action, work, "failed", str(exc), started)
    except Exception as exc:  # an executor bug or a driver surprise is still a journaled failure
        return _finish(journal, action, work, "failed", f"{type(exc).__name__}: {exc}", started)
    try:
        verdict = await action.verify(work)
    except asyncio.CancelledError:
        _finish(journal, action, work, "not_fixed",
                f"applied ({work.steps_done} of {len(entry.steps)} steps); interrupted before it was verified", started)
        raise
    return _finish(journal, action, work, verdict.outcome, verdict.message, started,
                   verified=verdict.verified, next_action=verdict.next_action)


def _finish(
    journal: Journal, action: Action, work: Work, outcome: str, message: str, started: float, *,
    verified: bool | None = None, next_action: str | None = None,
) -> Outcome:
    entry = action.entry
    parts = [message, *work.notes]
    if work.leftovers:
        parts.append("left behind: " + "; ".join(work.leftovers))
    entry.outcome = outcome
    entry.verified = verified
    entry.steps_done = work.steps_done
    entry.leftovers = [mask_text(item, action.secrets) for item in work.leftovers]
    entry.message = mask_text(". ".join(p.rstrip(".") for p in parts if p), action.secrets)
    entry.finished_at = now_iso()
    entry.duration_ms = round((time.perf_counter() - started) * 1000, 1)
    journal.append(entry)
    return Outcome(entry.id, outcome, entry.message, verified, entry.duration_ms, list(entry.leftovers), next_action)
