"""Snapshots of a fleet's health: the report, the figures that explain change, and what was
running; stored in SQLite (`store`), taken by `take`, compared by `diff`."""

from __future__ import annotations

from typing import Any, Protocol

from checks.engines import adapter_for
from checks.model import Engine

Figure = tuple[str, str, dict[str, Any]]


class FiguresReader(Protocol):
    """`gather` returns (kind, name, metrics) rows: a kind such as "pg.index", the object's name."""

    async def gather(self, session: Any) -> list[Figure]: ...


def figures_for(engine: Engine) -> FiguresReader:
    """The engine's figures module, as its adapter names it."""
    return adapter_for(engine).figures
