"""mongodb.transactions-unsupported: a standalone server, where multi-document transactions
(and change streams, and retryable writes) are impossible."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from checks.mongodb.topology import topology_role
from checks.contract import Check, Scope
from checks.model import Finding, Fix, FixAvailability, FixSafety, FixStep, Severity


@dataclass(frozen=True)
class TopologyFacts:
    hello: dict[str, Any]

    @property
    def standalone(self) -> bool:
        return topology_role(self.hello) == "standalone"


class TransactionsUnsupported(Check):
    id = "mongodb.transactions-unsupported"
    engine = "mongodb"
    title = "Standalone server: multi-document transactions are impossible"
    severity = Severity.HIGH
    fix_availability = FixAvailability.ALWAYS
    rationale = (
        "MongoDB runs multi-document transactions only on a replica set or a sharded cluster. On a standalone "
        "server startTransaction fails (IllegalOperation), so code that relies on transactions breaks, or was "
        "written to silently skip them. A single-node replica set costs nothing and lifts the limit."
    )

    async def gather(self, session: Any, scope: Scope) -> TopologyFacts:
        return TopologyFacts(dict(session.hello))

    def evaluate(self, facts: TopologyFacts, scope: Scope) -> list[Finding]:
        if not facts.standalone:
            return []
        uses = bool(getattr(scope.config, "uses_transactions", False))
        host = str(facts.hello.get("me") or urlsplit(scope.status.url).netloc.rsplit("@", 1)[-1].split(",")[0])
        initiate = {"replSetInitiate": {"_id": "rs0", "members": [{"_id": 0, "host": host}]}}
        return [
            self.finding(
                scope,
                object=scope.status.url,
                title="Standalone server: transactions are impossible",
                message=(
                    "The server is a standalone (hello reports no replica set): multi-document transactions, change "
                    "streams and retryable writes are unavailable. "
                    + ("The config says the application uses transactions: they fail here."
                       if uses else "The config does not say the application uses transactions (uses_transactions = false).")
                ),
                evidence={
                    "topology": "standalone",
                    "setName": None,
                    "logicalSessionTimeoutMinutes": facts.hello.get("logicalSessionTimeoutMinutes", "absent"),
                    "uses_transactions": uses,
                },
                severity=Severity.HIGH if uses else Severity.INFO,
                fix=Fix(
                    summary="Run the server as a single-node replica set",
                    steps=(FixStep("mongodb", initiate, "after restarting mongod with --replSet rs0", database="admin"),),
                    safety=FixSafety.MANUAL,
                    lock="a restart of mongod (downtime), then replSetInitiate",
                    notes=(
                        "1. Set replication.replSetName: rs0 in mongod.conf (or start with --replSet rs0) and restart. "
                        "2. Run the replSetInitiate command shown, with the host name clients use. "
                        "3. Add replicaSet=rs0 to the application's connection string."
                    ),
                ),
            )
        ]
