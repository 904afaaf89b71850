"""One session per target for the activity view, refreshed without piling up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from checks.activity import ActivitySample, for_engine, shorten
from checks.config import Settings
from checks.model import Engine, TargetStatus
from checks.secrets import mask_text


class ActivityWatch:
    """Keeps one connection per target and the previous sample (for rates).

    A refresh that is still running when the next is due is not started twice: `refresh`
    returns the samples it has, so a slow server is sampled less often, never more.
    """

    def __init__(self, settings: Settings, names: Sequence[str]) -> None:
        self.settings = settings
        self.names = list(names)
        self.connections: dict[str, Any] = {}
        self.statuses: dict[str, TargetStatus] = {}
        self.samples: dict[str, ActivitySample] = {}
        self._busy = asyncio.Lock()
        self._last_refresh = 0.0

    def session(self, name: str) -> Any:
        return self.connections[name].session

    async def refresh(self) -> dict[str, ActivitySample]:
        if self._busy.locked():
            return dict(self.samples)
        async with self._busy:
            self._last_refresh = time.monotonic()
            await asyncio.gather(*(self._refresh_one(n) for n in self.names))
        return dict(self.samples)

    async def wait(self, interval: float) -> None:
        """Sleep until the next refresh is due, counted from the start of the last one."""
        await asyncio.sleep(max(0.0, self._last_refresh + interval - time.monotonic()))

    async def _refresh_one(self, name: str) -> None:
        from checks.connectors import connect, failed

        target = self.settings.targets[name]
        connection = self.connections.get(name)
        if connection is None or connection.session is None:
            try:
                connection = await asyncio.wait_for(connect(name, target), target.timeout * 2 + 2)
            except TimeoutError as exc:
                connection = failed(name, target, exc)
            self.connections[name] = connection
            self.statuses[name] = connection.status
            if connection.session is None:
                self.samples.pop(name, None)
                return
        reader = for_engine(Engine(target.kind))  # type: ignore[attr-defined]
        try:
            sample = await asyncio.wait_for(
                reader.read(connection.session, name, self.samples.get(name)), target.timeout + 1
            )
        except Exception as exc:  # a dead or slow server is a state to show, never a crash
            await connection.close()
            self.connections[name] = failed(name, target, exc)
            self.statuses[name] = self.connections[name].status
            self.samples.pop(name, None)
            return
        secrets = target.secret_values()
        for rows in sample.sections.values():
            for row in rows:
                for key, value in row.items():
                    if isinstance(value, str):
                        row[key] = mask_text(value, secrets)
        sample.notes = [shorten(mask_text(n, secrets), 300) for n in sample.notes]
        self.samples[name] = sample

    async def close(self) -> None:
        for connection in self.connections.values():
            try:
                await connection.close()
            except Exception:  # closing a broken connection must not hide the result
                pass
        self.connections.clear()
