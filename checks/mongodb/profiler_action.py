"""Setting the MongoDB profiler, as an action of the pipeline (checks.actions.pipeline).

A profiler level is a server setting: changing it is refused without `allow_fixes = true` on
the target (the same words as a fix's refusal), shown before it runs, journaled as a fix-like
entry whose inverse is the level, slowms and sampleRate found before, verified by reading the
profiling level back (`profile: -1`), and undone with `dbvitals undo ID` like any fix.
`dbvitals profiler --for` is this action followed by its undo, also on SIGINT, SIGTERM, SIGHUP.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from checks.actions.journal import JournalEntry
from checks.actions.pipeline import ActionFailed, Verdict, Work, new_entry, refusals
from checks.config import TargetBase
from checks.model import FixSafety, FixStep
from checks.mongodb.profiler import ProfilerSetting, read_profiler_setting
from checks.secrets import mask_text

# The `check` of a profiler entry's subject: `dbvitals undo` knows such an entry by it.
PROFILER_CHECK = "mongodb.profiler"
KIND = "profiler change"  # how a refusal names it
IMPACT = {0: "the profiler off", 1: "records operations slower than slowms into system.profile",
          2: "records every operation into system.profile: costs throughput"}


def setting_command(level: int, slowms: int | None = None, sample_rate: float | None = None) -> dict[str, Any]:
    command: dict[str, Any] = {"profile": level}
    if slowms is not None:
        command["slowms"] = int(slowms)
    if sample_rate is not None:
        command["sampleRate"] = float(sample_rate)
    return command


def restore_command(previous: ProfilerSetting) -> dict[str, Any]:
    return setting_command(previous.level if previous.level is not None else 0, previous.slowms, previous.sample_rate)


def _step(database: str, command: dict[str, Any], what: str) -> FixStep:
    return FixStep(language="mongodb", command=command, database=database, description=what)


async def plan_profiler(name: str, target: TargetBase, client: Any, databases: Sequence[str], level: int, *,
                        slowms: int | None = None, sample_rate: float | None = None) -> ProfilerAction:
    """The change of each database's profiler to `level`, with the setting found now as its
    inverse. Reads only; its refusals say whether it may run."""
    if level not in (0, 1, 2):
        raise ValueError("profiler level must be 0, 1 or 2")
    current = [await read_profiler_setting(client, db) for db in databases]
    command = setting_command(level, slowms, sample_rate)
    steps = [_step(db, command, f"profiler of {db}: level {level} ({IMPACT[level]})") for db in databases]
    inverse = [_step(c.database, restore_command(c), f"put back {c.describe()}") for c in current]
    where = ", ".join(databases)
    entry = new_entry(
        "fix", name, target,
        {"id": f"profiler:{where}", "check": PROFILER_CHECK, "object": where,
         "title": f"set the profiler to level {level}", "severity": "info"},
        summary=f"set the MongoDB profiler of {where} to level {level}", safety=FixSafety.SAFE,
        lock=IMPACT[level], steps=steps, inverse=inverse,
    )
    return ProfilerAction(entry=entry, target=target, steps=steps, before=current,
                          refusals=refusals(name, target, kind=KIND, safety=FixSafety.SAFE, lock=None,
                                            has_steps=bool(steps), allow_unsafe=False))


def undo_action(name: str, target: TargetBase, original: JournalEntry, steps: Sequence[FixStep] | None = None, *,
                extra_refusals: Sequence[str] = ()) -> ProfilerAction:
    """Put back what a profiler entry found (its inverse, or `steps`, what the undo's guard kept)."""
    inverse = list(steps) if steps is not None else [FixStep.from_dict(s) for s in original.inverse]
    redo = [FixStep.from_dict(s) for s in original.steps]
    entry = new_entry(
        "undo", name, target, dict(original.finding), summary=f"undo of {original.id}: {original.summary}",
        safety=FixSafety.SAFE, lock=None, steps=inverse, inverse=redo, undoes=original.id,
    )
    reasons = list(extra_refusals) or refusals(name, target, kind=KIND, safety=FixSafety.SAFE, lock=None,
                                               has_steps=bool(inverse), allow_unsafe=False)
    return ProfilerAction(entry=entry, target=target, steps=inverse, before=[], refusals=reasons)


def is_profiler_entry(entry: JournalEntry) -> bool:
    return entry.engine == "mongodb" and entry.finding.get("check") == PROFILER_CHECK


@dataclass
class ProfilerAction:
    entry: JournalEntry
    target: TargetBase
    steps: Sequence[FixStep]
    before: list[ProfilerSetting]  # what the plan found (empty for an undo)
    refusals: list[str]

    @property
    def secrets(self) -> tuple[str, ...]:
        return self.target.secret_values()

    def entry_inverse(self) -> list[FixStep]:
        return [FixStep.from_dict(s) for s in self.entry.inverse]

    async def apply(self, work: Work) -> None:
        from checks.mongodb.connector import close_client, make_client

        client = make_client(self.target, maxPoolSize=1)
        try:
            for number, step in enumerate(self.steps, 1):
                await work.progress(f"step {number} of {len(self.steps)}: {step.command} on {step.database}")
                try:
                    await client[str(step.database)].command(dict(step.command))
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    raise ActionFailed(f"step {number} (profile on {step.database}) failed: "
                                       f"{mask_text(f'{type(exc).__name__}: {exc}', self.secrets)[:500]}") from None
                work.steps_done = number
        finally:
            await close_client(client)

    async def verify(self, work: Work) -> Verdict:
        """Read each database's profiler back: the level (and slowms, sampleRate) set must be in force."""
        from checks.mongodb.connector import close_client, make_client

        await work.progress("verifying: reading the profiling level back")
        client = make_client(self.target, maxPoolSize=1)
        seen, wrong = [], []
        try:
            for step in self.steps:
                now = await read_profiler_setting(client, str(step.database))
                seen.append(now.describe())
                wanted = dict(step.command)
                if (now.level != wanted["profile"]
                        or ("slowms" in wanted and now.slowms is not None and now.slowms != wanted["slowms"])
                        or ("sampleRate" in wanted and now.sample_rate is not None
                            and abs(now.sample_rate - wanted["sampleRate"]) > 1e-9)):
                    wrong.append(f"{now.describe()} (wanted {wanted})")
        except Exception as exc:
            return Verdict("not_fixed", None, f"applied; could not read the profiler back "
                                              f"({mask_text(f'{type(exc).__name__}: {exc}', self.secrets)[:300]})")
        finally:
            await close_client(client)
        if wrong:
            return Verdict("not_fixed", False, "applied, but the server reports " + "; ".join(wrong))
        return Verdict("fixed", True, "the server reports " + "; ".join(seen))
