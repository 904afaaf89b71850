"""Cancel or terminate one session or operation seen in the activity view.

An unsafe fix like any other: refused unless the target allows fixes and the caller allows
unsafe ones, never aimed at dbvitals's own sessions, journalled before it runs and again with
its outcome, and verified by reading the activity again."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from checks.activity import ActivitySample, for_engine, shorten
from checks.config import Settings
from checks.actions.journal import Journal, JournalEntry, host_name, now_iso, os_user
from checks.model import Engine, FixStep
from checks.secrets import mask_text

# The section of each engine's sample whose rows can be cancelled or terminated.
KILLABLE_SECTION = {"postgres": "sessions", "mongodb": "operations", "redis": "clients"}


class KillRefused(Exception):
    """Why this kill may not run, phrased with what to do about it."""


@dataclass
class KillPlan:
    target: str
    engine: str
    ident: str
    terminate: bool
    step: FixStep
    row: dict[str, Any]
    environment: str | None
    url: str

    @property
    def verb(self) -> str:
        return "terminate" if self.terminate else "cancel"


def refusals(settings: Settings, name: str, *, allow_unsafe: bool) -> list[str]:
    target = settings.targets[name]
    out = []
    if not target.allow_fixes:
        out.append(f"target {name} does not allow fixes (set allow_fixes = true in [targets.{name}] to permit them)")
    if not allow_unsafe:
        out.append("cancelling or terminating work is an unsafe fix: it is applied only with --allow-unsafe")
    return out


def plan_kill(settings: Settings, name: str, sample: ActivitySample, ident: str, *, terminate: bool) -> KillPlan:
    """The kill of `ident` as seen in `sample`; refused for a row that is not there or is ours."""
    target = settings.targets[name]
    module = for_engine(Engine(sample.engine))
    rows = sample.sections.get(KILLABLE_SECTION[sample.engine], [])
    row = next((r for r in rows if str(r.get("id")) == str(ident)), None)
    if row is None:
        raise KillRefused(f"no {KILLABLE_SECTION[sample.engine][:-1]} {ident} on {name} now (it may have ended)")
    if row.get("own") or module.is_own(row):
        raise KillRefused(f"{ident} is one of dbvitals's own sessions: never cancelled or terminated by it")
    try:
        step = module.kill_step(str(ident), terminate=terminate)
    except LookupError as exc:
        raise KillRefused(str(exc)) from None
    return KillPlan(name, sample.engine, str(ident), terminate, step, row, target.environment, target.masked_url)


async def apply_kill(settings: Settings, session: Any, plan: KillPlan, journal: Journal) -> JournalEntry:
    """Run the kill, journalled before and after; the entry's outcome says whether it worked."""
    target = settings.targets[plan.target]
    module = for_engine(Engine(plan.engine))
    started = time.perf_counter()
    secrets = target.secret_values()
    entry = JournalEntry(
        id=_entry_id(), kind="fix", started_at=now_iso(), user=os_user(), host=host_name(),
        target=plan.target, engine=plan.engine, url=target.masked_url, environment=target.environment,
        finding={"id": f"activity:{plan.ident}", "check": "activity", "object": plan.ident,
                 "title": f"{plan.verb} {plan.ident}", "severity": "info"},
        summary=mask_text(f"{plan.verb} {plan.ident}: {shorten(_what(plan.row), 160)}", secrets),
        safety="unsafe", lock=plan.step.description, steps=[plan.step.to_dict()], inverse=[],
    )
    journal.append(entry)
    try:
        message = await module.apply(session, plan.step)
    except Exception as exc:  # the server refused (permissions, a vanished operation): journalled
        entry.outcome, entry.message = "failed", mask_text(f"{type(exc).__name__}: {exc}", secrets)[:1000]
    else:
        entry.steps_done = 1
        gone = await _verify(module, session, plan)
        entry.outcome = "fixed" if gone else "not_fixed"
        entry.verified = gone
        entry.message = message + ("" if gone else f"; {plan.ident} is still there")
    entry.finished_at = now_iso()
    entry.duration_ms = (time.perf_counter() - started) * 1000
    journal.append(entry)
    return entry


async def _verify(module: Any, session: Any, plan: KillPlan, *, wait_s: float = 3.0) -> bool:
    """Gone, or (for a cancel) no longer running the statement it ran."""
    deadline = time.monotonic() + wait_s
    while True:
        sample = await module.read(session, plan.target, None)
        rows = sample.sections.get(KILLABLE_SECTION[plan.engine], [])
        row = next((r for r in rows if str(r.get("id")) == plan.ident), None)
        if row is None:
            return True
        if not plan.terminate and module.cancelled(plan.row, row):
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.2)


def _what(row: dict[str, Any]) -> str:
    return str(row.get("query") or row.get("command") or row.get("last_command") or row.get("address") or "")


def _entry_id() -> str:
    import secrets as random

    return random.token_hex(6)
