"""The Redis adapter: redis-py sessions, command and batch-operation fix steps, redis-cli text.

Batch operations (checks/fixes/redis.py) need the two hooks the other engines do without: an
expire step's inverse is PERSIST of exactly the keys that entry recorded, and an interrupted
expire step resumes at the SCAN cursor it recorded."""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from checks.adapters import EngineAdapter, SideFile, int_or_none
from checks.fixes.redis import EXPIRE_OP, PERSIST_OP, KeysLog, keys_file_name, persist_inverse
from checks.model import Engine, FixStep

if TYPE_CHECKING:
    from checks.config import TargetBase
    from checks.connectors import Connection
    from checks.fixes.execution import Execution


class RedisAdapter(EngineAdapter):
    engine = Engine.REDIS
    language = "redis"
    comment = "#"
    lexer = "bash"
    fence = "sh"

    async def connect(self, name: str, target: TargetBase) -> Connection:
        from checks.connectors.redis import connect

        return await connect(name, target)

    async def measure_connections(self, session: Any) -> tuple[int | None, int | None]:
        info = await session.client.info("clients")
        allowed = info.get("maxclients")
        if allowed is None:
            try:
                allowed = (await session.client.config_get("maxclients")).get(b"maxclients")
            except Exception:  # CONFIG may be renamed or forbidden: the limit stays unknown
                allowed = None
        return int_or_none(info.get("connected_clients")), int_or_none(allowed)

    async def execute(self, run: Execution, steps: Sequence[FixStep]) -> None:
        from checks.fixes.redis import execute

        await execute(run, steps)

    def step_text(self, step: FixStep) -> str:
        if isinstance(step.command, dict):
            return _op_text(step.command)
        prefix = f"SELECT {step.database}\n" if step.database not in (None, "") else ""
        return prefix + " ".join(redis_quote(_arg(arg)) for arg in step.command)

    def script_preamble(self) -> list[str]:
        return [
            "# redis-cli commands: pipe the command lines to redis-cli -h HOST -p PORT (lines starting with #",
            "# are comments; the scan loops are shell, run them in a shell).",
        ]

    def concrete_inverse(self, steps: Sequence[FixStep], inverse: Sequence[FixStep], entry_id: str) -> list[FixStep]:
        """Each expire step's PERSIST pointed at the keys this entry records."""
        expires = [(i, s.command) for i, s in enumerate(steps) if _is_op(s, EXPIRE_OP)]
        if not expires:
            return list(inverse)
        concrete = [persist_inverse(op, entry_id, index) for index, op in expires]
        return concrete + [s for s in inverse if not _is_op(s, PERSIST_OP)]

    def resumable(self, steps: Sequence[FixStep]) -> bool:
        return any(_is_op(s, EXPIRE_OP) for s in steps)

    def resume_points(self, side_file: SideFile, interrupted_entry: str, steps: Sequence[FixStep]) -> dict[int, Any]:
        points = {}
        for index, step in enumerate(steps):
            if _is_op(step, EXPIRE_OP):
                point = KeysLog(side_file(keys_file_name(interrupted_entry, index))).resume_point()
                if point:
                    points[index] = point
        return points

    def has_undo_record(self, side_file: SideFile, step: FixStep) -> bool:
        command = step.command
        return isinstance(command, dict) and "keys_file" in command and side_file(command["keys_file"]).exists()


def _is_op(step: FixStep, op: str) -> bool:
    return isinstance(step.command, dict) and step.command.get("op") == op


def _arg(value: Any) -> str:
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else str(value)


def redis_quote(arg: str) -> str:
    """redis-cli's quoting: double quotes with backslash escapes when the argument needs it."""
    if arg and all(c.isprintable() and c not in ' "\'\\' for c in arg):
        return arg
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f'"{escaped}"'


def _op_text(op: dict[str, Any]) -> str:
    kind = op.get("op")
    db = op.get("db", 0)
    if kind == EXPIRE_OP:
        match, regex, ttl = op.get("match", "*"), op.get("regex", ".*"), op.get("ttl_seconds")
        return (
            f"# {EXPIRE_OP}: every key in db {db} matching {op.get('pattern') or match} (regex ^{regex}$) "
            f"that has no TTL gets EXPIRE {ttl} NX\n"
            f"redis-cli -n {db} --scan --pattern {shlex.quote(match)} | grep -E {shlex.quote('^(' + regex + ')$')} \\\n"
            f"  | while IFS= read -r key; do redis-cli -n {db} EXPIRE \"$key\" {ttl} NX >/dev/null; done"
        )
    if kind == PERSIST_OP:
        keys = op.get("keys")
        if keys is not None:
            return f"SELECT {db}\n" + "\n".join(f"PERSIST {redis_quote(k if isinstance(k, str) else k['hex'])}" for k in keys)
        return f"# {PERSIST_OP}: PERSIST the keys recorded in {op.get('keys_file', 'the journal')} (db {db})"
    return f"# unknown Redis operation: {json.dumps(op)}"
