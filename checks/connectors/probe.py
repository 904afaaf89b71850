"""What is really listening, when a driver could not connect: one plain greeting in the
engine's protocol, on a fresh TCP connection, answered or not within a short wait.

Drivers describe a server that speaks another protocol (an HTTP or SSH port given by mistake)
as a timeout, a closed connection or a failed SSL upgrade, and a TLS client facing a plain
server as a timeout: both hang up on each other. The greeting tells them apart: a reply in
the engine's own plain protocol means the server is there but TLS is not (when the URL asks
for TLS); a reply in anything else means the port runs something else.
"""

from __future__ import annotations

import asyncio
import os
import struct
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

from checks.display import terminal_safe

Verdict = Literal["speaks", "other", "silent"]
DEFAULT_PORTS = {"postgres": 5432, "redis": 6379, "mongodb": 27017}
PROBE_TIMEOUT_S = 2.0
_SSL_REQUEST = struct.pack("!ii", 8, 80877103)  # PostgreSQL's SSLRequest: answered S or N


def address(kind: str, url: str) -> tuple[str, int] | None:
    """The first host and port of the URL (None for a Unix socket or a DNS seed list)."""
    if url.startswith(("unix:", "mongodb+srv:")):
        return None
    try:
        parts = urlsplit(url)
        hostinfo = parts.netloc.rpartition("@")[2].split(",")[0]
        first = urlsplit(f"//{hostinfo}")
        host, port = first.hostname, first.port
    except ValueError:
        return None
    if not host:
        return None
    return host, port or DEFAULT_PORTS[kind]


def wants_tls(kind: str, url: str) -> bool:
    params = {k.lower(): v.lower() for k, v in parse_qsl(urlsplit(url).query)}
    if kind == "redis":
        return url.startswith("rediss://") or params.get("ssl") == "true"
    if kind == "postgres":
        return params.get("sslmode") in {"require", "verify-ca", "verify-full"}
    return params.get("tls") == "true" or params.get("ssl") == "true"


def _greeting(kind: str) -> tuple[bytes, int]:
    if kind == "redis":
        return b"PING\r\n", 0
    if kind == "postgres":
        return _SSL_REQUEST, 0
    import bson

    request_id = int.from_bytes(os.urandom(3), "little") + 1
    body = struct.pack("<i", 0) + b"\x00" + bson.encode({"hello": 1, "$db": "admin"})
    return struct.pack("<iiii", 16 + len(body), request_id, 0, 2013) + body, request_id


def judge(kind: str, reply: bytes, request_id: int = 0) -> Verdict:
    """Whether the first bytes back are this engine's plain protocol."""
    if not reply:
        return "silent"
    if kind == "redis":
        return "speaks" if reply[:1] in (b"+", b"-") and reply.endswith(b"\r\n") else "other"
    if kind == "postgres":
        # One byte, S or N, then the server waits; or an error message (E, length) from old servers.
        speaks = reply in (b"S", b"N") or (reply[:1] == b"E" and len(reply) >= 5)
        return "speaks" if speaks else "other"
    if len(reply) >= 16:
        length, _, response_to, op_code = struct.unpack("<iiii", reply[:16])
        if op_code in (1, 2013) and response_to == request_id and 16 <= length <= 48_000_000:
            return "speaks"
    return "other"


async def probe(kind: str, url: str, timeout: float = PROBE_TIMEOUT_S) -> tuple[Verdict, bytes]:
    where = address(kind, url)
    if where is None:
        return "silent", b""
    greeting, request_id = _greeting(kind)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*where), timeout)
    except (OSError, asyncio.TimeoutError):
        return "silent", b""
    try:
        writer.write(greeting)
        await asyncio.wait_for(writer.drain(), timeout)
        reply = await asyncio.wait_for(reader.read(256), timeout)
        if kind == "mongodb" and 0 < len(reply) < 16:
            reply += await asyncio.wait_for(reader.read(256), timeout)
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
        return "silent", b""
    finally:
        writer.close()
    return judge(kind, reply, request_id), reply


def shown(reply: bytes) -> str:
    """The first bytes of a foreign reply, as text fit for a terminal."""
    return terminal_safe(reply[:40].decode("latin-1"))
