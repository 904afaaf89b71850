from __future__ import annotations

from checks.connection import ConnectionCheck, ConnectionFacts
from checks.contract import Scope
from checks.model import Severity

QUERY = """
SELECT pg_is_in_recovery() AS in_recovery,
       CASE WHEN pg_is_in_recovery()
            THEN extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END AS replay_lag_s,
       CASE WHEN pg_is_in_recovery()
            THEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() END AS caught_up,
       current_user AS role_name,
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser,
       pg_has_role(current_user, 'pg_monitor', 'USAGE') AS monitor
"""


class PostgresConnection(ConnectionCheck):
    id = "postgres.connection"
    engine = "postgres"
    title = "PostgreSQL is reachable, authenticated and current"
    rationale = (
        "Every other check depends on it, and so does the application: a refused, slow or "
        "unauthenticated connection, or a replica far behind its primary, is the first thing on-call needs to know."
    )

    async def gather_connected(self, session, scope: Scope) -> ConnectionFacts:
        row = await session.fetchrow(QUERY)
        lag = row["replay_lag_s"]
        # An idle primary sends nothing to replay: a replica that has replayed all it received is not behind.
        if row["caught_up"]:
            lag = 0.0
        problems = []
        if not row["superuser"] and not row["monitor"]:
            problems.append((
                "visibility",
                Severity.INFO,
                f"Limited visibility: role {row['role_name']} is neither superuser nor a member of pg_monitor, "
                "so other sessions' queries and some statistics are hidden from the checks",
                {"role_name": row["role_name"], "grant": f"GRANT pg_monitor TO {row['role_name']};"},
            ))
        return ConnectionFacts(
            role="replica" if row["in_recovery"] else "primary",
            replica_lag_s=None if lag is None else float(lag),
            details={"database": session.database, "user": row["role_name"], "superuser": row["superuser"],
                     "pg_monitor": row["monitor"]},
            problems=problems,
        )
