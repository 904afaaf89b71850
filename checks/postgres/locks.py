"""postgres.locks: sessions waiting on locks and the tree of who blocks whom — for how long, and
with which statement — one finding per session at the head of a chain. Read-only; cancelling or
terminating the head is offered as an unsafe fix, journalled like every fix."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field

from checks.config import Duration, duration
from checks.contract import Check, CheckOptions, Scope
from checks.model import Finding, Fix, FixAvailability, FixSafety, Severity
from checks.postgres._fixes import sql
from checks.postgres.long_transactions import _age
from checks.units import counted

# Every client session that waits on a lock, or holds one somebody waits on (cluster-wide:
# pg_blocking_pids sees across databases).
QUERY = """
WITH waiting AS (
    SELECT a.pid, pg_blocking_pids(a.pid) AS blocked_by
    FROM pg_stat_activity a
    WHERE a.wait_event_type = 'Lock' AND a.pid <> pg_backend_pid()
)
SELECT a.pid, a.datname AS database, a.usename AS user_name, a.application_name, a.state,
       extract(epoch FROM now() - a.state_change)::float8 AS state_age_s,
       extract(epoch FROM now() - a.xact_start)::float8 AS xact_age_s,
       a.wait_event_type, a.wait_event, left(a.query, $1) AS query,
       coalesce(w.blocked_by, '{}') AS blocked_by
FROM pg_stat_activity a
LEFT JOIN waiting w ON w.pid = a.pid
WHERE w.pid IS NOT NULL OR a.pid IN (SELECT unnest(blocked_by) FROM waiting)
"""


class Options(CheckOptions):
    min_wait: Duration = Field(default=duration("30s"), description="Report a chain once a session has waited this long.")
    high_wait: Duration = Field(default=duration("5m"), description="A wait this long (or 5+ sessions waiting) is high severity.")
    query_chars: int = Field(default=300, ge=20, le=10000, description="Show at most this many characters of each query.")


@dataclass(frozen=True)
class LockSession:
    pid: int
    database: str | None
    user_name: str | None
    application_name: str | None
    state: str | None
    state_age_s: float | None
    xact_age_s: float | None
    wait_event_type: str | None
    wait_event: str | None
    query: str | None
    blocked_by: tuple[int, ...]


@dataclass(frozen=True)
class Facts:
    sessions: tuple[LockSession, ...]


def waiters_of(sessions: dict[int, LockSession], pid: int, seen: set[int] | None = None) -> list[dict]:
    """The sessions waiting on `pid`, each with those waiting on it in turn."""
    seen = seen if seen is not None else {pid}
    tree = []
    for s in sorted(sessions.values(), key=lambda s: s.pid):
        if pid in s.blocked_by and s.pid not in seen:
            seen.add(s.pid)
            tree.append({"pid": s.pid, "user": s.user_name, "waiting_s": round(s.state_age_s or 0, 1),
                         "wait_event": f"{s.wait_event_type}:{s.wait_event}", "query": s.query,
                         "waiters": waiters_of(sessions, s.pid, seen)})
    return tree


def _flatten(tree: list[dict]) -> list[dict]:
    return [node for item in tree for node in (item, *_flatten(item["waiters"]))]


class Locks(Check):
    id = "postgres.locks"
    engine = "postgres"
    title = "Sessions blocked on locks"
    severity = Severity.MEDIUM
    fix_availability = FixAvailability.ALWAYS
    Options = Options
    rationale = (
        "A session holding a lock others need (often idle in a transaction, or a migration waiting on a long "
        "query) stalls every session queued behind it; the application sees timeouts, the pool runs dry."
    )

    async def gather(self, session, scope: Scope) -> Facts:
        rows = await session.fetch(QUERY, scope.options.query_chars)
        return Facts(tuple(LockSession(**{**dict(r), "blocked_by": tuple(r["blocked_by"])}) for r in rows))

    def evaluate(self, facts: Facts, scope: Scope) -> list[Finding]:
        options = scope.options
        sessions = {s.pid: s for s in facts.sessions}
        findings = []
        # Heads: sessions others wait on that wait on nobody in the set (a cycle is a deadlock the
        # server resolves by itself within deadlock_timeout).
        heads = [s for s in sessions.values() if not any(b in sessions for b in s.blocked_by)
                 and any(s.pid in o.blocked_by for o in sessions.values())]
        for head in sorted(heads, key=lambda s: s.pid):
            tree = waiters_of(sessions, head.pid)
            waiting = _flatten(tree)
            longest = max(w["waiting_s"] for w in waiting)
            if longest < options.min_wait.total_seconds():
                continue
            idle = (head.state or "").startswith("idle in transaction")
            high = longest >= options.high_wait.total_seconds() or len(waiting) >= 5
            findings.append(self.finding(
                scope, object=f"pid {head.pid}",
                severity=Severity.HIGH if high else Severity.MEDIUM,
                title=f"pid {head.pid} blocks {counted(len(waiting), 'session')}, the longest for {_age(longest)}",
                message=(f"pid {head.pid} ({head.user_name or '?'}, {head.application_name or 'no application_name'}, "
                         f"{head.state}) holds a lock {counted(len(waiting), 'session')} wait on, the longest for {_age(longest)}"
                         + (": it is idle inside its transaction, so the wait lasts until that transaction ends."
                            if idle else ".")),
                evidence={"blocking": {"pid": head.pid, "user": head.user_name, "application_name": head.application_name,
                                       "database": head.database, "state": head.state,
                                       "transaction_age_s": None if head.xact_age_s is None else round(head.xact_age_s, 1),
                                       "query": head.query},
                          "waiting_tree": tree, "waiting_sessions": len(waiting)},
                fix=Fix(
                    summary=f"{'Terminate' if idle else 'Cancel the statement of'} pid {head.pid}",
                    steps=(sql(f"SELECT pg_terminate_backend({head.pid});" if idle
                               else f"SELECT pg_cancel_backend({head.pid});"),),
                    safety=FixSafety.UNSAFE,
                    lock="no lock taken; its transaction is rolled back and its work lost"
                         + ("; its connection is closed" if idle else ""),
                    notes="Cancelling does not end a transaction idle in between statements, hence terminate for those.",
                ),
            ))
        return findings
