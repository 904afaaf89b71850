"""The finding schema shared by every engine, check, output format and the console.

Plain frozen dataclasses: cheap to build by the thousand, trivially serialisable, and free
of any driver or UI import so that `checks/` stays importable everywhere.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any


class Severity(str, enum.Enum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        """Higher is worse; used for sorting and for --fail-on."""
        return _SEVERITY_RANK[self]

    def at_least(self, other: Severity) -> bool:
        return self.rank >= other.rank


_SEVERITY_RANK = {
    Severity.INFO: 0,
    Severity.LOW: 1,
    Severity.MEDIUM: 2,
    Severity.HIGH: 3,
    Severity.CRITICAL: 4,
}


# An engine's kind ("postgres", a plugin's own): whatever a package registers under the
# `dbvitals.engines` entry point group (checks.engines), so a new engine needs no edit here.
Engine = str


class FixSafety(str, enum.Enum):
    """ruff's model: only safe fixes may be applied without an explicit opt-in."""

    SAFE = "safe"  # no data change, no long lock (e.g. CREATE INDEX CONCURRENTLY)
    UNSAFE = "unsafe"  # changes data or takes a blocking lock; needs --allow-unsafe
    MANUAL = "manual"  # shown for a human to adapt and run; never applied by dbvitals


class FixAvailability(str, enum.Enum):
    NEVER = "never"
    SOMETIMES = "sometimes"
    ALWAYS = "always"


class TargetState(str, enum.Enum):
    CONNECTED = "connected"
    REFUSED = "refused"
    RESET = "reset"  # the server accepted the connection, then reset it
    CLOSED = "closed"  # the server accepted the connection, then closed it without an answer
    TIMEOUT = "timeout"
    AUTH_FAILED = "auth_failed"
    TLS_ERROR = "tls_error"
    PROTOCOL_ERROR = "protocol_error"  # something answers on the port, in another protocol
    SSH_ERROR = "ssh_error"  # the SSH bastion refused, failed or did not answer
    UNKNOWN_HOST = "unknown_host"
    ERROR = "error"
    # Not connected on purpose: its server had too few connection slots free (checks.budget).
    SKIPPED = "skipped"


@dataclass(frozen=True)
class FixStep:
    """One step in the engine's own language.

    `language` names the engine's step language (its adapter's `language`), and `command` is
    whatever that engine's executor runs: a statement, a command document, a list of arguments.
    """

    language: str
    command: Any
    description: str = ""
    database: str | None = None
    # Some statements (PostgreSQL's CREATE INDEX CONCURRENTLY) must run outside a transaction.
    transactional: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FixStep:
        return cls(**data)


@dataclass(frozen=True)
class Fix:
    summary: str
    steps: tuple[FixStep, ...]
    safety: FixSafety
    lock: str | None = None  # the lock taken or the impact, in words a DBA recognises
    inverse: tuple[FixStep, ...] = ()
    notes: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "steps": [s.to_dict() for s in self.steps],
            "safety": self.safety.value,
            "lock": self.lock,
            "inverse": [s.to_dict() for s in self.inverse],
            "notes": self.notes,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fix:
        return cls(
            summary=data["summary"],
            steps=tuple(FixStep.from_dict(s) for s in data.get("steps", ())),
            safety=FixSafety(data["safety"]),
            lock=data.get("lock"),
            inverse=tuple(FixStep.from_dict(s) for s in data.get("inverse", ())),
            notes=data.get("notes"),
        )


def finding_id(check: str, target: str, obj: str, discriminator: str = "") -> str:
    """A short id that is stable across runs for the same problem on the same object."""
    digest = hashlib.sha256("\0".join((check, target, obj, discriminator)).encode()).hexdigest()
    return digest[:12]


@dataclass(frozen=True)
class Finding:
    id: str
    check: str
    severity: Severity
    target: str
    object: str
    title: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    fix: Fix | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "check": self.check,
            "severity": self.severity.value,
            "target": self.target,
            "object": self.object,
            "title": self.title,
            "message": self.message,
            "evidence": self.evidence,
            "fix": self.fix.to_dict() if self.fix else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(
            id=data["id"],
            check=data["check"],
            severity=Severity(data["severity"]),
            target=data["target"],
            object=data["object"],
            title=data["title"],
            message=data["message"],
            evidence=data.get("evidence") or {},
            fix=Fix.from_dict(data["fix"]) if data.get("fix") else None,
        )


@dataclass(frozen=True)
class CheckError:
    """A check that raised or timed out: reported beside the findings, never a crash."""

    check: str
    target: str
    kind: str  # "error" | "timeout" | "skipped"
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Skipped:
    """Work a check did not do because a budget or a sample cut-off stopped it: `what` was not
    examined, `why`. A check that records one is `partial`: it did not look at everything, so it
    does not pass (the gate fails on it unless --allow-partial)."""

    what: str
    why: str

    def to_dict(self) -> dict[str, str]:
        return {"what": self.what, "why": self.why}


def not_examined(row: dict[str, Any], limit: int = 5) -> str:
    """A partial `checks` row's skipped work in words: "not examined: WHAT (WHY); ..."."""
    items = row.get("skipped") or []
    said = "; ".join(f"{item.get('what', '?')} ({item.get('why', '?')})" for item in items[:limit])
    more = f"; and {len(items) - limit} more" if len(items) > limit else ""
    return f"not examined: {said}{more}" if items else "not examined: (unsaid)"



@dataclass
class TargetStatus:
    name: str
    kind: Engine
    state: TargetState
    latency_ms: float | None = None
    server_version: str | None = None
    error: str | None = None
    environment: str | None = None
    url: str = ""  # always masked
    role: str | None = None  # primary / replica / standalone / master ...

    @property
    def reachable(self) -> bool:
        return self.state is TargetState.CONNECTED

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "state": self.state.value,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 2),
            "server_version": self.server_version,
            "error": self.error,
            "environment": self.environment,
            "url": self.url,
            "role": self.role,
        }


@dataclass
class Report:
    targets: list[TargetStatus]
    findings: list[Finding]
    errors: list[CheckError]
    duration_ms: float
    # One row per check run: {"target", "check", "outcome": ok|findings|partial|error|timeout|skipped,
    # "findings", "duration_ms"}; a partial row also has "skipped": [{"what", "why"}], what it did not examine.
    checks: list[dict[str, Any]] = field(default_factory=list)

    SCHEMA = "dbvitals.report/1"

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.SCHEMA,
            "targets": [t.to_dict() for t in self.targets],
            "findings": [f.to_dict() for f in self.findings],
            "errors": [e.to_dict() for e in self.errors],
            "checks": self.checks,
            "duration_ms": round(self.duration_ms, 1),
        }

    def partial(self) -> list[dict[str, Any]]:
        """The `checks` rows of checks cut short by a budget: they did not examine everything."""
        return [row for row in self.checks if row.get("outcome") == "partial"]

    def worst(self) -> Severity | None:
        return max((f.severity for f in self.findings), key=lambda s: s.rank, default=None)
