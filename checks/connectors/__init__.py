"""Opening sessions to targets. Drivers are imported here lazily, never at module import,
so that `dbvitals --help` and the catalog stay fast."""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
import struct
from dataclasses import dataclass
from typing import Any

from checks.config import TargetBase
from checks.connectors.probe import address, probe, shown
from checks.engines import adapter_for
from checks.model import TargetState, TargetStatus
from checks.secrets import mask_text


class ProtocolMismatch(Exception):
    """A server answered a connector's first commands, but not as the engine's server would (a
    port that says +OK to everything): a protocol_error, with this short description."""


@dataclass
class Connection:
    """A connect attempt: always a status; a session only when the target answered."""

    status: TargetStatus
    session: Any | None

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()


async def connect(name: str, target: TargetBase) -> Connection:
    """A read-only session for checks, opened by the target engine's adapter, within the
    target's connect deadline whatever the driver does: a failure is a state, never a raise."""
    if target.tunnel_error is not None:  # the bastion is the problem: say so, never try around it
        return failed(name, target, ConnectionError(target.tunnel_error),
                      state_detail=(TargetState.SSH_ERROR, target.tunnel_error))
    try:
        connection = await asyncio.wait_for(adapter_for(target.kind).connect(name, target), target.connect_deadline)
    except TimeoutError as exc:
        connection = failed(name, target, exc)
    if connection.session is None and target.tunnel_error is not None:  # the tunnel dropped meanwhile
        return failed(name, target, ConnectionError(target.tunnel_error),
                      state_detail=(TargetState.SSH_ERROR, target.tunnel_error))
    return connection


def connected(name: str, target: TargetBase, session: Any, *, latency_ms: float, server_version: str,
              role: str | None) -> Connection:
    """A session that answered, with what the engine read of its server."""
    status = TargetStatus(name=name, kind=target.kind, state=TargetState.CONNECTED, latency_ms=latency_ms,
                          server_version=server_version, environment=target.environment, url=target.masked_url,
                          role=role)
    return Connection(status=status, session=session)


def failed(name: str, target: TargetBase, exc: BaseException, *, state_detail: tuple[TargetState, str] | None = None
           ) -> Connection:
    state, detail = state_detail or classify(exc)
    if state in _SOCKET_STATES and state_detail is None:
        detail = _socket_detail(state, target)
    status = TargetStatus(
        name=name,
        kind=target.kind,
        state=state,
        error=mask_text(detail, target.secret_values()),
        environment=target.environment,
        url=target.masked_url,
    )
    return Connection(status=status, session=None)


async def diagnosed(name: str, target: TargetBase, exc: BaseException) -> Connection:
    """`failed`, with what a driver cannot tell asked of the server itself: a port that speaks
    another protocol (protocol_error), a plain server behind a URL asking for TLS (tls_error)."""
    state, detail = classify(exc)
    # A driver that trips over a reply ('bytes' object has no attribute 'get') says nothing of the
    # server in its words: they are left out of the detail.
    unreadable = any(isinstance(cause, _UNREADABLE) for cause in _chain(exc))
    if state in _SOCKET_STATES:
        detail = _socket_detail(state, target)
    # A server that hangs up may have said something first (an SSH banner): asked too.
    if state in {TargetState.TIMEOUT, TargetState.ERROR, TargetState.TLS_ERROR, *_SOCKET_STATES} - {
            TargetState.REFUSED}:
        adapter = adapter_for(target.kind)
        verdict, reply = await probe(adapter, target.connect_url, min(target.timeout, 1.0))
        engine = adapter.display_name
        if verdict == "other":
            state = TargetState.PROTOCOL_ERROR
            detail = f"the server does not speak the {engine} protocol (it answered '{shown(reply)}')" + (
                "" if unreadable else f"; {detail}")
        elif verdict in {"reset", "closed"} and state in _SOCKET_STATES:
            # What the server did to a plain greeting: drivers may report an RST as an EOF.
            state = TargetState.RESET if verdict == "reset" else TargetState.CLOSED
            detail = _socket_detail(state, target)
        elif verdict == "speaks" and adapter.wants_tls(target.connect_url):
            state = TargetState.TLS_ERROR
            detail = f"the URL asks for TLS but the server answers plain {engine}; {detail}"
        elif state is TargetState.ERROR and unreadable:
            state = TargetState.PROTOCOL_ERROR
            detail = f"the server's reply is not a {engine} reply (the driver could not read it)"
    return failed(name, target, exc, state_detail=(state, detail))


