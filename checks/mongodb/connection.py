from __future__ import annotations

from typing import Any

from checks.connection import ConnectionCheck, ConnectionFacts
from checks.mongodb.topology import topology_role
from checks.contract import Scope


class MongoConnection(ConnectionCheck):
    id = "mongodb.connection"
    engine = "mongodb"
    title = "MongoDB is reachable, authenticated and current"
    rationale = (
        "Every other check depends on it, and so does the application: a refused, slow or "
        "unauthenticated connection, or a secondary far behind its primary, is the first thing on-call needs to know."
    )

    async def gather_connected(self, session, scope: Scope) -> ConnectionFacts:
        hello: dict[str, Any] = session.hello
        details: dict[str, Any] = {"topology": topology_role(hello)}
        if hello.get("setName"):
            details["replica_set"] = hello["setName"]
            details["hosts"] = list(hello.get("hosts", []))
        lag = None
        if hello.get("secondary"):
            lag = await self._secondary_lag(session, hello, details)
        return ConnectionFacts(role=topology_role(hello), replica_lag_s=lag, details=details)

    async def _secondary_lag(self, session, hello: dict[str, Any], details: dict[str, Any]) -> float | None:
        try:
            status = await session.client.admin.command("replSetGetStatus")
        except Exception as exc:  # needs clusterMonitor; without it the lag is unknown, not zero
            details["replica_lag"] = f"unknown ({type(exc).__name__}: {str(exc)[:120]})"
            return None
        members = status.get("members", [])
        primary = next((m for m in members if m.get("stateStr") == "PRIMARY"), None)
        me = next((m for m in members if m.get("self")), None)
        if not primary or not me or not primary.get("optimeDate") or not me.get("optimeDate"):
            details["replica_lag"] = "unknown (no primary visible)"
            return None
        return max(0.0, (primary["optimeDate"] - me["optimeDate"]).total_seconds())
