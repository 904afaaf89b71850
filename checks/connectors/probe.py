"""What is really listening, when a driver could not connect: one plain greeting in the
engine's protocol, on a fresh TCP connection, answered or not within a short wait.

Drivers describe a server that speaks another protocol (an HTTP or SSH port given by mistake)
as a timeout, a closed connection or a failed SSL upgrade, and a TLS client facing a plain
server as a timeout: both hang up on each other. The greeting tells them apart: a reply in
the engine's own plain protocol means the server is there but TLS is not (when the URL asks
for TLS); a reply in anything else means the port runs something else. Each engine's adapter
says how to greet its server and how to read the reply.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from checks.display import terminal_safe

if TYPE_CHECKING:
    from checks.engines import EngineAdapter

# "reset" and "closed": the server hung up on the greeting, with an RST or a FIN (a driver may
# report either as the other, depending on when the RST arrived).
Verdict = Literal["speaks", "other", "silent", "reset", "closed"]
PROBE_TIMEOUT_S = 2.0


def address(url: str, default_port: int | None) -> tuple[str, int] | None:
    """The first host and port of the URL (None for a Unix socket or a DNS seed list)."""
    if url.startswith("unix:") or url.partition(":")[0].endswith("+srv"):  # +srv: hosts come from DNS
        return None
    try:
        parts = urlsplit(url)
        hostinfo = parts.netloc.rpartition("@")[2].split(",")[0]
        first = urlsplit(f"//{hostinfo}")
        host, port = first.hostname, first.port
    except ValueError:
        return None
    port = port or default_port
    if not host or port is None or unquote(host).startswith("/"):  # a socket path, as asyncpg and pymongo URLs give one
        return None
    return host, port


def tls_parameters(url: str) -> dict[str, str]:
    """The URL's query parameters, lower-cased, for an adapter's wants_tls."""
    return {k.lower(): v.lower() for k, v in parse_qsl(urlsplit(url).query)}


async def probe(adapter: EngineAdapter, url: str, timeout: float = PROBE_TIMEOUT_S) -> tuple[Verdict, bytes]:
    """Greet the URL's server in the adapter's protocol and judge the first bytes back."""
    where = address(url, adapter.default_port)
    if where is None:
        return "silent", b""
    greeting, request_id = adapter.greeting()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*where), timeout)
    except ConnectionResetError:
        return "reset", b""
    except (OSError, asyncio.TimeoutError):
        return "silent", b""
    try:
        writer.write(greeting)
        await asyncio.wait_for(writer.drain(), timeout)
        reply = await asyncio.wait_for(reader.read(256), timeout)
    except (ConnectionResetError, BrokenPipeError):
        writer.close()
        return "reset", b""
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
        writer.close()
        return "silent", b""
    if not reply:
        writer.close()
        return "closed", b""
    try:
        if 0 < len(reply) < adapter.greeting_header:
            reply += await asyncio.wait_for(reader.read(256), timeout)
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
        pass  # a short reply and then nothing (+OK, a few bytes of garbage): judge what came
    finally:
        writer.close()
    return adapter.judge_greeting(reply, request_id), reply


def shown(reply: bytes) -> str:
    """The first bytes of a foreign reply, as text fit for a terminal."""
    return terminal_safe(reply[:40].decode("latin-1"))
