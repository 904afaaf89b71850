"""Snapshots of a fleet's health: the report, the figures that explain change, and what was
running; stored in SQLite (`store`), taken by `take`, compared by `diff`."""

from __future__ import annotations

import importlib
from typing import Any, Protocol

from checks.model import Engine

# One figures reader per engine: `async def gather(session) -> list[(kind, name, metrics)]`.
FIGURES: dict[Engine, str] = {
    Engine.POSTGRES: "checks.snapshots.figures_postgres",
    Engine.MONGODB: "checks.snapshots.figures_mongodb",
    Engine.REDIS: "checks.snapshots.figures_redis",
}

Figure = tuple[str, str, dict[str, Any]]


class FiguresReader(Protocol):
    async def gather(self, session: Any) -> list[Figure]: ...


def figures_for(engine: Engine) -> FiguresReader:
    return importlib.import_module(FIGURES[engine])  # type: ignore[return-value]
