"""What every engine's executor shares: the limits, progress reporting and failure record."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from checks.actions.pipeline import Progress
from checks.config import TargetBase
from checks.engines import UndoCheck  # noqa: F401 - the undo guard's answer, defined with the adapter interface

# A fix must never queue behind a long transaction and block everyone queued behind it, so
# its lock wait is short; building an index on a big table takes long, so its statements may.
DEFAULT_LOCK_TIMEOUT_S = 5.0
DEFAULT_STATEMENT_TIMEOUT_S = 30 * 60.0
# How often a step that gave up on a lock is tried again before the fix fails.
LOCK_ATTEMPTS = 3
# How long putting back a step a stop signal interrupted may take before dbvitals exits anyway.
CLEANUP_TIMEOUT_S = 30.0


class StepFailed(Exception):
    """A step failed; the message is phrased for the user and names the step."""


@dataclass(frozen=True)
class FixLimits:
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
    statement_timeout_s: float = DEFAULT_STATEMENT_TIMEOUT_S
    lock_attempts: int = LOCK_ATTEMPTS
    retry_pause_s: float = 1.0


@dataclass
class Execution:
    """One run of a list of steps on one target, as an executor sees it."""

    target_name: str
    target: TargetBase
    entry_id: str
    side_dir: Path
    limits: FixLimits
    on_progress: Progress | None = None
    steps_done: int = 0
    leftovers: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Redis batch operations: per step index, the SCAN cursor an interrupted run stopped at
    # and the server run_id it belongs to.
    resume_cursors: dict[int, tuple[int, str | None]] = field(default_factory=dict)
    # Index builds earlier, interrupted runs of this fix journaled: index name -> entry id. Only
    # an INVALID index the journal says dbvitals was building may be dropped to build it again.
    earlier_builds: dict[str, str] = field(default_factory=dict)

    async def progress(self, message: str) -> None:
        if self.on_progress is None:
            return
        outcome = self.on_progress(message)
        if asyncio.iscoroutine(outcome):
            await outcome
