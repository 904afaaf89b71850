"""What is running now on a target: one reader per engine, read-only, one session.

A reader turns the server's own views (pg_stat_activity, currentOp and top, CLIENT LIST,
SLOWLOG and INFO commandstats) into an `ActivitySample`: plain rows per section, so the
headless command, the console, snapshots and replay all show the same thing. Counters that
only mean something as a rate (MongoDB `top`, Redis commandstats) are kept raw in
`counters`; `rates` are the deltas against the previous sample of the same target.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from checks.engines import adapter_for
from checks.model import Engine, FixStep


@dataclass
class ActivitySample:
    target: str
    engine: str
    taken_at: str  # ISO 8601, UTC
    monotonic: float  # for rates between two samples of one process
    sections: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    counters: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what the server did not tell, said plainly
    # This moment's figures for the view's sparklines (the engine's TRENDS), None where unknown.
    trend: dict[str, float | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "engine": self.engine,
            "taken_at": self.taken_at,
            "sections": self.sections,
            "notes": self.notes,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ActivitySample:
        return cls(
            target=data["target"],
            engine=data["engine"],
            taken_at=data["taken_at"],
            monotonic=0.0,
            sections={k: list(v) for k, v in (data.get("sections") or {}).items()},
            notes=list(data.get("notes") or ()),
        )


# A section of the activity view: (section key, title, columns as (row key, header, justify), rows shown at most).
Justify = Literal["default", "left", "center", "right", "full"]  # a column's alignment, as rich names it
Section = tuple[str, str, list[tuple[str, str, Justify]], int]
# The section dbvitals's own sessions (operations, clients) go to: kept for the refusal to stop
# them, never laid out, since they are not the workload.
OWN_SECTION = "own"


class EngineActivity(Protocol):
    """What each engine's module offers: `read` a sample (rows marked `own` for dbvitals's own
    sessions), the step that cancels or terminates one (a FixStep, previewed and journalled like
    every action's), what checks.actions.kill needs to refuse a stale preview and to verify by
    reading again, and how the activity view lays its sections out (`LAYOUT`)."""

    LAYOUT: list[Section]
    KILLABLE: str | None  # the section whose rows can be cancelled or terminated; None: none can
    # Optional (read through the functions below, so an engine without them still works):
    # KILLABLE_IN: frozenset[str]   sections whose row ids name a KILLABLE row (the tree of who blocks whom)
    # AGE_KEYS: dict[str, str]      per section, the age column it is sorted by at first, oldest first
    # TRENDS: list[tuple[str, str]] (trend key, label): the figures drawn as sparklines
    # DETAIL: list[tuple[str, str]] (row key, label): what a row's detail shows

    async def read(self, session: Any, target: str, previous: ActivitySample | None) -> ActivitySample: ...

    def kill_step(self, ident: str, *, terminate: bool) -> FixStep: ...

    async def apply(self, session: Any, step: FixStep) -> str: ...

    def changed(self, preview: dict[str, Any], now: dict[str, Any]) -> str | None:
        """Why this row is no longer the work the preview showed (checked before signalling)."""

    def idle(self, row: dict[str, Any]) -> str | None:
        """Why a cancel would find nothing running here, or None."""

    def still_running(self, preview: dict[str, Any], now: dict[str, Any]) -> bool:
        """After a cancel: the work the preview showed still runs in this row."""


def for_engine(engine: Engine) -> EngineActivity:
    """The engine's activity module, as its adapter names it."""
    return adapter_for(engine).activity


def killable_in(module: EngineActivity) -> frozenset[str]:
    """The sections whose rows are sessions an action can aim at by their id."""
    declared: frozenset[str] | None = getattr(module, "KILLABLE_IN", None)
    if declared is not None:
        return declared
    return frozenset({module.KILLABLE}) if module.KILLABLE else frozenset()


def age_keys(module: EngineActivity) -> dict[str, str]:
    return dict(getattr(module, "AGE_KEYS", {}))


def trend_labels(module: EngineActivity) -> list[tuple[str, str]]:
    return list(getattr(module, "TRENDS", []))


def detail_fields(module: EngineActivity) -> list[tuple[str, str]]:
    return list(getattr(module, "DETAIL", []))


def behind(waiters: dict[Any, list[Any]], ident: Any) -> int:
    """How many sessions wait on `ident`, directly or behind one that does (each counted once)."""
    seen: set[Any] = set()
    stack = list(waiters.get(ident, ()))
    while stack:
        current = stack.pop()
        if current in seen or current == ident:
            continue
        seen.add(current)
        stack.extend(waiters.get(current, ()))
    return len(seen)


def root_blocker(rows: list[dict[str, Any]], ident: str) -> str | None:
    """The session at the head of the chain `ident` waits in (one that waits on no one), or None
    when `ident` waits on no one. Rows name whom they wait on in `blocked_by`."""
    by_id = {str(r.get("id")): r for r in rows}
    current, seen = str(ident), {str(ident)}
    while True:
        waits_on = [str(p) for p in (by_id.get(current, {}).get("blocked_by") or ())]
        if not waits_on:
            return None if current == str(ident) else current
        following = next((p for p in waits_on if p not in seen), None)
        if following is None:  # a lock cycle: no root; the deadlock detector breaks it
            return None
        seen.add(following)
        current = following


def relation(row: dict[str, Any]) -> str | None:
    """Whom a session holds up and waits on, as the confirmation says it ("blocks 3, waits on
    none"), from what its row tells: the sessions it blocks and waits on (`blocks`,
    `blocked_by`), or only whether it waits (`blocked` in a command, `waiting_for_lock`).
    None for a row that tells neither."""
    if "blocks" in row or "blocked_by" in row:
        waits_on = ", ".join(str(p) for p in row.get("blocked_by") or ()) or "none"
        return f"blocks {row.get('blocks') or 0}, waits on {waits_on}"
    if "blocked" in row:
        return "waits in a blocking command" if row["blocked"] else "waits on nothing"
    if "waiting_for_lock" in row:
        return "waits for a lock" if row["waiting_for_lock"] else "waits on nothing"
    return None


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def rates(current: dict[str, float], previous: dict[str, float] | None, seconds: float) -> dict[str, float]:
    """Per-second deltas of monotonic counters; a counter that went down (a restart, a reset)
    gives no rate rather than a negative one."""
    if not previous or seconds <= 0:
        return {}
    out: dict[str, float] = {}
    for key, value in current.items():
        before = previous.get(key)
        if before is not None and value >= before:
            out[key] = (value - before) / seconds
    return out


def shorten(text: Any, limit: int = 200) -> str:
    """One line of at most `limit` characters: statements are shown, not reproduced."""
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
