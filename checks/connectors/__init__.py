"""Opening sessions to targets. Drivers are imported here lazily, never at module import,
so that `dbvitals --help` and the catalog stay fast."""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from dataclasses import dataclass
from typing import Any

from checks.config import TargetBase
from checks.connectors.probe import probe, shown
from checks.engines import adapter_for
from checks.model import TargetState, TargetStatus
from checks.secrets import mask_text


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
        return await asyncio.wait_for(adapter_for(target.kind).connect(name, target), target.connect_deadline)
    except TimeoutError as exc:
        return failed(name, target, exc)


def failed(name: str, target: TargetBase, exc: BaseException, *, state_detail: tuple[TargetState, str] | None = None
           ) -> Connection:
    state, detail = state_detail or classify(exc)
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
    if state in {TargetState.TIMEOUT, TargetState.ERROR, TargetState.TLS_ERROR}:
        adapter = adapter_for(target.kind)
        verdict, reply = await probe(adapter, target.connect_url, min(target.timeout, 1.0))
        engine = adapter.display_name
        if verdict == "other":
            state = TargetState.PROTOCOL_ERROR
            detail = f"the server does not speak the {engine} protocol (it answered '{shown(reply)}'); {detail}"
        elif verdict == "speaks" and adapter.wants_tls(target.connect_url):
            state = TargetState.TLS_ERROR
            detail = f"the URL asks for TLS but the server answers plain {engine}; {detail}"
    return failed(name, target, exc, state_detail=(state, detail))


_PROTOCOL_WORDS = ("protocol error", "invalid response", "unexpected message")
_AUTH_WORDS = ("authentication failed", "password authentication", "wrongpass", "noauth", "invalid password",
               "invalid username-password", "auth failed", "role \"", "not authorized", "authorization")
_TLS_WORDS = ("ssl", "tls", "certificate", "handshake")
_HOST_WORDS = ("name or service not known", "nodename nor servname", "temporary failure in name resolution",
               "getaddrinfo failed", "no address associated", "name resolution", "errno -2", "errno -3", "errno -5")
_REFUSED_WORDS = ("connection refused", "errno 111", "error 111", "actively refused", "connect call failed")
_TIMEOUT_WORDS = ("timed out", "timeout", "time out")


def classify(exc: BaseException) -> tuple[TargetState, str]:
    """Map any driver's connect failure to one of a few states an on-call engineer can act on."""
    detail = _describe(exc)
    for cause in _chain(exc):
        if isinstance(cause, socket.gaierror):
            return TargetState.UNKNOWN_HOST, detail
        if isinstance(cause, ssl.SSLError):
            return TargetState.TLS_ERROR, detail
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
                         (_AUTH_WORDS, TargetState.AUTH_FAILED),
                         (_REFUSED_WORDS, TargetState.REFUSED), (_TLS_WORDS, TargetState.TLS_ERROR),
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
