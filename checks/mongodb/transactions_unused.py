"""mongodb.transactions-unused: the config says the application uses transactions, the server
is a replica set (so it could), and serverStatus says not one was ever started.

Either the code path that opens them silently falls back (a guard written for a standalone
server, a driver option), or the declaration is stale: both are worth knowing before relying
on atomic multi-document writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from checks.mongodb.topology import topology_role
from checks.contract import Check, Scope
from checks.model import Finding, FixAvailability, Severity

# serverStatus with only the transactions section (and uptime, always present).
SERVER_STATUS = {"serverStatus": 1, "repl": 0, "metrics": 0, "locks": 0, "wiredTiger": 0, "tcmalloc": 0,
                 "opLatencies": 0, "connections": 0, "transactions": 1}
MIN_UPTIME_S = 3600  # under an hour of uptime, no transaction yet says little


@dataclass(frozen=True)
class TransactionsFacts:
    role: str
    transactions: dict[str, Any] | None  # serverStatus.transactions; None: not reported
    uptime_s: float | None
    error: str = ""


class TransactionsUnused(Check):
    id = "mongodb.transactions-unused"
    engine = "mongodb"
    title = "Transactions declared but never started"
    severity = Severity.MEDIUM
    fix_availability = FixAvailability.NEVER
    rationale = (
        "Code that believes its multi-document writes are atomic while no transaction ever starts (a fallback "
        "for standalone servers left in, a session never passed) corrupts data on the first failure in the "
        "middle of a write. serverStatus counts every transaction started since the server came up."
    )

    async def gather(self, session: Any, scope: Scope) -> TransactionsFacts:
        role = topology_role(dict(session.hello))
        if not getattr(scope.config, "uses_transactions", False) or role in ("standalone", "mongos"):
            return TransactionsFacts(role, None, None)
        try:
            status = await session.client.admin.command(SERVER_STATUS)
        except Exception as exc:  # needs clusterMonitor: unknown, not fine
            return TransactionsFacts(role, None, None, f"{type(exc).__name__}: {str(exc)[:200]}")
        return TransactionsFacts(role, status.get("transactions"), status.get("uptime"))

    def evaluate(self, facts: TransactionsFacts, scope: Scope) -> list[Finding]:
        if not getattr(scope.config, "uses_transactions", False) or facts.role in ("standalone", "mongos"):
            return []  # standalone: mongodb.transactions-unsupported says it
        evidence = {"role": facts.role, "uses_transactions": True, "transactions": facts.transactions, "uptime_s": facts.uptime_s}
        if facts.transactions is None:
            reason = f"serverStatus could not be read ({facts.error})" if facts.error else \
                "serverStatus reports no transactions section"
            return [self.finding(scope, object="transactions", title="Transaction use unknown",
                                 message=f"Whether the application starts transactions is unknown: {reason}.",
                                 evidence=evidence, severity=Severity.INFO, key="unknown")]
        started = int(facts.transactions.get("totalStarted") or 0)
        if started:
            return []
        young = facts.uptime_s is not None and facts.uptime_s < MIN_UPTIME_S
        hours = f"{facts.uptime_s / 3600:,.1f} h" if facts.uptime_s is not None else "an unknown time"
        return [self.finding(
            scope,
            object="transactions",
            title="Transactions declared but none started",
            message=f"The config says the application uses transactions (uses_transactions = true), but this "
            f"{facts.role} has started none in the {hours} since it came up (serverStatus.transactions.totalStarted = 0). "
            "Check that the code passes its session to every operation and has no fallback that skips the "
            "transaction, or correct the declaration.",
            evidence=evidence,
            severity=Severity.INFO if young else Severity.MEDIUM,
            key="unused",
        )]
