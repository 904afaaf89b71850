"""Readings over a time window: figures now against an earlier snapshot's (`dbvitals snapshot
save`). Writes and reads of each table (figures pg.table): pg_stat_user_tables counts since the
statistics were last reset, so a one-time bulk load months ago makes a table "write-heavy" for
ever; the difference over a window says what the table does now."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from checks.postgres._catalog import Catalog
from checks.snapshots.store import FILE_NAME, SnapshotError, SnapshotStore


@dataclass(frozen=True)
class Counters:
    writes: int
    reads: int


@dataclass(frozen=True)
class WriteWindow:
    """Per table (the partition root, as the check judges it): writes and scans in the window."""

    seconds: float
    since: str  # the earlier snapshot's taken_at
    tables: Mapping[int, Counters]


def _root(snapshot: Catalog, oid: int) -> int:
    table = snapshot.tables[oid]
    while table.parent is not None and table.parent in snapshot.tables:
        table = snapshot.tables[table.parent]
    return table.oid


def _by_root(snapshot: Catalog, figures: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[int, Counters]:
    by_name = {t.qualified: t.oid for t in snapshot.tables.values()}
    totals: dict[int, Counters] = {}
    for name, m in figures:
        oid = by_name.get(name)
        if oid is None:
            continue
        root = _root(snapshot, oid)
        writes = int(m.get("n_tup_ins") or 0) + int(m.get("n_tup_upd") or 0) + int(m.get("n_tup_del") or 0)
        reads = int(m.get("seq_scan") or 0) + int(m.get("idx_scan") or 0)
        before = totals.get(root, Counters(0, 0))
        totals[root] = Counters(before.writes + writes, before.reads + reads)
    return totals


def _earlier_figures(store_path: Path, target: str, min_age: dt.timedelta, now: dt.datetime,
                     kind: str = "pg.table") -> tuple[str, float, list[tuple[str, dict[str, Any]]]] | None:
    """The newest snapshot at least `min_age` old with figures of this kind for the target:
    (its taken_at, its age in seconds, [(name, metrics)])."""
    if not store_path.is_file():
        return None
    store = SnapshotStore(store_path)
    try:
        for info in reversed(store.list()):
            taken = dt.datetime.fromisoformat(info.taken_at)
            if taken.tzinfo is None:
                taken = taken.replace(tzinfo=dt.timezone.utc)
            age = (now - taken).total_seconds()
            if age < min_age.total_seconds():
                continue
            figures = store.load(info.id).figures.get(target, {})
            wanted = [(name, m) for (k, name), m in figures.items() if k == kind]
            if wanted:
                return info.taken_at, age, wanted
    except (SnapshotError, OSError, ValueError):
        return None  # an unreadable store: no window, said as such by the caller
    return None


async def earlier_reading(journal: Path | None, target: str, kind: str,
                          min_age: dt.timedelta) -> tuple[str, float, dict[str, dict[str, Any]]] | None:
    """The figures of `kind` for `target` in the newest snapshot at least `min_age` old (the
    snapshot store beside the journal): (taken_at, age in seconds, name -> metrics); None without."""
    if journal is None:
        return None
    now = dt.datetime.now(dt.timezone.utc)
    earlier = await asyncio.to_thread(_earlier_figures, Path(journal).parent / FILE_NAME, target, min_age, now, kind)
    return None if earlier is None else (earlier[0], earlier[1], dict(earlier[2]))


async def write_window(journal: Path | None, target: str, snapshot: Catalog, current: Mapping[int, Counters],
                       min_age: dt.timedelta) -> WriteWindow | None:
    """The window from the newest snapshot at least `min_age` old to `current` (per partition
    root, as read now); None without one. A table whose counters went down (statistics reset,
    restart) between the two is left out."""
    earlier = await earlier_reading(journal, target, "pg.table", min_age)
    if earlier is None:
        return None
    since, seconds, then_figures = earlier
    then = _by_root(snapshot, then_figures.items())
    tables = {oid: Counters(c.writes - then[oid].writes, c.reads - then[oid].reads)
              for oid, c in current.items()
              if oid in then and c.writes >= then[oid].writes and c.reads >= then[oid].reads}
    return WriteWindow(seconds, since, tables)
