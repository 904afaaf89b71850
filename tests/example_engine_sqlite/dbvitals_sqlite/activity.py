"""What runs now on a SQLite file: nothing server-side. The sample says so, and only lists the
file's own state that a stuck writer shows (a WAL that keeps growing)."""

from __future__ import annotations

import os
from typing import Any

from checks.activity import ActivitySample, Section, now_iso
from checks.model import FixStep

KILLABLE = None  # a file has no sessions to cancel or terminate
LAYOUT: list[Section] = [
    ("files", "Database files", [("file", "file", "left"), ("bytes", "bytes", "right")], 5),
]


async def read(session: Any, target: str, previous: ActivitySample | None) -> ActivitySample:
    files = [{"file": str(path), "bytes": os.path.getsize(path)}
             for path in (session.path, session.path.with_name(session.path.name + "-wal")) if path.exists()]
    return ActivitySample(target=target, engine="sqlite", taken_at=now_iso(), monotonic=0.0,
                          sections={"files": files},
                          notes=["a SQLite file has no server: its clients are the processes that open it"])


def is_own(row: dict[str, Any]) -> bool:
    return False


def kill_step(ident: str, *, terminate: bool) -> FixStep:
    raise LookupError("a SQLite file has no sessions to cancel or terminate")


async def apply(session: Any, step: FixStep) -> str:
    raise LookupError("a SQLite file has no sessions to cancel or terminate")


def cancelled(before: dict[str, Any], after: dict[str, Any]) -> bool:
    return False
