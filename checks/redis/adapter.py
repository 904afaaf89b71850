"""The Redis adapter: redis-py sessions, command and batch-operation fix steps, redis-cli text.

Batch operations (checks/redis/executor.py) need the two hooks the other engines do without: an
expire step's inverse is PERSIST of exactly the keys that entry recorded, and an interrupted
expire step resumes at the SCAN cursor it recorded."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from checks.connectors import Connection
from checks.connectors.probe import tls_parameters
from checks.engines import ModuleAdapter, SideFile
from checks.model import FixStep
from checks.redis import activity as activity_reader
from checks.redis import executor
from checks.redis import figures as figures_reader
from checks.redis.executor import EXPIRE_OP, PERSIST_OP, KeysLog, keys_file_name, persist_inverse
from checks.redis.quoting import (
    SCRIPT_CLI,
    redis_cli_args,
    redis_command_line,
    redis_db,
    redis_op_text,
    redis_quote,
    shell_quote,
)
from checks.redis.target import URL_SCHEMES, RedisTarget
from checks.units import int_or_none

if TYPE_CHECKING:
    from checks.connectors import Connection


class RedisAdapter(ModuleAdapter):
    kind = "redis"
    target_model = RedisTarget
    url_schemes = URL_SCHEMES
    activity = activity_reader
    figures = figures_reader
    language = "redis"
    comment = "#"
    lexer = "bash"
    fence = "sh"
    display_name = "Redis"
    default_port = 6379
    script_interpreter = ("#!/usr/bin/env bash",)

    def _connector(self) -> Any:
        from checks.redis import connector  # imports redis-py: loaded on the first connect

        return connector

    def _fixes(self) -> Any:
        return executor

    async def list_databases(self, session: Any) -> list[str]:
        # Logical databases in use: those INFO keyspace lists (a database with keys).
        keyspace = await session.client.info("keyspace")
        return sorted((key.removeprefix("db") for key in keyspace if key.startswith("db")), key=int)

    def database_url(self, url: str, database: str) -> str:
        # redis-py reads ?db=N before the path: left in, every discovered target would read the
        # database of ?db=N. A unix:// URL, whose path is the socket, names its database only there.
        parts = urlsplit(url)
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() != "db"]
        if parts.scheme == "unix":
            return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode([*query, ("db", database)]),
                               parts.fragment))
        return urlunsplit((parts.scheme, parts.netloc, "/" + quote(database, safe=""), urlencode(query),
                           parts.fragment))

    async def refresh(self, connection: Connection) -> Connection:
        from checks.redis.connector import RedisSession  # imports redis-py: only when used

        assert connection.session is not None  # only a connection that answered is kept for reuse
        client = connection.session.client
        return Connection(status=connection.status, session=RedisSession(client, await client.info()))

    def wants_tls(self, url: str) -> bool:
        return url.startswith("rediss://") or tls_parameters(url).get("ssl") == "true"

    def socket_url(self, url: str, path: Path) -> str | None:
        parts = urlsplit(url)
        if parts.scheme != "redis":
            return None  # rediss: redis-py speaks no TLS over a Unix socket
        userinfo = parts.netloc.rpartition("@")[0]
        at = f"{userinfo}@" if userinfo else ""
        # redis-py: unix://[user:password@]/path?db=N (the logical database moves from the path to the query)
        query = parse_qsl(parts.query, keep_blank_values=True)
        database = parts.path.strip("/")
        if database and not any(k == "db" for k, _ in query):
            query.append(("db", database))
        return f"unix://{at}{quote(str(path))}" + (f"?{urlencode(query)}" if query else "")

    def greeting(self) -> tuple[bytes, int]:
        return b"PING\r\n", 0

    def judge_greeting(self, reply: bytes, request_id: int) -> Literal["speaks", "other"]:
        # PONG, or an error (NOAUTH, a refused PING): a "+OK" to PING is a port that agrees to anything.
        speaks = reply == b"+PONG\r\n" or (reply[:1] == b"-" and reply.endswith(b"\r\n"))
        return "speaks" if speaks else "other"

    async def measure_connections(self, session: Any) -> tuple[int | None, int | None]:
        info = await session.client.info("clients")
        allowed = info.get("maxclients")
        if allowed is None:
            try:
                allowed = (await session.client.config_get("maxclients")).get(b"maxclients")
            except Exception:  # CONFIG may be renamed or forbidden: the limit stays unknown
                allowed = None
        return int_or_none(info.get("connected_clients")), int_or_none(allowed)

    def expected_text(self, record: dict[str, Any]) -> str:
        return f"{record.get('parameter')} = {record.get('value', '(a secret)')}"

    def step_text(self, step: FixStep) -> str:
        if isinstance(step.command, dict):
            return redis_op_text(step.command)
        prefix = f"SELECT {int(step.database)}\n" if step.database not in (None, "") else ""
        return prefix + " ".join(redis_quote(arg) for arg in step.command)

    def step_lock(self, step: FixStep) -> str | None:
        if isinstance(step.command, dict):
            return "no lock: keys changed in bounded SCAN batches, other clients served between them"
        return "no lock: Redis runs each command on its own, other clients wait microseconds"

    def script_preamble(self, connect_url: str | None = None) -> list[str]:
        """A bash script: redis-cli has no comments, and its exit code says nothing of errors."""
        url = connect_url or "redis://127.0.0.1:6379/0"
        connect = " ".join(shell_quote(a) for a in redis_cli_args(url))
        return [
            "# A bash script: REDISCLI_AUTH=PASSWORD bash FILE (the password is never written here;",
            "# redis-cli reads it from REDISCLI_AUTH). Needs redis-cli and, for key scans, python3.",
            "set -euo pipefail",
            "# redis-cli exits 0 on an error reply: stop on one.",
            f"{SCRIPT_CLI}() {{",
            f"  local out; out=$(redis-cli {connect} \"$@\") || return",
            "  case $out in ERR*|WRONGTYPE*|NOAUTH*|WRONGPASS*|NOPERM*|READONLY*|MISCONF*|OOM*|LOADING*|BUSY*)",
            "    printf '%s\\n' \"$out\" >&2; return 1;;",
            "  esac",
            "  if [ -n \"$out\" ]; then printf '%s\\n' \"$out\"; fi",
            "}",
            f"{SCRIPT_CLI} -n {redis_db(url)} PING >/dev/null",
        ]

    def script_steps(self, steps: Sequence[FixStep]) -> list[str]:
        lines: list[str] = []
        for step in steps:
            if isinstance(step.command, dict):
                lines += redis_op_text(step.command, SCRIPT_CLI).split("\n")
            else:
                lines.append(redis_command_line(step))
        return lines

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

    # --- undo guards: checks/redis/executor.py ---------------------------------------------------

def _is_op(step: FixStep, op: str) -> bool:
    return isinstance(step.command, dict) and step.command.get("op") == op