# What a driver raises when a reply is not shaped as the protocol says, rather than telling so.
_UNREADABLE = (AttributeError, TypeError, KeyError, IndexError, UnicodeDecodeError, struct.error)
_SOCKET_STATES = {TargetState.REFUSED, TargetState.RESET, TargetState.CLOSED}
_SOCKET_WORDS = {
    TargetState.REFUSED: "the server refused the connection (nothing listens there)",
    TargetState.RESET: "the server accepted the connection, then reset it",
    TargetState.CLOSED: "the server accepted the connection, then closed it without answering",
}


def _socket_detail(state: TargetState, target: TargetBase) -> str:
    """What the server did, in words, and where: never a driver's errno."""
    try:
        where = address(target.connect_url, adapter_for(target.kind).default_port)
    except Exception:  # an engine without a registered adapter: say what happened, without where
        where = None
    return _SOCKET_WORDS[state] + (f" ({where[0]}:{where[1]})" if where else "")


_PROTOCOL_WORDS = ("protocol error", "invalid response", "unexpected message")
_AUTH_WORDS = ("authentication failed", "password authentication", "wrongpass", "noauth", "invalid password",
               "invalid username-password", "auth failed", "role \"", "not authorized", "authorization")
_TLS_WORDS = ("ssl", "tls", "certificate", "handshake")
_HOST_WORDS = ("name or service not known", "nodename nor servname", "temporary failure in name resolution",
               "getaddrinfo failed", "no address associated", "name resolution", "errno -2", "errno -3", "errno -5")
_REFUSED_WORDS = ("connection refused", "errno 111", "error 111", "actively refused", "connect call failed")
_RESET_WORDS = ("connection reset", "reset by peer", "errno 104", "error 104", "econnreset")
_CLOSED_WORDS = ("connection closed", "connection is closed", "closed by server", "server closed the connection", "connection_lost",
                 "connection was closed", "unexpected eof", "broken pipe", "errno 32", "error 32")
_TIMEOUT_WORDS = ("timed out", "timeout", "time out")


def classify(exc: BaseException) -> tuple[TargetState, str]:
    """Map any driver's connect failure to one of a few states an on-call engineer can act on."""
    detail = _describe(exc)
    for cause in _chain(exc):
        if isinstance(cause, socket.gaierror):
            return TargetState.UNKNOWN_HOST, detail
        if isinstance(cause, ProtocolMismatch):
            return TargetState.PROTOCOL_ERROR, detail
        if isinstance(cause, ssl.SSLError):
            return TargetState.TLS_ERROR, detail
        if isinstance(cause, ConnectionResetError) or (
            isinstance(cause, OSError) and cause.errno == errno.ECONNRESET
        ):
            return TargetState.RESET, detail
        if isinstance(cause, (BrokenPipeError, asyncio.IncompleteReadError)) or (
            isinstance(cause, OSError) and cause.errno == errno.EPIPE
        ):
            return TargetState.CLOSED, detail
        if isinstance(cause, ConnectionRefusedError) or (
            isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED
        ):
            return TargetState.REFUSED, detail
        if isinstance(cause, TimeoutError):
            return TargetState.TIMEOUT, detail or "no answer within the timeout"
        if type(cause).__name__ in {"InvalidPasswordError", "InvalidAuthorizationSpecificationError",
                                    "AuthenticationError", "AuthenticationWrongNumberOfArgsError"}:
            return TargetState.AUTH_FAILED, detail
        if getattr(cause, "code", None) == 18:  # MongoDB AuthenticationFailed
            return TargetState.AUTH_FAILED, detail
    lowered = detail.lower()
    for words, state in ((_HOST_WORDS, TargetState.UNKNOWN_HOST), (_PROTOCOL_WORDS, TargetState.PROTOCOL_ERROR),
                         (_AUTH_WORDS, TargetState.AUTH_FAILED), (_RESET_WORDS, TargetState.RESET),
                         (_CLOSED_WORDS, TargetState.CLOSED), (_REFUSED_WORDS, TargetState.REFUSED), (_TLS_WORDS, TargetState.TLS_ERROR),
                         (_TIMEOUT_WORDS, TargetState.TIMEOUT)):
        if any(word in lowered for word in words):
            return state, detail
    # pymongo's ServerSelectionTimeoutError ("No servers found yet"), NetworkTimeout and the like.
    if any("Timeout" in type(cause).__name__ for cause in _chain(exc)):
        return TargetState.TIMEOUT, detail
    return TargetState.ERROR, detail


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo = [exc]
    while todo and len(seen) < 20:
        current = todo.pop()
        if current in seen:
            continue
        seen.append(current)
        if isinstance(current, BaseExceptionGroup):
            todo.extend(current.exceptions)
        for nested in (current.__cause__, current.__context__):
            if nested is not None:
                todo.append(nested)
    return seen


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    if not text:
        text = type(exc).__name__
    # pymongo appends the whole topology description; the first line says what happened.
    text = text.split(", Timeout:")[0].split("\n")[0]
    return text[:500]
