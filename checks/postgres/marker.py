"""The comment every statement dbvitals sends to PostgreSQL starts with.

It lets a DBA tell dbvitals' statements apart in pg_stat_statements and the server log, and
lets the workload checks (postgres.missing-index and any reader of pg_stat_statements) leave
dbvitals' own catalog queries out: a health tool must not recommend indexes for itself.
`application_name` = dbvitals stays as well; it names the session, this names the statement.
"""

from __future__ import annotations

STATEMENT_MARKER = "/* dbvitals */"


def marked(query: str) -> str:
    """The statement with the marker in front (once)."""
    if query.startswith(STATEMENT_MARKER):
        return query
    return f"{STATEMENT_MARKER} {query}"


def is_own_statement(query: str | None) -> bool:
    """Whether a statement text (as pg_stat_statements or pg_stat_activity keep it) is dbvitals'."""
    return query is not None and STATEMENT_MARKER in query
