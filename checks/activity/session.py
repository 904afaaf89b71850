"""One session per server for the activity view, refreshed without piling up."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from checks.activity import ActivitySample, for_engine, shorten
from checks.budget import server_key
from checks.config import Settings
from checks.connectors import connect, failed
from checks.model import TargetStatus
from checks.secrets import mask_text, mask_tree

if TYPE_CHECKING:
    from checks.connectors import Connection


class ActivityWatch:
    """Keeps one connection per server and the previous sample (for rates).

    What the views read is server-wide (pg_stat_activity, currentOp, CLIENT LIST), so targets
    that share a server share one session and one reading: the view never takes more than one
    of the server's slots. A refresh still running when the next is due is not started twice:
    `refresh` returns the samples it has, so a slow server is sampled less often, never more.
    """

    def __init__(self, settings: Settings, names: Sequence[str]) -> None:
        self.settings = settings
        self.names = list(names)
        self.servers: dict[str, list[str]] = {}
        for name in self.names:
            self.servers.setdefault(server_key(settings.targets[name]), []).append(name)
        self.connections: dict[str, Connection] = {}  # by server
        self.statuses: dict[str, TargetStatus] = {}
        self.samples: dict[str, ActivitySample] = {}
        self._busy = asyncio.Lock()
        self._last_refresh = 0.0

    def session(self, name: str) -> Any:
        return self.connections[server_key(self.settings.targets[name])].session

    @contextlib.asynccontextmanager
    async def using(self, name: str) -> AsyncIterator[Any]:
        """The server's session for one caller at a time: a refresh due meanwhile is skipped, so
        an action's statements never interleave with the view's on one connection."""
        async with self._busy:
            session = self.connections.get(server_key(self.settings.targets[name]))
            if session is None or session.session is None:
                raise ConnectionError(f"no session to {name}: it is unreachable now")
            yield session.session

    async def reread(self, name: str) -> ActivitySample:
        """A fresh sample of one target, masked as the view's are, that leaves the rates alone."""
        target = self.settings.targets[name]
        reader = for_engine(target.kind)
        async with self.using(name) as session:
            sample = await asyncio.wait_for(reader.read(session, name, None), target.call_deadline)
        return self._masked(sample, self.servers[server_key(target)])

    def _masked(self, sample: ActivitySample, names: list[str]) -> ActivitySample:
        secrets = tuple(s for name in names for s in self.settings.targets[name].secret_values())
        return dataclasses.replace(sample, sections=mask_tree(sample.sections, secrets),
                                   notes=[shorten(mask_text(n, secrets), 300) for n in sample.notes])

    async def refresh(self) -> dict[str, ActivitySample]:
        if self._busy.locked():
            return dict(self.samples)
        async with self._busy:
            self._last_refresh = time.monotonic()
            await asyncio.gather(*(self._refresh_server(s, names) for s, names in self.servers.items()))
        return dict(self.samples)

    async def wait(self, interval: float) -> None:
        """Sleep until the next refresh is due, counted from the start of the last one."""
        await asyncio.sleep(max(0.0, self._last_refresh + interval - time.monotonic()))

    async def _refresh_server(self, server: str, names: list[str]) -> None:
        first = names[0]
        target = self.settings.targets[first]
        connection = self.connections.get(server)
        if connection is None or connection.session is None:
            connection = await connect(first, target)
            self.connections[server] = connection
            if connection.session is None:
                self._down(names, connection.status)
                return
        reader = for_engine(target.kind)
        try:
            sample = await asyncio.wait_for(
                reader.read(connection.session, first, self.samples.get(first)), target.call_deadline
            )
        except Exception as exc:  # a dead or slow server is a state to show, never a crash
            await connection.close()
            self.connections[server] = failed(first, target, exc)
            self._down(names, self.connections[server].status)
            return
        sample = self._masked(sample, names)
        for name in names:
            self.statuses[name] = dataclasses.replace(connection.status, name=name,
                                                      url=self.settings.targets[name].masked_url)
            self.samples[name] = dataclasses.replace(sample, target=name)

    def _down(self, names: list[str], status: TargetStatus) -> None:
        for name in names:
            self.statuses[name] = dataclasses.replace(status, name=name, url=self.settings.targets[name].masked_url)
            self.samples.pop(name, None)

    async def close(self) -> None:
        for connection in self.connections.values():
            try:
                await connection.close()
            except Exception:  # closing a broken connection must not hide the result
                pass
        self.connections.clear()

