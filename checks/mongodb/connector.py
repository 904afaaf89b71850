"""MongoDB sessions for checks, on pymongo's native async client. Every operation carries a
client-side timeout (timeoutMS), which pymongo also sends to the server as maxTimeMS."""

from __future__ import annotations

import time
from typing import Any

from pymongo import AsyncMongoClient, monitoring
from pymongo.uri_parser import parse_uri

from checks.budget import FreeSlots, server_key
from checks.config import TargetBase
from checks.connectors import Connection, connected, diagnosed
from checks.mongodb.topology import topology_role
from checks.own_sessions import Recorder

SYSTEM_DATABASES = {"admin", "local", "config"}
# Pool options dbvitals sets for itself whatever the URL says; maxPoolSize is set per client.
OWN_POOL: dict[str, Any] = {"minPoolSize": 0}


def client_options(url: str) -> dict[str, Any]:
    """The URL's options as the application's driver would read them (keys lower-cased)."""
    return {k.lower(): v for k, v in parse_uri(url, validate=False, warn=True).get("options", {}).items()}


class OwnConnections(monitoring.CommandListener, monitoring.ServerHeartbeatListener):
    """Records the server's connectionId of every connection a client of ours uses: the pool's
    from each command it sends, the monitor's from each heartbeat's hello reply. Nothing else
    can say a currentOp row is ours: appName is whatever a client chooses to send."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def started(self, event: Any) -> None:
        if isinstance(event, monitoring.CommandStartedEvent):
            self.recorder.opened(event.server_connection_id)

    def succeeded(self, event: Any) -> None:
        if isinstance(event, monitoring.ServerHeartbeatSucceededEvent):
            self.recorder.opened(event.reply.document.get("connectionId"))

    def failed(self, event: Any) -> None:
        pass


def own_connections(client: AsyncMongoClient) -> Recorder | None:
    for listener in client.options.event_listeners:
        if isinstance(listener, OwnConnections):
            return listener.recorder
    return None


async def close_client(client: AsyncMongoClient) -> None:
    """Close, and stop counting its connections as ours: the server may give their ids again
    after a restart."""
    await client.close()
    recorder = own_connections(client)
    if recorder is not None:
        recorder.release()


class MongoSession:
    _databases: list[str] | None = None  # listed once, on first use

    def __init__(self, client: AsyncMongoClient, default_database: str | None, hello: dict[str, Any]) -> None:
        self.client = client
        self.default_database = default_database
        self.hello = hello
        recorder = own_connections(client)
        self.server = recorder.server if recorder else ""

    async def databases(self) -> list[str]:
        """The database the URL names, else every non-system database: listed once per session
        (a run sees a session of its own), not once per check."""
        if self.default_database:
            return [self.default_database]
        if self._databases is None:
            names = await self.client.list_database_names()
            self._databases = sorted(n for n in names if n not in SYSTEM_DATABASES)
        return list(self._databases)

    async def close(self) -> None:
        await close_client(self.client)


def make_client(target: TargetBase, **overrides: Any) -> AsyncMongoClient:
    kwargs: dict[str, Any] = {
        "serverSelectionTimeoutMS": int(target.timeout * 1000),
        "connectTimeoutMS": int(target.timeout * 1000),
        "timeoutMS": int(target.timeout * 1000),
        "appname": "dbvitals",
        # The checks of a target share one connection to the server (pymongo adds its monitor's).
        "maxPoolSize": 1,
        # Polling, not streaming: no separate round-trip-time connection, whose id no event
        # reports, and no awaitable hello standing in currentOp as if it were work.
        "serverMonitoringMode": "poll",
        "event_listeners": [OwnConnections(Recorder(server_key(target)))],
    }
    if target.password is not None:
        kwargs["password"] = target.password.get_secret_value()
    kwargs.update(overrides)
    # The URL's pool options are the application's (mongodb.pool judges them from the URL);
    # dbvitals's own pool overrides them: a URL's minPoolSize above 1 would make pymongo refuse
    # the client (minPoolSize > maxPoolSize) and keep idle connections open.
    return AsyncMongoClient(target.connect_url, **{**kwargs, **OWN_POOL})


async def connect(name: str, target: TargetBase) -> Connection:
    try:
        client = make_client(target)
    except Exception as exc:  # a malformed URL or option is a state to report, not a crash
        return await diagnosed(name, target, exc)
    try:
        await client.admin.command("ping")  # selects a server and opens a connection
        started = time.perf_counter()
        hello = await client.admin.command("hello")
        latency_ms = (time.perf_counter() - started) * 1000
        build = await client.admin.command("buildInfo")
        default_db = client._default_database_name  # the database named in the URL, if any
    except Exception as exc:
        await close_client(client)
        return await diagnosed(name, target, exc)
    return connected(name, target, MongoSession(client, default_db, dict(hello)), latency_ms=latency_ms,
                     server_version=str(build.get("version")),
                     role=topology_role(hello))


async def free_slots(session: MongoSession) -> FreeSlots:
    """serverStatus connections: current against current + available. A server that does not
    report `available` (or reports 0 while answering us, as SecantusDB does) leaves it unknown."""
    status = await session.client.admin.command({"serverStatus": 1, "repl": 0, "metrics": 0, "locks": 0})
    connections = status.get("connections") or {}
    current: Any = connections.get("current")
    available: Any = connections.get("available")
    known = isinstance(current, (int, float)) and isinstance(available, (int, float)) and available > 0
    return FreeSlots(
        usable=int(current + available) if known else None,
        in_use=int(current) if isinstance(current, (int, float)) else None,
        source="serverStatus.connections" if known else "serverStatus.connections (available not reported)",
    )
