"""The SQLite checks: the connection, foreign keys without an index, a journal mode other than WAL.
Each reads the file (never writes) in `gather` and judges in `evaluate`."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from checks.connection import ConnectionCheck, ConnectionFacts
from checks.contract import Check, Scope
from checks.model import Finding, Fix, FixAvailability, FixSafety, FixStep, Severity
from dbvitals_sqlite.session import quote

TABLES = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
# Table-valued pragmas take the table's name as a bound parameter: a name is data, never SQL.
FOREIGN_KEYS = 'SELECT id, seq, "table", "from" FROM pragma_foreign_key_list(?) ORDER BY id, seq'
INDEXES = "SELECT name, partial FROM pragma_index_list(?)"
INDEX_COLUMNS = "SELECT name FROM pragma_index_info(?) ORDER BY seqno"


class SqliteConnection(ConnectionCheck):
    id = "sqlite.connection"
    engine = "sqlite"
    title = "The SQLite file opens and reads as a database"
    rationale = (
        "Every other check reads the file: a wrong path, a file that is not a database or one the "
        "service cannot read is the first thing to know."
    )

    async def gather_connected(self, session: Any, scope: Scope) -> ConnectionFacts:
        return ConnectionFacts(role="file", details={"path": str(session.path)})


@dataclass(frozen=True)
class ForeignKey:
    table: str
    columns: tuple[str, ...]
    references: str


@dataclass(frozen=True)
class Schema:
    foreign_keys: list[ForeignKey]
    indexes: dict[str, list[tuple[str, ...]]]  # table -> the column lists of its full (not partial) indexes


class FkWithoutIndex(Check):
    id = "sqlite.fk-missing-index"
    engine = "sqlite"
    title = "Foreign key without an index on its columns"
    severity = Severity.MEDIUM
    fix_availability = FixAvailability.ALWAYS
    rationale = (
        "Deleting or updating a parent row makes SQLite look up the child rows by the foreign key's "
        "columns (with foreign_keys on): without an index that starts with them, every such change "
        "scans the whole child table. A CREATE INDEX fixes it; DROP INDEX undoes it."
    )

    async def gather(self, session: Any, scope: Scope) -> Schema:
        foreign_keys: list[ForeignKey] = []
        indexes: dict[str, list[tuple[str, ...]]] = {}
        for (table,) in await session.fetchall(TABLES):
            groups: dict[int, list[tuple[str, str]]] = {}
            for fk_id, _, parent, column in await session.fetchall(FOREIGN_KEYS, (table,)):
                groups.setdefault(fk_id, []).append((parent, column))
            for pairs in groups.values():
                foreign_keys.append(ForeignKey(table, tuple(c for _, c in pairs), pairs[0][0]))
            indexes[table] = [
                tuple(c for (c,) in await session.fetchall(INDEX_COLUMNS, (name,)))
                for name, partial in await session.fetchall(INDEXES, (table,)) if not partial
            ]
        return Schema(foreign_keys, indexes)

    def evaluate(self, facts: Schema, scope: Scope) -> list[Finding]:
        findings = []
        for fk in facts.foreign_keys:
            width = len(fk.columns)
            if any(set(cols[:width]) == set(fk.columns) for cols in facts.indexes.get(fk.table, [])):
                continue
            name = index_name(fk.table, fk.columns)
            columns = ", ".join(quote(c) for c in fk.columns)
            obj = f"{fk.table}({', '.join(fk.columns)})"
            findings.append(self.finding(
                scope,
                object=obj,
                title=f"Foreign key {obj} → {fk.references} has no index",
                message=f"Changing a row of {fk.references} scans all of {fk.table} to check this key.",
                evidence={"table": fk.table, "columns": list(fk.columns), "references": fk.references},
                fix=Fix(
                    summary=f"create index {name} on {obj}",
                    steps=(FixStep("sqlite", f"CREATE INDEX {quote(name)} ON {quote(fk.table)} ({columns})"),),
                    inverse=(FixStep("sqlite", f"DROP INDEX {quote(name)}"),),
                    safety=FixSafety.SAFE,
                    lock="the database's write lock while the index builds (readers go on)",
                ),
            ))
        return findings


def index_name(table: str, columns: tuple[str, ...]) -> str:
    """A readable, printable index name; the hash keeps names of different keys apart when the
    printable parts alone would collide (names that differ only in punctuation)."""
    readable = re.sub(r"\W+", "_", "_".join((table, *columns))).strip("_")[:40] or "fk"
    digest = hashlib.sha256("\0".join((table, *columns)).encode()).hexdigest()[:8]
    return f"{readable}_{digest}_fk_idx"


class JournalModeNotWal(Check):
    id = "sqlite.journal-mode"
    engine = "sqlite"
    title = "Journal mode is not WAL"
    severity = Severity.LOW
    fix_availability = FixAvailability.ALWAYS
    rationale = (
        "In the rollback-journal modes a writer blocks every reader for the length of its "
        "transaction; in WAL mode readers and one writer proceed together, and commits are cheaper. "
        "The switch is persistent and changes how every client writes the file (WAL needs a local "
        "file system), so the fix is unsafe: it restores the mode it found when undone."
    )

    async def gather(self, session: Any, scope: Scope) -> str:
        return str((await session.fetchall("PRAGMA journal_mode"))[0][0]).lower()

    def evaluate(self, facts: str, scope: Scope) -> list[Finding]:
        if facts == "wal":
            return []
        return [self.finding(
            scope,
            object="journal_mode",
            title=f"Journal mode is {facts}, not WAL",
            message=f"journal_mode = {facts}: each write transaction blocks the readers until it commits.",
            evidence={"journal_mode": facts},
            fix=Fix(
                summary="switch the journal mode to WAL",
                steps=(FixStep("sqlite", "PRAGMA journal_mode=WAL"),),
                inverse=(FixStep("sqlite", f"PRAGMA journal_mode={facts.upper()}"),),
                safety=FixSafety.UNSAFE,
                lock="waits for the other connections to finish writing",
            ),
        )]


CHECKS = [SqliteConnection, FkWithoutIndex, JournalModeNotWal]
