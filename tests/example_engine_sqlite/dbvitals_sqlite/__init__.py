"""SQLite as a dbvitals engine: the target model (`kind = "sqlite"`, `path = "..."`) and the
adapter registered under the `dbvitals.engines` entry point. The session and the fix executor
are in `session` and `executor`, the checks in `checks`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from checks.budget import FreeSlots
from checks.config import TargetBase
from checks.connectors import Connection
from checks.engines import EngineAdapter
from checks.fixes.execution import Execution, UndoCheck
from checks.model import FixStep
from dbvitals_sqlite import activity as activity_reader
from dbvitals_sqlite import executor, session
from dbvitals_sqlite import figures as figures_reader

SCHEME = "sqlite:"


class SqliteTarget(TargetBase):
    """A database file. Its `url` is derived from `path` (the core shows and masks a URL)."""

    kind: Literal["sqlite"]
    path: Path = Field(description="The database file; checks open it read-only, fixes read-write.")
    url: str = Field(default="", description="Set from path: give path, not url.")

    @model_validator(mode="before")
    @classmethod
    def _url_from_path(cls, data: Any) -> Any:
        if isinstance(data, dict) and "path" in data:
            if data.get("url"):
                raise ValueError("a SQLite target names its file with path, not url")
            data = {**data, "url": f"{SCHEME}{Path(str(data['path'])).expanduser()}"}
        return data


class SqliteAdapter(EngineAdapter):
    kind = "sqlite"
    target_model = SqliteTarget
    url_schemes = (SCHEME,)
    language = "sqlite"
    comment = "--"
    lexer = "sql"
    fence = "sql"
    activity = activity_reader
    figures = figures_reader
    display_name = "SQLite"
    default_port = None

    async def connect(self, name: str, target: TargetBase) -> Connection:
        return await session.connect(name, target)

    async def list_databases(self, session: Any) -> list[str]:
        return []  # one file is one database

    async def refresh(self, connection: Connection) -> Connection:
        fresh = session.SqliteSession(connection.session.path)
        await fresh.fetchall("SELECT 1")
        await connection.session.close()
        return Connection(status=connection.status, session=fresh)

    def wants_tls(self, url: str) -> bool:
        return False

    def server_key(self, target: TargetBase) -> str:
        return f"{SCHEME}{Path(target.path).resolve()}"  # type: ignore[attr-defined]

    async def measure_connections(self, session: Any) -> tuple[int | None, int | None]:
        return None, None

    async def free_slots(self, session: Any) -> FreeSlots:
        return FreeSlots(None, None, "a database file: no connection limit")

    async def execute(self, run: Execution, steps: Sequence[FixStep]) -> None:
        await executor.execute(run, steps)

    def step_text(self, step: FixStep) -> str:
        return f"{step.command};"

    def step_lock(self, step: FixStep) -> str | None:
        if re.match(r"\s*PRAGMA\s+journal_mode", str(step.command), re.IGNORECASE):
            return "waits for the other connections to finish writing; changes how every client writes the file"
        return "the database's write lock for the statement (readers go on)"

    def script_preamble(self, connect_url: str | None = None) -> list[str]:
        return ["-- run with: sqlite3 DATABASE_FILE < this-script.sql", ".bail on"]

    def expected_text(self, record: dict[str, Any]) -> str:
        return executor.expected_text(record)

    async def record_state(self, run: Execution, steps: Sequence[FixStep]) -> list[dict[str, Any]]:
        return await executor.record_state(run, steps)

    def inspects(self, steps: Sequence[FixStep]) -> bool:
        return executor.inspects(steps)

    async def guard_undo(self, target: TargetBase, entry: Any, inverse: Sequence[FixStep]) -> UndoCheck:
        return await executor.guard_undo(target, entry, inverse)


ENGINE = SqliteAdapter()
