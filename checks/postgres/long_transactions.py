"""postgres.long-transactions: transactions, and sessions idle inside one, older than a threshold,
with their query (truncated) and the locks they hold.

Only this target's database: its sessions are the ones this target's owners can act on (a long
transaction elsewhere still holds back vacuum cluster-wide; the target for that database reports it).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field

from checks.config import Duration, duration
from checks.contract import Check, CheckOptions, Scope
from checks.model import Finding, Fix, FixAvailability, FixSafety, Severity
from checks.postgres._fixes import sql
from checks.units import counted

QUERY = """
SELECT a.pid, a.usename AS user_name, a.application_name, a.client_addr::text AS client_addr, a.state,
       a.xact_start::text AS xact_start, extract(epoch FROM now() - a.xact_start)::float8 AS xact_age_s,
       extract(epoch FROM now() - a.state_change)::float8 AS state_age_s,
       a.wait_event_type, a.wait_event, left(a.query, $2) AS query,
       a.backend_xid IS NOT NULL AS wrote, a.backend_xmin::text AS xmin,
       (SELECT coalesce(array_agg(l.mode || ' on ' || coalesce(l.relation::regclass::text, l.locktype)
                                  ORDER BY l.relation::regclass::text, l.mode), '{}')
        FROM pg_locks l WHERE l.pid = a.pid AND l.granted AND l.locktype IN ('relation', 'advisory', 'object')) AS locks,
       (SELECT count(*) FROM pg_stat_activity b WHERE a.pid = ANY (pg_blocking_pids(b.pid))) AS blocking
FROM pg_stat_activity a
WHERE a.datname = current_database()
  AND a.pid <> pg_backend_pid()
  AND a.backend_type = 'client backend'
  AND a.xact_start IS NOT NULL
  AND now() - a.xact_start >= $1 * interval '1 second'
ORDER BY a.xact_start
"""

INSUFFICIENT = "<insufficient privilege>"


class Options(CheckOptions):
    max_transaction_age: Duration = Field(default=duration("5m"), description="A transaction open longer than this is reported.")
    max_idle_in_transaction: Duration = Field(
        default=duration("1m"), description="A session idle inside a transaction longer than this is reported.")
    query_chars: int = Field(default=300, ge=20, le=10000, description="Show at most this many characters of each query.")


@dataclass(frozen=True)
class Session:
    pid: int
    user_name: str | None
    application_name: str | None
    client_addr: str | None
    state: str | None
    xact_start: str  # with the pid, names this transaction across runs
    xact_age_s: float
    state_age_s: float | None
    wait_event_type: str | None
    wait_event: str | None
    query: str | None
    wrote: bool
    xmin: str | None
    locks: tuple[str, ...]
    blocking: int


@dataclass(frozen=True)
class Facts:
    sessions: tuple[Session, ...]


def _age(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


class LongTransactions(Check):
    id = "postgres.long-transactions"
    engine = "postgres"
    title = "Long transaction or idle in transaction"
    severity = Severity.MEDIUM
    fix_availability = FixAvailability.ALWAYS
    Options = Options
    rationale = (
        "An open transaction holds its locks and its snapshot: vacuum cannot remove rows dead since it began "
        "(bloat, wraparound risk) and DDL queues behind its locks, taking every later query with it."
    )

    async def gather(self, session, scope: Scope) -> Facts:
        options = scope.options
        floor = min(options.max_transaction_age, options.max_idle_in_transaction).total_seconds()
        rows = await session.fetch(QUERY, floor, options.query_chars)
        return Facts(tuple(Session(**{**dict(r), "locks": tuple(r["locks"])}) for r in rows))

    def evaluate(self, facts: Facts, scope: Scope) -> list[Finding]:
        options = scope.options
        findings = []
        for s in facts.sessions:
            idle = s.state in ("idle in transaction", "idle in transaction (aborted)")
            too_old = s.xact_age_s >= options.max_transaction_age.total_seconds()
            idle_too_long = idle and (s.state_age_s or 0) >= options.max_idle_in_transaction.total_seconds()
            if not (too_old or idle_too_long):
                continue
            hidden = s.query == INSUFFICIENT
            what = (f"idle in transaction for {_age(s.state_age_s or 0)}" if idle else f"{s.state or 'unknown state'}")
            message = (f"pid {s.pid} ({s.user_name or '?'}@{s.client_addr or 'local'}, {s.application_name or 'no application_name'}) "
                       f"has had a transaction open for {_age(s.xact_age_s)}, {what}, holding {counted(len(s.locks), 'lock')}"
                       + (f" and blocking {counted(s.blocking, 'session')}" if s.blocking else "") + ".")
            if hidden:
                message += " Its query is hidden: this role needs pg_read_all_stats (part of pg_monitor) to see it."
            terminate = idle or s.blocking
            findings.append(self.finding(
                scope, object=f"pid {s.pid}", key=s.xact_start,
                severity=Severity.HIGH if (s.blocking or idle) else Severity.MEDIUM,
                title=f"Transaction open {_age(s.xact_age_s)} ({'idle' if idle else s.state})",
                message=message,
                evidence={
                    "pid": s.pid, "user": s.user_name, "application_name": s.application_name,
                    "client_addr": s.client_addr, "state": s.state,
                    "transaction_age_s": round(s.xact_age_s, 1),
                    "state_age_s": None if s.state_age_s is None else round(s.state_age_s, 1),
                    "wait_event": f"{s.wait_event_type}:{s.wait_event}" if s.wait_event else None,
                    "query": None if hidden else s.query,
                    "query_note": ("hidden: needs pg_read_all_stats" if hidden else
                                   f"truncated to {options.query_chars} characters; for an idle session, its last statement"),
                    "locks_held": list(s.locks),
                    "blocking_sessions": s.blocking,
                    "has_written": s.wrote,
                    "snapshot_xmin": s.xmin,
                },
                fix=Fix(
                    summary=f"{'Terminate' if terminate else 'Cancel'} pid {s.pid}",
                    steps=(sql(f"SELECT pg_terminate_backend({s.pid});" if terminate else f"SELECT pg_cancel_backend({s.pid});"),),
                    safety=FixSafety.UNSAFE,
                    lock="no lock taken; the session's transaction is rolled back and its work lost"
                         + ("; the client's connection is closed" if terminate else ""),
                    notes="Find out from the application's owners what it is first. Cancelling does not end an idle "
                          "transaction, hence terminate for those; idle_in_transaction_session_timeout prevents them.",
                ),
            ))
        return findings
