"""The action journal: every attempt to fix, undo, cancel or terminate, as JSON lines, append-only.

Every kind of action writes the same entry shape (`JournalEntry`) with the same id length.

Each line is a full snapshot of one entry. An entry is written when an attempt starts (no
outcome yet) and again when it ends; the last snapshot of an id wins. A process that dies
mid-fix therefore leaves an entry whose outcome is missing: `state` says "unfinished".
Bulk data an entry needs for its undo (the Redis keys a fix gave a TTL) goes to a side file
in `<journal>.d/`, referenced from the entry, so the journal itself stays small and readable.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import getpass
import json
import os
import socket
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from checks.state import default_state_dir

SCHEMA = "dbvitals.journal/1"
JOURNAL_NAME = "journal.jsonl"
KINDS = ("fix", "undo", "cancel", "terminate")
ENTRY_ID_HEX = 8  # every kind's entry id (older journals hold 12-digit cancel/terminate ids: still read)


class JournalError(Exception):
    """The journal cannot be read or written (its path is a directory, say); the message says
    which path and what to do. Nothing is applied without a journal to record it."""


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user without a passwd entry
        return f"uid {os.getuid()}"


@dataclass
class JournalEntry:
    id: str
    kind: str  # one of KINDS
    started_at: str
    user: str
    host: str
    target: str
    engine: str
    url: str  # always masked
    environment: str | None
    finding: dict[str, Any]  # what the action is about: id, check, object, title, severity
    summary: str
    safety: str
    lock: str | None
    steps: list[dict[str, Any]]
    inverse: list[dict[str, Any]]
    undoes: str | None = None  # for an undo: the entry it reverses
    outcome: str | None = None  # fixed | not_fixed | failed | refused; None while running
    message: str = ""
    verified: bool | None = None
    steps_done: int = 0
    leftovers: list[str] = field(default_factory=list)  # what a failure left behind, said plainly
    # What the undo expects to find: the objects the steps created or changed, as the server had
    # them once the steps ran (an index's OID and definition, a setting's value). An undo refuses
    # when the object is no longer what dbvitals left, so it only ever undoes dbvitals's own work.
    expect: list[dict[str, Any]] = field(default_factory=list)
    finished_at: str | None = None
    duration_ms: float | None = None

    @property
    def state(self) -> str:
        return self.outcome or "unfinished"

    @property
    def finished(self) -> bool:
        return self.outcome is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JournalEntry:
        known = {f.name for f in fields(cls)}
        entry = cls(**{k: v for k, v in data.items() if k in known})
        _check_types(entry)
        finding = entry.finding if isinstance(entry.finding, dict) else {}
        if entry.kind == "fix" and finding.get("check") == "activity":
            # Older journals wrote a cancel or terminate as a "fix" titled with its verb.
            verb = str(finding.get("title") or "").split(" ", 1)[0]
            entry.kind = verb if verb in ("cancel", "terminate") else entry.kind
        return entry


class Journal:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        # Lines that could not be read (a crash mid-write leaves at most one): reported, not raised.
        self.problems: list[str] = []

    @classmethod
    def for_settings(cls, settings: Any) -> Journal:
        configured = getattr(settings, "journal", None)
        if configured:
            return cls(configured)
        return cls(default_state_dir() / JOURNAL_NAME)

    @property
    def side_dir(self) -> Path:
        """Where entries keep bulk data such as the keys a Redis fix touched."""
        return self.path.with_name(self.path.name + ".d")

    def side_file(self, name: str) -> Path:
        return self.side_dir / name

    def check(self) -> None:
        """Raise JournalError when the journal cannot be a file: before anything is applied."""
        if self.path.is_dir():
            raise JournalError(f"journal: {self.path} is a directory: move it away, or name another "
                               "journal file with `journal = PATH` in the config")
        parent = self.path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise JournalError(f"journal: {parent} is not a directory, so {self.path} cannot be created: "
                               "give another path with `journal = PATH` in the config")

    def append(self, entry: JournalEntry) -> None:
        """Write the entry's current state as one line, durably, under an exclusive lock."""
        self.check()
        line = json.dumps({"schema": SCHEMA, **entry.to_dict()}, ensure_ascii=False, default=str) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise JournalError(f"journal: cannot write {self.path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)

    def entries(self) -> list[JournalEntry]:
        """Every entry in the order it started, each in its latest state, with `undone_by` links."""
        self.problems = []
        latest: dict[str, JournalEntry] = {}
        if not self.path.exists():
            return []
        self.check()
        try:
            handle = self.path.open(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise JournalError(f"journal: cannot read {self.path}: {exc.strerror or exc}") from None
        with handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                    if not isinstance(data, dict):
                        raise ValueError(f"a JSON {type(data).__name__}, not an entry object")
                    entry = JournalEntry.from_dict(data)
                    if not isinstance(entry.id, str):
                        raise ValueError("its id is not a string")
                except (ValueError, TypeError) as exc:
                    self.problems.append(f"{self.path}:{number}: unreadable line ({exc})")
                    continue
                latest[entry.id] = entry
        return list(latest.values())

    def get(self, entry_id: str) -> JournalEntry | None:
        """The entry with this id, or with this unique id prefix (at least 4 characters)."""
        entries = self.entries()
        for entry in entries:
            if entry.id == entry_id:
                return entry
        if len(entry_id) < 4:
            return None
        matches = [e for e in entries if e.id.startswith(entry_id)]
        if len(matches) > 1:
            raise LookupError(f"entry id {entry_id} is ambiguous: {', '.join(e.id for e in matches)}")
        return matches[0] if matches else None

    def undone_by(self, entry_id: str) -> JournalEntry | None:
        """The undo that reversed this entry, if one was applied."""
        for entry in reversed(self.entries()):
            if entry.undoes == entry_id and entry.outcome in {"fixed", "not_fixed"}:
                return entry
        return None


_TYPES: dict[str, type | tuple[type, ...]] = {
    "id": str, "kind": str, "started_at": str, "user": str, "host": str, "target": str, "engine": str, "url": str,
    "environment": (str, type(None)), "finding": dict, "summary": (str, type(None)), "safety": str, "lock": (str, type(None)),
    "steps": list, "inverse": list, "undoes": (str, type(None)), "outcome": (str, type(None)), "message": (str, type(None)),
    "verified": (bool, type(None)), "steps_done": int, "leftovers": list, "expect": list,
    "finished_at": (str, type(None)), "duration_ms": (int, float, type(None)),
}


def _check_types(entry: JournalEntry) -> None:
    """An entry whose fields are not what dbvitals writes is unreadable (ValueError), not a crash
    later in history or undo."""
    for name, expected in _TYPES.items():
        value = getattr(entry, name)
        if not isinstance(value, expected):
            raise ValueError(f"its {name} is a JSON {type(value).__name__}")
    for name in ("steps", "inverse", "expect"):
        if not all(isinstance(item, dict) for item in getattr(entry, name)):
            raise ValueError(f"its {name} are not all objects")


def host_name() -> str:
    return socket.gethostname()
