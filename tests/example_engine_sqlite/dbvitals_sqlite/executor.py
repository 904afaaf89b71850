"""Applying SQLite fix steps on a read-write connection of their own, and the undo guards.

A step is one statement the engine wrote itself (CREATE INDEX, DROP INDEX, PRAGMA journal_mode):
the guards read them back with the patterns below. After the steps, `record_state` notes what
they left (an index's SQL as sqlite_master keeps it, the journal mode); `guard_undo` reads the
file again and refuses an inverse when the object is no longer what the fix left.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Sequence
from typing import Any

from checks.fixes.execution import Execution, StepFailed, UndoCheck
from checks.model import FixStep
from dbvitals_sqlite.session import open_file

_IDENT = r'"(?P<{0}>(?:[^"]|"")+)"'
CREATE_INDEX = re.compile(r"^\s*CREATE\s+INDEX\s+" + _IDENT.format("name") + r"\s+ON\s", re.IGNORECASE)
DROP_INDEX = re.compile(r"^\s*DROP\s+INDEX\s+" + _IDENT.format("name") + r"\s*$", re.IGNORECASE)
JOURNAL_MODE = re.compile(r"^\s*PRAGMA\s+journal_mode\s*=\s*(?P<mode>\w+)\s*$", re.IGNORECASE)

INDEX_SQL = "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?"


def _unquoted(match: re.Match[str]) -> str:
    return match["name"].replace('""', '"')


def _apply(conn: sqlite3.Connection, step: FixStep) -> None:
    text = str(step.command)
    mode = JOURNAL_MODE.match(text)
    if mode:
        # The pragma answers with the mode now in force: anything else means it did not switch
        # (another connection holds the file, or the file system cannot do WAL).
        now = conn.execute(text).fetchone()[0]
        if str(now).lower() != mode["mode"].lower():
            raise StepFailed(f"`{text}` left journal_mode {now}: another connection may hold the database")
        return
    conn.execute(text)


async def execute(run: Execution, steps: Sequence[FixStep]) -> None:
    def work() -> None:
        conn = open_file(run.target.path, writable=True, timeout=run.limits.lock_timeout_s)  # type: ignore[attr-defined]
        try:
            for step in steps:
                try:
                    _apply(conn, step)
                except sqlite3.Error as exc:
                    raise StepFailed(f"`{step.command}` failed: {type(exc).__name__}: {exc}") from None
                run.steps_done += 1
        finally:
            conn.close()

    await asyncio.to_thread(work)


def _read(target: Any, queries: list[tuple[str, tuple[Any, ...]]]) -> list[Any]:
    conn = open_file(target.path, writable=False, timeout=target.timeout)
    try:
        return [conn.execute(sql, params).fetchone() for sql, params in queries]
    finally:
        conn.close()


async def record_state(run: Execution, steps: Sequence[FixStep]) -> list[dict[str, Any]]:
    """What the applied steps left, read from the file: each index's SQL, the journal mode."""
    done = [str(s.command) for s in steps[: run.steps_done]]
    wanted: list[tuple[str, str]] = []
    for text in done:
        if create := CREATE_INDEX.match(text):
            wanted.append(("index", _unquoted(create)))
        elif JOURNAL_MODE.match(text):
            wanted.append(("journal_mode", ""))
    rows = await asyncio.to_thread(_read, run.target, [
        (INDEX_SQL, (name,)) if what == "index" else ("PRAGMA journal_mode", ()) for what, name in wanted])
    recorded = []
    for (what, name), row in zip(wanted, rows):
        if row is None:
            continue
        if what == "index":
            recorded.append({"kind": "sqlite-index", "name": name, "sql": row[0]})
        else:
            recorded.append({"kind": "sqlite-journal-mode", "mode": str(row[0]).lower()})
    return recorded


def expected_text(record: dict[str, Any]) -> str:
    if record.get("kind") == "sqlite-index":
        return f"index {record['name']!r} as `{record['sql']}`"
    if record.get("kind") == "sqlite-journal-mode":
        return f"journal_mode {record['mode']}"
    return str(record)


def inspects(steps: Sequence[FixStep]) -> bool:
    return any(DROP_INDEX.match(str(s.command)) or JOURNAL_MODE.match(str(s.command)) for s in steps)


async def guard_undo(target: Any, entry: Any, inverse: Sequence[FixStep]) -> UndoCheck:
    """Refuse an inverse whose object is not as the fix left it: an index dropped or redefined
    since, a journal mode someone changed again."""
    finished = entry.outcome in ("fixed", "not_fixed")
    check = UndoCheck(steps=[])
    if not finished and entry.steps_done == 0:
        check.notes.append(f"entry {entry.id} applied no step: its inverse has nothing to undo")
        return check
    expect = list(getattr(entry, "expect", []) or [])
    queries = []
    for step in inverse:
        text = str(step.command)
        if drop := DROP_INDEX.match(text):
            queries.append((INDEX_SQL, (_unquoted(drop),)))
        elif JOURNAL_MODE.match(text):
            queries.append(("PRAGMA journal_mode", ()))
        else:
            queries.append(("SELECT NULL", ()))
    rows = await asyncio.to_thread(_read, target, queries)
    for step, row in zip(inverse, rows):
        text = str(step.command)
        if drop := DROP_INDEX.match(text):
            name = _unquoted(drop)
            record = next((e for e in expect if e.get("kind") == "sqlite-index" and e.get("name") == name), None)
            if row is None:
                check.not_as_left(finished, f"index {name!r} no longer exists: nothing is left to undo",
                                  f"index {name!r} does not exist: the unfinished fix did not create it")
                continue
            if record is not None and row[0] != record["sql"]:
                check.refusals.append(f"index {name!r} is not the one this fix created: the fix left "
                                      f"`{record['sql']}`, the file now has `{row[0]}`; dbvitals will not drop it")
                continue
        elif JOURNAL_MODE.match(text):
            record = next((e for e in expect if e.get("kind") == "sqlite-journal-mode"), None)
            now = str(row[0]).lower() if row else None
            if record is not None and now != record["mode"]:
                check.refusals.append(f"journal_mode is {now} now, not the {record['mode']} this fix left: "
                                      "someone changed it since; dbvitals will not change it back")
                continue
        check.steps.append(step)
    return check
