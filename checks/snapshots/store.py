"""Snapshots in an embedded SQLite database: the report and the figures that explain change.

One file in the state directory (`snapshots.db` beside the journal), WAL mode so a recorder and
a reader never block each other, a schema version in `PRAGMA user_version` and ordered
migrations. Findings and figures are stored as JSON per row; nothing in it is a secret (URLs are
masked and every text went through the target's masking before it was saved).
"""

from __future__ import annotations

import builtins
import datetime as dt
import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from checks.model import CheckError, Finding, Report, TargetState, TargetStatus
from checks.state import default_state_dir

FILE_NAME = "snapshots.db"

# Each migration takes the schema from version i to i + 1; never edit one that shipped.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE snapshots (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        taken_at TEXT NOT NULL,
        label TEXT,
        source TEXT,
        duration_ms REAL
    );
    CREATE INDEX snapshots_label ON snapshots (label);
    CREATE TABLE targets (
        snapshot_id INTEGER NOT NULL REFERENCES snapshots (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        PRIMARY KEY (snapshot_id, name)
    );
    CREATE TABLE findings (
        snapshot_id INTEGER NOT NULL REFERENCES snapshots (id) ON DELETE CASCADE,
        id TEXT NOT NULL,
        target TEXT NOT NULL,
        finding TEXT NOT NULL,
        PRIMARY KEY (snapshot_id, id)
    );
    CREATE TABLE errors (
        snapshot_id INTEGER NOT NULL REFERENCES snapshots (id) ON DELETE CASCADE,
        error TEXT NOT NULL
    );
    CREATE INDEX errors_snapshot ON errors (snapshot_id);
    CREATE TABLE figures (
        snapshot_id INTEGER NOT NULL REFERENCES snapshots (id) ON DELETE CASCADE,
        target TEXT NOT NULL,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        metrics TEXT NOT NULL,
        PRIMARY KEY (snapshot_id, target, kind, name)
    );
    CREATE TABLE activity (
        snapshot_id INTEGER NOT NULL REFERENCES snapshots (id) ON DELETE CASCADE,
        target TEXT NOT NULL,
        sample TEXT NOT NULL,
        PRIMARY KEY (snapshot_id, target)
    );
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
# PRAGMA application_id of a dbvitals store ("dbvs"): a SQLite file without it is another
# application's, and is never migrated or switched to WAL.
APPLICATION_ID = 0x64627673
TABLES = frozenset({"snapshots", "targets", "findings", "errors", "figures", "activity"})


class SnapshotError(Exception):
    """A snapshot that does not exist, or a store that cannot be read; phrased for the user."""


@dataclass
class SnapshotInfo:
    id: int
    taken_at: str
    label: str | None
    source: str | None
    targets: int = 0
    findings: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "taken_at": self.taken_at, "label": self.label, "source": self.source,
                "targets": self.targets, "findings": self.findings}


@dataclass
class Snapshot:
    info: SnapshotInfo
    targets: list[TargetStatus]
    findings: list[Finding]
    errors: list[dict[str, Any]]
    figures: dict[str, dict[tuple[str, str], dict[str, Any]]] = field(default_factory=dict)  # target -> (kind, name) -> metrics
    activity: dict[str, dict[str, Any]] = field(default_factory=dict)

    def report(self) -> Report:
        return Report(targets=self.targets, findings=self.findings,
                      errors=[CheckError(**e) for e in self.errors], duration_ms=0.0)


def default_path(settings: Any) -> Path:
    """Beside the journal: the config's journal directory, else the state directory."""
    journal = getattr(settings, "journal", None)
    return (Path(journal).expanduser().parent if journal else default_state_dir()) / FILE_NAME


