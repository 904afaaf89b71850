"""The database profiler, turned on only when a user asks (`dbvitals profiler`), and always
given back its previous setting. Checks only read it (`profile: -1` changes nothing).

Profiling level 1 records operations slower than `slowms` into the capped `system.profile`
collection; level 2 records everything and costs throughput, so it is never offered as a default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ProfilerSetting:
    database: str
    level: int | None  # None: the server did not say (mongos reports no level)
    slowms: int | None
    sample_rate: float | None = None

    def describe(self) -> str:
        level = "unknown" if self.level is None else {0: "0 (off)", 1: "1 (slow operations)", 2: "2 (all operations)"}.get(
            self.level, str(self.level)
        )
        parts = [f"{self.database}: level {level}"]
        if self.slowms is not None:
            parts.append(f"slowms {self.slowms}")
        if self.sample_rate is not None:
            parts.append(f"sampleRate {self.sample_rate:g}")
        return ", ".join(parts)


def _setting(database: str, reply: dict[str, Any], level_key: str) -> ProfilerSetting:
    level = reply.get(level_key)
    slowms = reply.get("slowms")
    rate = reply.get("sampleRate")
    return ProfilerSetting(
        database=database,
        level=None if level is None else int(level),
        slowms=None if slowms is None else int(slowms),
        sample_rate=None if rate is None else float(rate),
    )


async def read_profiler_setting(client: Any, database: str) -> ProfilerSetting:
    """The current setting; `profile: -1` only reads (its reply's `was` is the current level)."""
    return _setting(database, await client[database].command({"profile": -1}), "was")


async def set_profiler(
    client: Any, database: str, level: int, *, slowms: int | None = None, sample_rate: float | None = None
) -> ProfilerSetting:
    """Set the level (and optionally slowms / sampleRate); returns the setting it replaced."""
    if level not in (0, 1, 2):
        raise ValueError("profiler level must be 0, 1 or 2")
    before = await read_profiler_setting(client, database)
    command: dict[str, Any] = {"profile": level}
    if slowms is not None:
        command["slowms"] = int(slowms)
    if sample_rate is not None:
        command["sampleRate"] = float(sample_rate)
    await client[database].command(command)
    return before


async def restore_profiler(client: Any, previous: ProfilerSetting) -> ProfilerSetting:
    """Put back a setting `set_profiler` returned; returns the setting now in force."""
    command: dict[str, Any] = {"profile": previous.level if previous.level is not None else 0}
    if previous.slowms is not None:
        command["slowms"] = previous.slowms
    if previous.sample_rate is not None:
        command["sampleRate"] = previous.sample_rate
    await client[previous.database].command(command)
    return await read_profiler_setting(client, previous.database)
