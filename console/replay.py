"""A recording opened in the console: the snapshots of one label (or every snapshot of a store
file), stepped through in time with `[` and `]`."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from checks.snapshots.store import Snapshot, SnapshotError, SnapshotStore, default_path


@dataclass
class Replay:
    source: str
    snapshots: list[Snapshot]
    index: int = 0

    @property
    def current(self) -> Snapshot:
        return self.snapshots[self.index]

    def step(self, by: int) -> bool:
        """Move by `by` snapshots; False at either end (nothing changes)."""
        target = min(max(self.index + by, 0), len(self.snapshots) - 1)
        moved = target != self.index
        self.index = target
        return moved

    def position(self) -> str:
        """What the header says: the recording's label, which snapshot of how many, and its time."""
        info = self.current.info
        label = f"{info.label} " if info.label else ""
        return f"replay {label}{self.index + 1}/{len(self.snapshots)} {info.taken_at.replace('T', ' ')[:19]} UTC"

    def taken_epoch(self) -> float:
        """When the current snapshot was taken (a time without a zone is UTC, as recorded)."""
        taken = dt.datetime.fromisoformat(self.current.info.taken_at)
        return (taken if taken.tzinfo else taken.replace(tzinfo=dt.timezone.utc)).timestamp()


def open_replay(ref: str, settings: Any) -> Replay:
    """`ref` is a snapshot store file, or a label (or id) in the configured store."""
    path = Path(ref).expanduser()
    if path.is_file():
        store, label = SnapshotStore(path), None
    else:
        store, label = SnapshotStore(default_path(settings)), ref
    infos = store.list(label=label) if label is not None else store.list()
    if label is not None and not infos:
        infos = [i for i in store.list() if str(i.id) == ref]
    if not infos:
        raise SnapshotError(f"--replay {ref}: no such file, and no recording of that label in {store.path} "
                            "(`dbvitals snapshot list` shows them)")
    snapshots = store.load_all([i.id for i in infos])
    return Replay(ref, snapshots, index=len(snapshots) - 1)