class SnapshotStore:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists()
        if fresh:
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        try:
            db = sqlite3.connect(self.path, timeout=10)
        except sqlite3.Error as exc:
            raise SnapshotError(f"{self.path}: cannot open the snapshot store: {exc}") from None
        try:
            self._claim(db)
            db.execute("PRAGMA foreign_keys = ON")
            db.execute("PRAGMA journal_mode = WAL")
            self._migrate(db)
            yield db
            db.commit()
        except sqlite3.DatabaseError as exc:
            db.rollback()
            raise SnapshotError(f"{self.path}: {exc}") from None
        finally:
            db.close()

    def _claim(self, db: sqlite3.Connection) -> None:
        """Refuse, before anything is written, a SQLite file that is not a dbvitals store: a
        --store or --replay pointed at another application's database must leave it as it was."""
        if db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID:
            return
        tables = {name for (name,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
        if db.execute("PRAGMA application_id").fetchone()[0] == 0 and tables in (set(), TABLES):
            return  # a new file, or a store written before stores were marked: claimed by _migrate
        raise SnapshotError(f"{self.path} is not a dbvitals snapshot store (a SQLite database of another "
                            "application): left as it was; name another file")

    def _migrate(self, db: sqlite3.Connection) -> None:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise SnapshotError(f"{self.path} was written by a newer dbvitals (schema {version}, "
                                f"this one knows {SCHEMA_VERSION})")
        for number in range(version, SCHEMA_VERSION):
            db.executescript(f"BEGIN; {MIGRATIONS[number]} PRAGMA user_version = {number + 1}; COMMIT;")
        if db.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")

    # --- writing ---------------------------------------------------------------------------------

    def save(
        self,
        report: Report,
        figures: dict[str, list[tuple[str, str, dict[str, Any]]]],
        *,
        label: str | None = None,
        source: str | None = None,
        activity: dict[str, dict[str, Any]] | None = None,
        taken_at: str | None = None,
    ) -> int:
        when = taken_at or dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        with self._connect() as db:
            cursor = db.execute(
                "INSERT INTO snapshots (taken_at, label, source, duration_ms) VALUES (?, ?, ?, ?)",
                (when, label, source, report.duration_ms),
            )
            sid = int(cursor.lastrowid or 0)
            db.executemany("INSERT INTO targets VALUES (?, ?, ?)",
                           [(sid, t.name, _dump(t.to_dict())) for t in report.targets])
            db.executemany("INSERT OR REPLACE INTO findings VALUES (?, ?, ?, ?)",
                           [(sid, f.id, f.target, _dump(f.to_dict())) for f in report.findings])
            db.executemany("INSERT INTO errors VALUES (?, ?)", [(sid, _dump(e.to_dict())) for e in report.errors])
            db.executemany(
                "INSERT OR REPLACE INTO figures VALUES (?, ?, ?, ?, ?)",
                [(sid, target, kind, name, _dump(metrics))
                 for target, rows in figures.items() for kind, name, metrics in rows],
            )
            db.executemany("INSERT INTO activity VALUES (?, ?, ?)",
                           [(sid, target, _dump(sample)) for target, sample in (activity or {}).items()])
        return sid

    def prune(self, *, keep: int | None = None, older_than: dt.timedelta | None = None,
              label: str | None = None) -> int:
        """Delete old snapshots (of one label, if given); returns how many went."""
        clauses, params = [], []
        if label is not None:
            clauses.append("label = ?")
            params.append(label)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._connect() as db:
            ids = [r[0] for r in db.execute(f"SELECT id FROM snapshots {where} ORDER BY id DESC", params)]
            doomed: set[int] = set()
            if keep is not None:
                doomed.update(ids[keep:])
            if older_than is not None:
                cutoff = (dt.datetime.now(dt.timezone.utc) - older_than).isoformat(timespec="seconds")
                doomed.update(r[0] for r in db.execute(
                    f"SELECT id FROM snapshots {where} {'AND' if where else 'WHERE'} taken_at < ?", [*params, cutoff]))
            db.executemany("DELETE FROM snapshots WHERE id = ?", [(i,) for i in sorted(doomed)])
        if doomed:
            with self._connect() as db:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return len(doomed)

    # --- reading ---------------------------------------------------------------------------------

    def list(self, *, label: str | None = None) -> list[SnapshotInfo]:
        if not self.path.exists():
            return []
        where, params = ("WHERE s.label = ?", [label]) if label is not None else ("", [])
        with self._connect() as db:
            rows = db.execute(
                f"""SELECT s.id, s.taken_at, s.label, s.source,
                       (SELECT count(*) FROM targets t WHERE t.snapshot_id = s.id),
                       (SELECT count(*) FROM findings f WHERE f.snapshot_id = s.id)
                    FROM snapshots s {where} ORDER BY s.id""", params).fetchall()
        return [SnapshotInfo(*row) for row in rows]

    def resolve(self, ref: str) -> int:
        """A snapshot by id, by label (its latest), or `latest` / `latest~N`."""
        infos = self.list()
        if not infos:
            raise SnapshotError(f"no snapshots in {self.path} (take one with `dbvitals snapshot save`)")
        if ref == "latest" or ref.startswith("latest~"):
            back = int(ref.partition("~")[2] or 0) if ref.partition("~")[2].isdigit() or ref == "latest" else -1
            if back < 0 or back >= len(infos):
                raise SnapshotError(f"snapshot {ref}: there are {len(infos)} snapshots")
            return infos[-1 - back].id
        if ref.isdigit() and any(i.id == int(ref) for i in infos):
            return int(ref)
        labelled = [i for i in infos if i.label == ref]
        if labelled:
            return labelled[-1].id
        raise SnapshotError(f"no snapshot {ref!r} (an id or label from `dbvitals snapshot list`, or latest, latest~1)")

    def load(self, snapshot_id: int) -> Snapshot:
        with self._connect() as db:
            row = db.execute("SELECT id, taken_at, label, source FROM snapshots WHERE id = ?", (snapshot_id,)).fetchone()
            if row is None:
                raise SnapshotError(f"no snapshot {snapshot_id}")
            rows = _Rows(self.path, snapshot_id)
            targets = [rows.parse("targets", t, _status) for (t,) in
                       db.execute("SELECT status FROM targets WHERE snapshot_id = ? ORDER BY name", (snapshot_id,))]
            findings = [rows.parse("findings", f, Finding.from_dict) for (f,) in
                        db.execute("SELECT finding FROM findings WHERE snapshot_id = ?", (snapshot_id,))]
            errors = [rows.parse("errors", e, _error) for (e,) in
                      db.execute("SELECT error FROM errors WHERE snapshot_id = ?", (snapshot_id,))]
            figures: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
            for target, kind, name, metrics in db.execute(
                "SELECT target, kind, name, metrics FROM figures WHERE snapshot_id = ?", (snapshot_id,)
            ):
                figures.setdefault(target, {})[(kind, name)] = rows.parse("figures", metrics, _object)
            activity = {t: rows.parse("activity", s, _object) for t, s in
                        db.execute("SELECT target, sample FROM activity WHERE snapshot_id = ?", (snapshot_id,))}
        id_, taken_at, label, source = row
        info = SnapshotInfo(id_, taken_at, label, source, targets=len(targets), findings=len(findings))
        return Snapshot(info, targets, findings, errors, figures, activity)

    def finding_history(self, finding_id: str, *, last: int = 60) -> builtins.list[tuple[str, Finding]]:
        """(taken_at, finding) of one finding in each of the newest `last` snapshots that hold it,
        oldest first: each lookup is by the findings table's key, so a long recording costs
        `last` index reads."""
        with self._connect() as db:
            rows = db.execute(
                """SELECT s.id, s.taken_at, f.finding
                   FROM (SELECT id, taken_at FROM snapshots ORDER BY id DESC LIMIT ?) s
                   JOIN findings f ON f.snapshot_id = s.id AND f.id = ?
                   ORDER BY s.id""",
                (last, finding_id),
            ).fetchall()
        return [(taken_at, _Rows(self.path, id_).parse("findings", text, Finding.from_dict))
                for id_, taken_at, text in rows]

    def load_all(self, ids: Sequence[int]) -> builtins.list[Snapshot]:  # list: the method above
        return [self.load(i) for i in ids]


@dataclass
class _Rows:
    """Reads a snapshot's stored JSON rows; a row that is not what dbvitals wrote (a store
    changed by hand or by another program) is a SnapshotError naming the snapshot and table."""

    path: Path
    snapshot_id: int

    def parse(self, table: str, text: Any, build: Any) -> Any:
        try:
            return build(json.loads(text))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SnapshotError(f"{self.path}: snapshot {self.snapshot_id}: a row of {table} is not what dbvitals "
                                f"writes ({type(exc).__name__}: {str(exc)[:200]}); the store was changed outside "
                                "dbvitals") from None


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return value


def _error(value: Any) -> dict[str, Any]:
    CheckError(**_object(value))  # the shape Snapshot.report() builds from it
    return value


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))


def _status(data: dict[str, Any]) -> TargetStatus:
    return TargetStatus(
        name=data["name"], kind=data["kind"], state=TargetState(data["state"]),
        latency_ms=data.get("latency_ms"), server_version=data.get("server_version"), error=data.get("error"),
        environment=data.get("environment"), url=data.get("url", ""), role=data.get("role"),
    )
