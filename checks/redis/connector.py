"""Redis sessions for checks: socket timeouts on connect and on every command."""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import redis.asyncio as aioredis

from checks.budget import FreeSlots, server_key
from checks.config import TargetBase
from checks.connectors import Connection, ProtocolMismatch, connected, diagnosed
from checks.connectors.probe import shown
from checks.own_sessions import Recorder


class RedisSession:
    def __init__(self, client: aioredis.Redis, info: dict[str, Any]) -> None:
        self.client = client
        self.info = info
        self.db = client.connection_pool.connection_kwargs.get("db", 0)
        recorder = own_connections(client)
        self.server = recorder.server if recorder else ""

    async def close(self) -> None:
        await close_client(self.client)


async def _record_own(recorder: Recorder, connection: Any) -> None:
    """Runs as each connection of a client of ours opens: the usual handshake, then CLIENT ID,
    recorded as ours. A client name proves nothing: any client may call itself dbvitals."""
    await connection.on_connect()
    await connection.send_command("CLIENT", "ID")
    recorder.opened(int(await connection.read_response()))


def own_connections(client: aioredis.Redis) -> Recorder | None:
    hook = client.connection_pool.connection_kwargs.get("redis_connect_func")
    if isinstance(hook, partial) and hook.func is _record_own:
        recorder: Recorder = hook.args[0]
        return recorder
    return None


async def close_client(client: aioredis.Redis) -> None:
    """Close, and stop counting its connections as ours."""
    await client.aclose()
    recorder = own_connections(client)
    if recorder is not None:
        recorder.release()


def make_client(target: TargetBase, **overrides: Any) -> aioredis.Redis:
    """One connection, which concurrent callers wait for in turn (a blocking pool of one): the
    checks of a target share one server session, as the server budget counts it."""
    kwargs: dict[str, Any] = {
        "socket_timeout": target.timeout,
        "socket_connect_timeout": target.timeout,
        "client_name": "dbvitals",
        "max_connections": 1,
        "timeout": None,  # waiting for the connection is bounded by each check's own timeout
        "redis_connect_func": partial(_record_own, Recorder(server_key(target))),
    }
    if target.password is not None:
        kwargs["password"] = target.password.get_secret_value()
    kwargs.update(overrides)
    pool = aioredis.BlockingConnectionPool.from_url(target.connect_url, **kwargs)
    return aioredis.Redis.from_pool(pool)


async def free_slots(session: RedisSession) -> FreeSlots:
    """maxclients (INFO clients since Redis 7, else CONFIG GET) against connected_clients."""
    info = await session.client.info("clients")
    usable = info.get("maxclients")
    source = "maxclients and connected_clients in INFO clients"
    if usable is None:
        try:
            reply = await session.client.config_get("maxclients")
            usable = reply.get("maxclients")
            source = "CONFIG GET maxclients; connected_clients in INFO clients"
        except aioredis.ResponseError:  # managed services refuse CONFIG: the limit stays unknown
            source = "connected_clients in INFO clients; maxclients not readable (CONFIG refused)"
    return FreeSlots(
        usable=None if usable is None else int(usable),
        in_use=int(info["connected_clients"]) if "connected_clients" in info else None,
        source=source,
    )


async def connect(name: str, target: TargetBase) -> Connection:
    try:
        client = make_client(target)
    except Exception as exc:
        return await diagnosed(name, target, exc)
    try:
        await _round_trip(client)  # opens the connection (and authenticates)
        started = time.perf_counter()
        await _round_trip(client)
        latency_ms = (time.perf_counter() - started) * 1000
        info = await client.info()
        if not isinstance(info, dict) or "redis_version" not in info:
            raise ProtocolMismatch(f"the server does not speak the Redis protocol (it answered INFO with {_shown(info)})")
    except Exception as exc:
        await close_client(client)
        return await diagnosed(name, target, exc)
    return connected(name, target, RedisSession(client, info), latency_ms=latency_ms,
                     server_version=str(info.get("redis_version")),
                     role={"master": "primary", "slave": "replica"}.get(str(info.get("role")), info.get("role")))


def _shown(reply: object) -> str:
    return repr(shown(reply if isinstance(reply, bytes) else str(reply).encode()))


async def _round_trip(client: aioredis.Redis) -> None:
    try:
        # redis-py reads the reply as PONG or not: a port that says +OK to everything is no Redis.
        if await client.ping() is not True:
            raise ProtocolMismatch("the server does not speak the Redis protocol (it answered PING with something "
                                   "other than PONG)")
    except aioredis.ResponseError as exc:
        # After a failed background save with stop-writes-on-bgsave-error, Redis refuses PING
        # (MISCONF) but still answers reads: the server is up, and redis.persistence says why.
        if "MISCONF" not in str(exc):
            raise
        await client.echo("dbvitals")
