"""What the background workers tell the UI. Small dataclass messages: the UI loop never
waits on a database, it only reacts to these as they arrive."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from checks.runner import CheckResult
from checks.model import TargetStatus


@dataclass
class TargetStatusChanged(Message):
    """A connect attempt answered (or failed): state, latency, version. `probe`: from the
    periodic liveness probe rather than a check run."""

    status: TargetStatus
    probe: bool = False


@dataclass
class CheckCompleted(Message):
    """One check finished on one target: its findings replace that check's previous ones."""

    result: CheckResult


@dataclass
class TargetRunFinished(Message):
    """Every check on a target has reported; `checks` are the ones that ran this time, so
    findings of checks that did not run (the target went down) are dropped."""

    target: str
    checks: frozenset[str]
    error: str | None = None


@dataclass
class ConnectionsMeasured(Message):
    """Connections in use against the server's limit (either may be unknown)."""

    target: str
    used: int | None
    allowed: int | None
