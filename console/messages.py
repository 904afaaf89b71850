"""The console's messages, small dataclasses. The first four are what the background workers
tell the UI: the UI loop never waits on a database, it only reacts to these as they arrive. The
rest are what a screen asks for: screens post them, the App handles them by calling its
controller (console/controller.py); no screen reaches into the App for state or actions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message

from checks.activity import ActivitySample
from checks.model import Finding, TargetStatus
from checks.runner import CheckResult


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


# --- what the screens ask for: posted by a screen, handled by the App, done by the controller ---


@dataclass
class OpenFinding(Message):
    """Show one finding in full: proof, evidence, why it matters, the fix."""

    finding: Finding


@dataclass
class ApplyFix(Message):
    """Plan the finding's fix, confirm it, apply it through the action pipeline."""

    finding: Finding


@dataclass
class CopyFix(Message):
    """The finding's fix to the clipboard (OSC 52), its inverse commented out."""

    finding: Finding


@dataclass
class CopyEvidence(Message):
    """The finding's evidence to the clipboard as JSON (OSC 52)."""

    finding: Finding


@dataclass
class RerunTarget(Message):
    """Run every check on one target again."""

    target: str


@dataclass
class OpenActivity(Message):
    """What runs now on one target (as recorded, in a replay)."""

    target: str


@dataclass
class ExportFindings(Message):
    """The findings a screen shows, to a file the user names; `description` says its filter."""

    findings: list[Finding]
    description: str
    fmt: str = "json"


@dataclass
class UndoEntry(Message):
    """Undo one journal entry: its inverse, after a confirmation."""

    entry_id: str


@dataclass
class StopSession(Message):
    """Cancel (or terminate) one row of the activity view. `watch` is the view's open
    ActivityWatch, `sample` what the user saw when choosing the row."""

    target: str
    watch: Any
    sample: ActivitySample | None
    ident: str
    terminate: bool
