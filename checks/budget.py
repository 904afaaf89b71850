"""How many sessions dbvitals may hold on one server, and the guard that keeps it off a
server's last connection slots.

Targets that share a server (the same host and port; different databases or logical dbs of
it) share one budget: at most `max_sessions_per_server` sessions at once (2 unless set, a
target's `max_sessions` lowers it), whatever the number of targets. Before a second session
opens on a server, the first one reads what the server has left; when that is below the floor,
only the connection and pool checks run (on that first session) and every other check and
target on the server is skipped, reported as a finding, so that a health check is never the
client that takes a production server's last slot.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from urllib.parse import urlsplit

from checks.config import Settings, TargetBase
from checks.engines import adapter_for

# How long a server's free-slot verdict stands for runs sharing the budgets (the console re-runs
# targets one by one): long enough to cover one round, short enough to notice slots freed.
VERDICT_TTL_S = 30.0


def server_key(target: TargetBase) -> str:
    """The server a target's sessions land on: scheme family, hosts and ports, no credentials
    and no database (two databases of one PostgreSQL server share its max_connections)."""
    kind = target.kind
    engine = adapter_for(kind)
    own = engine.server_key(target)
    if own is not None:
        return own
    parts = urlsplit(target.url)
    if parts.scheme == "unix":
        return f"{kind}://{parts.path}"
    hosts = parts.netloc.rpartition("@")[2].lower()
    if not hosts:  # postgresql:///db?host=/run/postgresql: the socket directory names it
        return f"{kind}://{parts.query}"
    default = engine.default_port
    spelled = []
    for host in hosts.split(","):
        bare = host.rsplit("]", 1)[-1]  # an IPv6 literal [::1]:5432 holds colons of its own
        spelled.append(host if ":" in bare or default is None else f"{host}:{default}")
    return f"{kind}://{','.join(sorted(spelled))}"


@dataclass(frozen=True)
class FreeSlots:
    """What a server has left for new clients, as it reported it."""

    usable: int | None  # connections it accepts from ordinary clients; None: not reported
    in_use: int | None
    source: str  # the settings and views the figures come from, for the evidence

    @property
    def free(self) -> int | None:
        if self.usable is None or self.in_use is None:
            return None
        return max(0, self.usable - self.in_use)


def floor_for(usable: int, settings: Settings) -> int:
    """Free slots that must stay free: the larger of the absolute floor and the share."""
    return max(settings.free_slots_floor, math.ceil(usable * settings.free_slots_floor_percent / 100))


class ServerBudget:
    """The sessions dbvitals may hold on one server at once."""

    def __init__(self, server: str, limit: int) -> None:
        self.server = server
        self.limit = limit
        self._slots = asyncio.Semaphore(limit)

    async def __aenter__(self) -> ServerBudget:
        await self._slots.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._slots.release()


class ServerBudgets:
    """One budget per server, shared by every run that is handed this object (the console keeps
    one for its lifetime, so that re-running targets one by one stays within it)."""

    def __init__(self) -> None:
        self._budgets: dict[str, ServerBudget] = {}
        self._guards: dict[str, ServerGuard] = {}

    def guard(self, server: str) -> ServerGuard:
        """The server's free-slot verdict: the pending or recent one, else a new one to decide."""
        guard = self._guards.get(server)
        if guard is None or (guard.decided_at is not None and time.monotonic() - guard.decided_at > VERDICT_TTL_S):
            guard = self._guards[server] = ServerGuard()
        return guard

    def for_target(self, name: str, settings: Settings) -> ServerBudget:
        target = settings.targets[name]
        key = server_key(target)
        budget = self._budgets.get(key)
        if budget is None:
            limits = [
                other.max_sessions or settings.max_sessions_per_server
                for other in settings.targets.values()
                if server_key(other) == key
            ]
            budget = self._budgets[key] = ServerBudget(key, min(limits))
        return budget


@dataclass
class ServerGuard:
    """The free-slot verdict for one server in one run: decided on the first session opened
    there, awaited by every other target of the server before it opens its own."""

    claimed: bool = False
    decided: asyncio.Event | None = None
    decided_at: float | None = None
    slots: FreeSlots | None = None
    floor: int | None = None

    async def take_turn(self) -> bool:
        """Whether this is the server's first session: it reads the free slots and decides
        (`read_free_slots`, then `decide`); any other waits for that verdict before it opens."""
        first = not self.claimed
        self.claimed = True
        if not first:
            assert self.decided is not None
            await self.decided.wait()  # no second session before the first has read the free slots
        return first

    async def read_free_slots(self, reading: Awaitable[FreeSlots], timeout: float, settings: Settings) -> None:
        """The verdict from what the server reports; unknown is not full (the pool check reports
        what it can read)."""
        try:
            self.slots = await asyncio.wait_for(reading, timeout)
        except Exception as exc:
            self.slots = FreeSlots(None, None, f"could not be read: {type(exc).__name__}")
        if self.slots.usable is not None:
            self.floor = floor_for(self.slots.usable, settings)

    def decide(self) -> None:
        self.decided_at = time.monotonic()
        assert self.decided is not None
        self.decided.set()

    def __post_init__(self) -> None:
        self.decided = asyncio.Event()

    @property
    def full(self) -> bool:
        free = self.slots.free if self.slots is not None else None
        return free is not None and self.floor is not None and free < self.floor
