"""The server sessions this dbvitals process has open, by the id the server gives each (a
PostgreSQL backend pid), per server (checks.budget.server_key).

The activity view marks these as dbvitals's own, and cancel and terminate refuse them. A name
proves nothing: any client may set application_name = 'dbvitals…' and would, judged by its name,
be marked as ours and refused to terminate. An id this process opened and has not closed is ours.
Process state, like the connections themselves: filled as sessions open, emptied as they close.
"""

from __future__ import annotations


class OwnSessions:
    def __init__(self) -> None:
        self._ids: dict[str, set[int]] = {}

    def add(self, server: str, ident: int) -> None:
        self._ids.setdefault(server, set()).add(ident)

    def discard(self, server: str, ident: int) -> None:
        self._ids.get(server, set()).discard(ident)

    def of(self, server: str) -> frozenset[int]:
        return frozenset(self._ids.get(server, ()))


OWN_SESSIONS = OwnSessions()
