from __future__ import annotations

from checks.connection import ConnectionCheck, ConnectionFacts
from checks.contract import Scope
from checks.model import Severity


class RedisConnection(ConnectionCheck):
    id = "redis.connection"
    engine = "redis"
    title = "Redis is reachable, authenticated and current"
    rationale = (
        "Every other check depends on it, and so does the application: a refused, slow or "
        "unauthenticated connection, or a replica whose link to its master is down, is the first thing on-call needs to know."
    )

    async def gather_connected(self, session, scope: Scope) -> ConnectionFacts:
        info = await session.client.info("replication")
        role = {"master": "primary", "slave": "replica"}.get(str(info.get("role")), str(info.get("role")))
        details = {"redis_mode": session.info.get("redis_mode"), "connected_replicas": info.get("connected_slaves", 0)}
        problems = []
        lag = None
        if role == "replica":
            details["master"] = f"{info.get('master_host')}:{info.get('master_port')}"
            details["master_link_status"] = info.get("master_link_status")
            if info.get("master_link_status") != "up":
                problems.append((
                    "link",
                    Severity.HIGH,
                    "Replica link down: this replica is not receiving writes from its master "
                    f"(down for {info.get('master_link_down_since_seconds', '?')}s)",
                    {"master_link_down_since_seconds": info.get("master_link_down_since_seconds")},
                ))
            else:
                lag = float(info.get("master_last_io_seconds_ago", 0))
        return ConnectionFacts(role=role, replica_lag_s=lag, details=details, problems=problems)
