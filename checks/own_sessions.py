"""The server sessions this dbvitals process has open, by the id the server gives each (a
PostgreSQL backend pid, a MongoDB connectionId, a Redis CLIENT ID), per server
(checks.budget.server_key).

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


class Recorder:
    """The ids one client of this process opened on one server: added to OWN_SESSIONS as each
    connection opens, all taken out when the client closes (MongoDB and Redis clients reconnect
    on their own, so their ids are known only as they come)."""

    def __init__(self, server: str, sessions: OwnSessions | None = None) -> None:
        self.server = server
        self._sessions = OWN_SESSIONS if sessions is None else sessions
        self._ids: set[int] = set()

    def opened(self, ident: object) -> None:
        if isinstance(ident, int) and not isinstance(ident, bool):
            self._ids.add(ident)
            self._sessions.add(self.server, ident)

    def release(self) -> None:
        for ident in self._ids:
            self._sessions.discard(self.server, ident)
        self._ids.clear()


OWN_SESSIONS = OwnSessions()
