"""What a snapshot keeps of a SQLite file: each table's row count."""

from __future__ import annotations

from typing import Any

from checks.snapshots import Figure
from checks.snapshots.diff import FigureKind, growth
from dbvitals_sqlite.checks import TABLES
from dbvitals_sqlite.session import quote


async def gather(session: Any) -> list[Figure]:
    figures: list[Figure] = []
    for (table,) in await session.fetchall(TABLES):
        (rows,) = (await session.fetchall(f"SELECT count(*) FROM {quote(table)}"))[0]
        figures.append(("sqlite.table", table, {"rows": rows}))
    return figures


# How `dbvitals diff` reads these figures.
KINDS = {"sqlite.table": FigureKind(growth("rows", "rows"), gone="table dropped", headline="rows")}
