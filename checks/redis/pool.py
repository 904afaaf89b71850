"""redis.pool: maxclients against use, idle clients a `timeout 0` server never closes,
tcp-keepalive, the URL's socket timeouts and the application's pool budget."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pydantic import Field

from checks.config import Duration, duration
from checks.contract import Scope
from checks.model import Finding, Fix, FixSafety, FixStep, Severity
from checks.pool import Capacity, PoolCheck, PoolOptions, UrlSetting, parse_number
from checks.units import int_or_none

CONFIG_SETTINGS = ("maxclients", "timeout", "tcp-keepalive")
# Clients the `timeout` setting never closes: pub/sub, replicas, masters, MONITOR, blocked.
EXEMPT_FLAGS = set("PSMOb")


@dataclass(frozen=True)
class RedisClientInfo:
    """One CLIENT LIST row, reduced to what judging idleness needs."""

    addr: str
    name: str
    age_s: int
    idle_s: int
    flags: str
    cmd: str
    user: str = ""

    @property
    def never_used(self) -> bool:
        """Connected and never sent a command: Redis shows cmd=NULL, and its idle time is its whole life.
        (Idle equal to age alone also matches a client that sent one command in its first second.)"""
        return self.cmd == "NULL" or (not self.cmd and self.idle_s >= self.age_s)

    @property
    def exempt_from_timeout(self) -> bool:
        return bool(EXEMPT_FLAGS & set(self.flags))


@dataclass(frozen=True)
class RedisPoolFacts:
    connected_clients: int
    blocked_clients: int
    maxclients: int | None
    rejected_connections: int | None
    uptime_s: int | None
    config: dict[str, str] = field(default_factory=dict)  # the CONFIG_SETTINGS that could be read
    config_error: str | None = None  # CONFIG GET renamed away or denied (managed Redis)
    clients: list[RedisClientInfo] | None = None  # None: CLIENT LIST denied
    clients_error: str | None = None
    url_params: dict[str, str] = field(default_factory=dict)


class RedisPoolOptions(PoolOptions):
    idle_client_age: Duration = Field(default=duration("1h"), description="A client idle this long counts as long-idle.")
    idle_clients_warn: int = Field(
        default=50, ge=1,
        description="With `timeout 0`, this many long-idle clients is a finding (leaked or oversized pools).",
    )
    recommended_timeout: Duration = Field(default=duration("300s"), description="The `timeout` the fix proposes.")
    recommended_tcp_keepalive: Duration = Field(default=duration("300s"), description="The `tcp-keepalive` the fix proposes.")


def url_params(url: str) -> dict[str, str]:
    return {k.lower(): v for k, v in parse_qsl(urlsplit(url).query, keep_blank_values=True)}


class RedisPool(PoolCheck):
    id = "redis.pool"
    engine = "redis"
    title = "Redis clients, idle connections, keepalive and the application's pool fit the server"
    rationale = (
        "Redis refuses clients past maxclients. With `timeout 0` (the default) it never closes an idle "
        "client, so leaked or oversized pools pile up until the limit; with `tcp-keepalive 0` it never notices "
        "a peer that vanished. A client URL without socket timeouts waits forever on a server that stopped "
        "answering. Pools of every instance added up must fit maxclients."
    )
    Options = RedisPoolOptions

    async def gather(self, session: Any, scope: Scope) -> RedisPoolFacts:
        client = session.client
        info = await client.info()
        config: dict[str, str] = {}
        config_error = None
        for name in CONFIG_SETTINGS:
            try:
                config.update({str(k): str(v) for k, v in (await client.config_get(name)).items()})
            except Exception as exc:  # CONFIG renamed or denied by ACL: those settings are unknown
                config_error = f"{type(exc).__name__}: {str(exc)[:200]}"
                break
        clients = None
        clients_error = None
        try:
            clients = [
                RedisClientInfo(
                    addr=str(c.get("addr", "")), name=str(c.get("name", "")), age_s=int(c.get("age", 0)),
                    idle_s=int(c.get("idle", 0)), flags=str(c.get("flags", "")), cmd=str(c.get("cmd", "")),
                    user=str(c.get("user", "")),
                )
                for c in await client.client_list()
            ]
        except Exception as exc:
            clients_error = f"{type(exc).__name__}: {str(exc)[:200]}"
        maxclients = info.get("maxclients", config.get("maxclients"))
        return RedisPoolFacts(
            connected_clients=int(info.get("connected_clients", 0)),
            blocked_clients=int(info.get("blocked_clients", 0)),
            maxclients=None if maxclients is None else int(maxclients),
            rejected_connections=int_or_none(info.get("rejected_connections")),
            uptime_s=int_or_none(info.get("uptime_in_seconds")),
            config=config,
            config_error=config_error,
            clients=clients,
            clients_error=clients_error,
            url_params=url_params(scope.config.url),
        )

    def evaluate(self, facts: RedisPoolFacts, scope: Scope) -> list[Finding]:
        capacity = self.capacity(facts)
        findings: list[Finding] = []
        if facts.config_error or facts.clients_error:
            findings.append(self.settings_unknown(facts, scope))
        findings += self.capacity_findings(scope, capacity, object="maxclients", setting="maxclients")
        findings += self.rejected_findings(facts, scope)
        findings += self.idle_client_findings(facts, scope)
        findings += self.keepalive_findings(facts, scope)
        findings += self.url_findings(scope, url_settings(facts.url_params))
        per_instance, source = pool_size(facts.url_params, scope)
        findings += self.budget_findings(
            scope, per_instance=per_instance, per_instance_source=source, usable=facts.maxclients,
            server_evidence={"maxclients": facts.maxclients, "connected_clients": facts.connected_clients},
            setting="maxclients",
        )
        return findings

    @staticmethod
    def capacity(facts: RedisPoolFacts) -> Capacity:
        evidence: dict[str, Any] = {
            "maxclients": facts.maxclients,
            "connected_clients": facts.connected_clients,
            "blocked_clients": facts.blocked_clients,
        }
        if facts.clients is not None:
            evidence["by_name"] = [
                {"name": name or "(none)", "clients": count}
                for name, count in Counter(c.name for c in facts.clients).most_common(10)
            ]
            evidence["by_host"] = [
                {"host": host, "clients": count}
                for host, count in Counter(c.addr.rpartition(":")[0] for c in facts.clients).most_common(10)
            ]
        return Capacity(usable=facts.maxclients, in_use=facts.connected_clients, evidence=evidence)

    def settings_unknown(self, facts: RedisPoolFacts, scope: Scope) -> Finding:
        missing = [name for name in CONFIG_SETTINGS if name not in facts.config] if facts.config_error else []
        parts = []
        if facts.config_error:
            parts.append(f"CONFIG GET failed ({facts.config_error}), so {', '.join(missing)} are unknown")
        if facts.clients_error:
            parts.append(f"CLIENT LIST failed ({facts.clients_error}), so idle clients cannot be counted")
        return self.unknown_finding(
            scope,
            object="config",
            title="Server settings partly unknown",
            message="; ".join(parts) + ". Managed Redis services often rename or deny these commands; the "
            "related findings are skipped rather than guessed.",
            evidence={"unknown_settings": missing, "config_error": facts.config_error,
                      "client_list_error": facts.clients_error},
        )

    def rejected_findings(self, facts: RedisPoolFacts, scope: Scope) -> list[Finding]:
        if not facts.rejected_connections:
            return []
        since = f" in {facts.uptime_s / 3600:.1f} h since it started" if facts.uptime_s else " since it started"
        return [
            self.finding(
                scope,
                object="maxclients",
                title="Server has refused connections",
                message=f"Redis refused {facts.rejected_connections} connection"
                f"{'s' if facts.rejected_connections != 1 else ''}{since} because maxclients "
                f"({facts.maxclients}) was reached: clients saw errors. Size the pools to fit (see the pool "
                "budget), close idle clients, or raise maxclients.",
                evidence={"rejected_connections": facts.rejected_connections, "uptime_s": facts.uptime_s,
                          "maxclients": facts.maxclients, "connected_clients": facts.connected_clients},
                severity=Severity.MEDIUM,
                key="rejected",
            )
        ]

    def idle_client_findings(self, facts: RedisPoolFacts, scope: Scope) -> list[Finding]:
        options: RedisPoolOptions = scope.options
        timeout = facts.config.get("timeout")
        if facts.clients is None or (timeout is not None and int(timeout) != 0):
            return []
        age = options.idle_client_age.total_seconds()
        idle = [c for c in facts.clients if c.idle_s >= age and not c.exempt_from_timeout]
        if len(idle) < options.idle_clients_warn:
            return []
        never_used = [c for c in idle if c.never_used]
        idle.sort(key=lambda c: -c.idle_s)
        recommended = int(options.recommended_timeout.total_seconds())
        fix = None
        if timeout is not None:
            fix = Fix(
                summary=f"Let Redis close clients idle for more than {recommended} s",
                steps=(FixStep("redis", ["CONFIG", "SET", "timeout", str(recommended)]),),
                safety=FixSafety.UNSAFE,
                lock=f"Disconnects every client idle longer than {recommended} s (pub/sub, replica and blocked "
                "clients are exempt); pools that do not check connections before use see one error each.",
                inverse=(FixStep("redis", ["CONFIG", "SET", "timeout", timeout]),),
                notes="CONFIG SET lasts until the next restart: write it to redis.conf too (or CONFIG REWRITE). "
                "Find the clients that leak connections first (see by_name and by_host).",
            )
        timeout_text = "`timeout 0`" if timeout is not None else "an unknown `timeout` (CONFIG GET failed)"
        return [
            self.finding(
                scope,
                object="timeout",
                title="Many long-idle clients and no idle timeout",
                message=f"{len(idle)} clients have been idle for {age:g} s or more"
                + (f" ({len(never_used)} never sent a command)" if never_used else "")
                + f", and with {timeout_text} Redis never closes them: leaked or oversized pools keep "
                f"connections and their buffers until maxclients ({facts.maxclients}) refuses new ones.",
                evidence={
                    "timeout": timeout,
                    "idle_clients": len(idle),
                    "never_used": len(never_used),
                    "idle_threshold_s": age,
                    "threshold": options.idle_clients_warn,
                    "connected_clients": facts.connected_clients,
                    "maxclients": facts.maxclients,
                    "by_name": [{"name": n or "(none)", "clients": k}
                                for n, k in Counter(c.name for c in idle).most_common(10)],
                    "by_host": [{"host": h, "clients": k}
                                for h, k in Counter(c.addr.rpartition(":")[0] for c in idle).most_common(10)],
                    "oldest": [{"addr": c.addr, "name": c.name, "user": c.user, "idle_s": c.idle_s, "age_s": c.age_s,
                                "last_command": c.cmd} for c in idle[:10]],
                },
                severity=Severity.MEDIUM,
                fix=fix,
                key="idle-clients",
            )
        ]

    def keepalive_findings(self, facts: RedisPoolFacts, scope: Scope) -> list[Finding]:
        keepalive = facts.config.get("tcp-keepalive")
        if keepalive is None or int(keepalive) != 0:
            return []
        options: RedisPoolOptions = scope.options
        recommended = int(options.recommended_tcp_keepalive.total_seconds())
        return [
            self.finding(
                scope,
                object="tcp-keepalive",
                title="TCP keepalive is off",
                message="With `tcp-keepalive 0` Redis never probes its clients: connections of clients that "
                "crashed or lost their network stay open (and count against maxclients) until something is "
                f"written to them. Redis' default since 3.2.1 is {recommended} s.",
                evidence={"tcp-keepalive": keepalive, "recommended": recommended},
                severity=Severity.LOW,
                fix=Fix(
                    summary=f"Probe idle connections every {recommended} s",
                    steps=(FixStep("redis", ["CONFIG", "SET", "tcp-keepalive", str(recommended)]),),
                    safety=FixSafety.SAFE,
                    lock="None: applies to connections accepted from now on.",
                    inverse=(FixStep("redis", ["CONFIG", "SET", "tcp-keepalive", keepalive]),),
                    notes="CONFIG SET lasts until the next restart: write it to redis.conf too (or CONFIG REWRITE).",
                ),
                key="tcp-keepalive",
            )
        ]


def pool_size(params: dict[str, str], scope: Scope) -> tuple[int | None, str]:
    app_pool = scope.config.app_pool
    if app_pool is not None and app_pool.max_size is not None:
        return app_pool.max_size, "app_pool.max_size"
    configured = parse_number(params.get("max_connections"))
    if configured:
        return int(configured), "URL max_connections"
    return None, ""


def url_settings(params: dict[str, str]) -> list[UrlSetting]:
    """redis-py URL parameters left unset, so a command or a connect may wait forever."""
    settings = []
    for parameter, recommended, what in (
        ("socket_timeout", "5", "a command on a connection whose server stopped answering"),
        ("socket_connect_timeout", "2", "opening a connection to a server that does not answer"),
    ):
        value = parse_number(params.get(parameter))
        if value is None or value <= 0:
            settings.append(UrlSetting(
                parameter, params.get(parameter),
                f"no timeout in redis-py 5 and many other clients (recent redis-py waits 5 s): {what} waits "
                "until the operating system gives up",
                recommended,
                "A cache that hangs is worse than one that fails: the caller cannot fall back to the database "
                "while it waits.",
                Severity.MEDIUM,
            ))
    return settings

