"""The MongoDB adapter: pymongo sessions, command-document fix steps, mongosh scripts."""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

from checks.connectors import Connection
from checks.connectors.probe import tls_parameters
from checks.engines import ModuleAdapter
from checks.fixes.execution import DEFAULT_STATEMENT_TIMEOUT_S
from checks.model import FixStep
from checks.mongodb import activity as activity_reader
from checks.mongodb import executor
from checks.mongodb import figures as figures_reader
from checks.mongodb.quoting import js_database, js_value
from checks.mongodb.target import URL_SCHEMES, MongoTarget
from checks.units import int_or_none

if TYPE_CHECKING:
    from checks.connectors import Connection


class MongoAdapter(ModuleAdapter):
    kind = "mongodb"
    target_model = MongoTarget
    url_schemes = URL_SCHEMES
    activity = activity_reader
    figures = figures_reader
    language = "mongodb"
    comment = "//"
    lexer = "javascript"
    fence = "js"
    display_name = "MongoDB"
    default_port = 27017
    greeting_header = 16  # the wire protocol's message header

    def _connector(self) -> Any:
        from checks.mongodb import connector  # imports pymongo: loaded on the first connect

        return connector

    def _fixes(self) -> Any:
        return executor

    async def list_databases(self, session: Any) -> list[str]:
        names = await session.client.list_database_names()
        return sorted(n for n in names if n not in {"admin", "local", "config"})

    async def refresh(self, connection: Connection) -> Connection:
        from checks.mongodb.connector import MongoSession  # imports pymongo: only when used

        old = connection.session
        assert old is not None  # only a connection that answered is kept for reuse
        hello = await old.client.admin.command("hello")
        return Connection(status=connection.status, session=MongoSession(old.client, old.default_database, dict(hello)))

    def wants_tls(self, url: str) -> bool:
        params = tls_parameters(url)
        return params.get("tls") == "true" or params.get("ssl") == "true"

    def socket_url(self, url: str, path: Path) -> str | None:
        parts = urlsplit(url)
        params = {k.lower(): v.lower() for k, v in parse_qsl(parts.query, keep_blank_values=True)}
        keys = {k for k in params if k.startswith(("tls", "ssl"))}
        if keys and not (keys <= {"tls", "ssl"} and all(params[k] == "false" for k in keys)):
            return None  # TLS asked for: pymongo would check the certificate against the socket path
        userinfo = parts.netloc.rpartition("@")[0]
        at = f"{userinfo}@" if userinfo else ""
        # pymongo: a host that is a percent-encoded path ending in .sock
        return urlunsplit((parts.scheme, at + quote(str(path), safe=""), parts.path, parts.query, parts.fragment))

    def greeting(self) -> tuple[bytes, int]:
        import bson

        request_id = int.from_bytes(os.urandom(3), "little") + 1
        body = struct.pack("<i", 0) + b"\x00" + bson.encode({"hello": 1, "$db": "admin"})
        return struct.pack("<iiii", 16 + len(body), request_id, 0, 2013) + body, request_id  # OP_MSG

    def judge_greeting(self, reply: bytes, request_id: int) -> Literal["speaks", "other"]:
        if len(reply) >= 16:
            length, _, response_to, op_code = struct.unpack("<iiii", reply[:16])
            if op_code in (1, 2013) and response_to == request_id and 16 <= length <= 48_000_000:
                return "speaks"
        return "other"

    async def measure_connections(self, session: Any) -> tuple[int | None, int | None]:
        status = await session.client.admin.command("serverStatus")
        connections = status.get("connections", {})
        current, available = int_or_none(connections.get("current")), int_or_none(connections.get("available"))
        # Some servers report available = 0 without meaning it: then the limit is unknown.
        return current, (current + available) if current is not None and available else None

    def expected_text(self, record: dict[str, Any]) -> str:
        key = ", ".join(f"{k}: {v}" for k, v in record.get("key", []))
        return f"index {record.get('name')} on {record.get('database')}.{record.get('collection')}: {{{key}}}"

    def step_text(self, step: FixStep) -> str:
        # ASCII-only JSON: no raw line break (or U+2028) from a name can end a line of JavaScript.
        return f"db.getSiblingDB({js_database(step.database)}).runCommand({js_value(step.command)});"

    def step_lock(self, step: FixStep) -> str | None:
        command = next(iter(step.command), None) if isinstance(step.command, dict) else None
        return _COMMAND_LOCKS.get(command) if isinstance(command, str) else None

    def script_preamble(self, connect_url: str | None = None) -> list[str]:
        return [
            "// Run with mongosh against the target: mongosh \"$MONGODB_URI\" FILE",
            "// Each command carries maxTimeMS; a failed command stops the script (runCommand itself",
            "// does not throw, so each step's result goes through must()).",
            "function must(result) {",
            "  printjson(result);",
            "  if (!result.ok) { throw new Error(`command failed: ${result.errmsg}`); }",
            "}",
        ]

    def script_steps(self, steps: Sequence[FixStep]) -> list[str]:
        statement_ms = int(DEFAULT_STATEMENT_TIMEOUT_S * 1000)
        lines = []
        for step in steps:
            if isinstance(step.command, dict):
                step = replace(step, command={**step.command, "maxTimeMS": step.command.get("maxTimeMS", statement_ms)})
            lines.append(f"must({self.step_text(step).removesuffix(';')});")
        return lines

    # --- undo guards: checks/mongodb/executor.py ---------------------------------------------------

# Command -> its locking (MongoDB manual: "Index Builds on Populated Collections", dropIndexes, collMod).
_COMMAND_LOCKS = {
    "createIndexes": "exclusive lock on the collection only at the start and end of the build; reads and writes go on",
    "dropIndexes": "exclusive lock on the collection, briefly: its reads and writes wait",
    "collMod": "exclusive lock on the collection, briefly: its reads and writes wait",
}
