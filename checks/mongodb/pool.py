"""mongodb.pool: serverStatus.connections against use, the URL's pool, timeout, retry, write
concern and read preference options, and the application's pool budget. Every finding says
which client settings came from the URL, which from the config (app_pool) and which are the
driver's defaults, assumed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from checks.contract import Scope
from checks.model import Finding, Severity
from checks.pool import Capacity, PoolCheck, UrlSetting, parse_number

DRIVER_MAX_POOL_SIZE = 100
# Only the connections section is needed; the rest of serverStatus is skipped to keep it cheap.
SERVER_STATUS = {"serverStatus": 1, "repl": 0, "metrics": 0, "locks": 0, "wiredTiger": 0, "tcmalloc": 0,
                 "opLatencies": 0, "transactions": 0}


@dataclass(frozen=True)
class MongoPoolFacts:
    connections: dict[str, int] | None  # serverStatus.connections; None when it could not be read
    uptime_s: float | None = None
    error: str | None = None  # why serverStatus could not be read
    url_options: dict[str, str] = field(default_factory=dict)  # lower-cased keys


class MongoPool(PoolCheck):
    id = "mongodb.pool"
    engine = "mongodb"
    title = "MongoDB connections, the URL's pool options and the application's pool fit the server"
    rationale = (
        "mongod accepts a bounded number of connections (maxIncomingConnections and the file-descriptor "
        "limit); past it new connections are refused. Each driver process opens up to maxPoolSize (100 by "
        "default) connections, so instances × pool size must fit. Without waitQueueTimeoutMS or timeoutMS a "
        "caller waits forever for a pooled connection, and without socketTimeoutMS or timeoutMS an operation "
        "waits forever on a server that stopped answering; serverSelectionTimeoutMS (30 s) and "
        "connectTimeoutMS (20 s) defaults make every request hang that long during a failover."
    )

    async def gather(self, session: Any, scope: Scope) -> MongoPoolFacts:
        from checks.mongodb.connector import client_options  # imports pymongo: only when used

        options = client_options(scope.config.url)
        try:
            status = await session.client.admin.command(SERVER_STATUS)
        except Exception as exc:  # needs clusterMonitor; without it capacity is unknown, not fine
            return MongoPoolFacts(connections=None, error=f"{type(exc).__name__}: {str(exc)[:200]}",
                                  url_options=options)
        connections = {k: int(v) for k, v in (status.get("connections") or {}).items()
                       if isinstance(v, (int, float)) and not isinstance(v, bool)}
        return MongoPoolFacts(connections=connections, uptime_s=status.get("uptime"), url_options=options)

    def evaluate(self, facts: MongoPoolFacts, scope: Scope) -> list[Finding]:
        findings: list[Finding] = []
        capacity = self.capacity(facts)
        if capacity.usable is None:
            findings.append(self.capacity_unknown(facts, scope))
        findings += self.capacity_findings(scope, capacity, object="connections",
                                           setting="net.maxIncomingConnections (and the open-files limit)")
        findings += self.rejected_findings(facts, scope)
        findings += self.url_findings(scope, url_settings(facts.url_options, scope))
        findings += self.write_read_findings(scope, facts.url_options)
        per_instance, source = pool_size(facts.url_options, scope)
        findings += self.budget_findings(
            scope, per_instance=per_instance, per_instance_source=source, usable=capacity.usable,
            server_evidence={"connections": facts.connections}, setting="net.maxIncomingConnections",
        )
        origins = client_settings(facts.url_options, scope)
        for finding in findings:
            finding.evidence["client_settings"] = origins
        return findings

    def write_read_findings(self, scope: Scope, options: dict[str, str]) -> list[Finding]:
        """Retries, write concern and read preference the URL sets against the work it carries."""
        if not scope.options.check_url:
            return []
        found = []
        uses_transactions = bool(getattr(scope.config, "uses_transactions", False))
        for name, value, severity, why in unsafe_settings(options, uses_transactions):
            found.append(self.finding(
                scope,
                object=f"url:{name}",
                title=f"URL sets {name}={value}",
                message=f"The URL sets {name}={value}: {why}",
                evidence={"parameter": name, "current": value, "url": scope.status.url},
                severity=severity,
                key=name,
            ))
        return found

    @staticmethod
    def capacity(facts: MongoPoolFacts) -> Capacity:
        connections = facts.connections or {}
        current = connections.get("current", 0)
        available = connections.get("available")
        # dbvitals holds connections of its own, so a server that reports none available while
        # answering us does not report the figure (SecantusDB); it is unknown, not exhausted.
        usable = None if facts.connections is None or available is None or available == 0 else current + available
        evidence: dict[str, Any] = {"connections": connections}
        if facts.uptime_s is not None and connections.get("totalCreated") is not None and facts.uptime_s > 0:
            evidence["created_per_s_since_start"] = round(connections["totalCreated"] / facts.uptime_s, 2)
        return Capacity(usable=usable, in_use=current, evidence=evidence)

    def capacity_unknown(self, facts: MongoPoolFacts, scope: Scope) -> Finding:
        if facts.connections is None:
            reason = f"serverStatus could not be read ({facts.error}); it needs the clusterMonitor role"
        else:
            reason = ("serverStatus reports no available connections while dbvitals itself is connected, so the "
                      "server does not report the figure")
        budget = " The application's pool budget cannot be judged either." if scope.config.app_pool else ""
        return self.unknown_finding(
            scope,
            object="connections",
            title="Connection capacity unknown",
            message=f"How many more connections this server accepts is unknown: {reason}.{budget}",
            evidence={"connections": facts.connections, "error": facts.error},
        )

    def rejected_findings(self, facts: MongoPoolFacts, scope: Scope) -> list[Finding]:
        rejected = (facts.connections or {}).get("rejected", 0)
        if rejected <= 0:
            return []
        since = f" in {facts.uptime_s / 3600:.1f} h since it started" if facts.uptime_s else " since it started"
        return [
            self.finding(
                scope,
                object="connections",
                title="Server has refused connections",
                message=f"The server refused {rejected} incoming connection{'s' if rejected != 1 else ''}{since}: "
                "it was at its connection limit, and clients saw errors. Size the pools to fit "
                "(see the pool budget) or raise net.maxIncomingConnections.",
                evidence={"connections": facts.connections, "uptime_s": facts.uptime_s},
                severity=Severity.MEDIUM,
                key="rejected",
            )
        ]


def pool_size(options: dict[str, str], scope: Scope) -> tuple[int | None, str]:
    """The pool size of one application process, and where it comes from."""
    app_pool = scope.config.app_pool
    if app_pool is not None and app_pool.max_size is not None:
        return app_pool.max_size, "app_pool.max_size"
    configured = parse_number(options.get("maxpoolsize"))
    if configured is not None:
        # maxPoolSize=0 means no limit: the budget has no bound to add up (its URL finding says so).
        return (int(configured) or None), "URL maxPoolSize"
    return DRIVER_MAX_POOL_SIZE, "driver default maxPoolSize"


# Client settings judged, with the driver's default when the URL leaves them out (pymongo 4).
DRIVER_DEFAULTS = {
    "maxPoolSize": "100", "retryWrites": "true", "retryReads": "true", "w": "majority (server default since 5.0)",
    "readPreference": "primary", "timeoutMS": "none", "waitQueueTimeoutMS": "none (wait forever)",
    "socketTimeoutMS": "none (wait forever)", "serverSelectionTimeoutMS": "30000", "connectTimeoutMS": "20000",
}


def client_settings(options: dict[str, str], scope: Scope) -> dict[str, str]:
    """Each judged client setting with where its value comes from: the URL, the config's
    app_pool, or the driver's default (assumed: the application may set it in code)."""
    origins = {}
    for name, default in DRIVER_DEFAULTS.items():
        value = options.get(name.lower())
        if name == "maxPoolSize" and scope.config.app_pool is not None and scope.config.app_pool.max_size is not None:
            origins[name] = f"{scope.config.app_pool.max_size} (from the config: app_pool.max_size)"
        elif value is not None:
            origins[name] = f"{_text(value)} (from the URL)"
        else:
            origins[name] = f"{default} (driver default, assumed)"
    return origins


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):  # readPreferenceTags and the like
        return ",".join(f"{k}:{v}" for k, v in value.items())
    return str(value)


def unsafe_settings(options: dict[str, str], uses_transactions: bool) -> list[tuple[str, str, Severity, str]]:
    """(parameter, value, severity, why) for the URL's retry, write concern and read preference
    values that lose writes, surface failovers as errors, or break primary-only work."""
    found = []
    if _text(options.get("retrywrites", "true")) == "false":
        found.append(("retryWrites", "false", Severity.MEDIUM,
                      "a write interrupted by a failover or a network blip fails instead of being retried once, so "
                      "every election surfaces as errors in the application. Remove it (the default is true)."))
    if _text(options.get("retryreads", "true")) == "false":
        found.append(("retryReads", "false", Severity.LOW,
                      "a read interrupted by a failover fails instead of being retried once. Remove it (the default "
                      "is true)."))
    w = _text(options.get("w", "")) if options.get("w") is not None else None
    if w == "0":
        found.append(("w", "0", Severity.HIGH,
                      "writes are not acknowledged: errors (a duplicate key, a full disk, a lost primary) are never "
                      "seen and the data is silently lost. Use w=majority."))
    elif w == "1":
        found.append(("w", "1", Severity.LOW,
                      "a write acknowledged by the primary alone is rolled back if the primary fails before a "
                      "secondary copied it. Use w=majority (the default since MongoDB 5.0) unless losing such a write "
                      "is acceptable."))
    preference = _text(options.get("readpreference", "primary"))
    if preference != "primary":
        if uses_transactions:
            found.append(("readPreference", preference, Severity.MEDIUM,
                          "the config says the application uses transactions, and a transaction's reads must use "
                          "readPreference primary: it fails otherwise. Set readPreference per operation where stale "
                          "reads are acceptable, and keep the client's at primary."))
        else:
            found.append(("readPreference", preference, Severity.LOW,
                          "reads may go to a secondary and return data older than the last write (read-your-writes "
                          "breaks). Keep primary for work that reads what it just wrote, or set the preference per "
                          "operation."))
    return found


def _unbounded(options: dict[str, str], name: str) -> bool:
    value = parse_number(options.get(name))
    return value is None or value <= 0


def url_settings(options: dict[str, str], scope: Scope) -> list[UrlSetting]:
    """pymongo options the URL leaves at defaults that let a caller wait too long or forever."""
    settings = []
    # timeoutMS (client-side operation timeout) bounds server selection, connection checkout,
    # connecting and every socket read: with it the separate timeouts are covered.
    csot = not _unbounded(options, "timeoutms")
    max_pool = parse_number(options.get("maxpoolsize"))
    app_pool = scope.config.app_pool
    suggested_pool = str(app_pool.max_size) if app_pool and app_pool.max_size else "20"
    if max_pool is None and not (app_pool is not None and app_pool.max_size is not None):
        # With app_pool.max_size the pool is sized in the application's code, not the URL.
        settings.append(UrlSetting(
            "maxPoolSize", None, f"pymongo opens up to {DRIVER_MAX_POOL_SIZE} connections per client",
            suggested_pool,
            "Every process may open that many, and instances × 100 easily exceeds what the server accepts; "
            "a pool sized for the process's real concurrency fails fast instead.",
            Severity.LOW,
        ))
    elif max_pool == 0:
        settings.append(UrlSetting(
            "maxPoolSize", options.get("maxpoolsize"), "0 means no limit on connections per client",
            suggested_pool,
            "An unbounded pool turns a slow server into a connection storm that exhausts it.",
            Severity.MEDIUM,
        ))
    if csot:
        return settings
    if _unbounded(options, "waitqueuetimeoutms"):
        settings.append(UrlSetting(
            "waitQueueTimeoutMS", options.get("waitqueuetimeoutms"),
            "unset: a caller waits forever for a pooled connection",
            "5000",
            "When every pooled connection is busy, requests queue without limit and the service hangs instead "
            "of failing; timeoutMS (pymongo 4.2+) bounds this wait as well.",
            Severity.MEDIUM,
        ))
    if _unbounded(options, "sockettimeoutms"):
        settings.append(UrlSetting(
            "socketTimeoutMS", options.get("sockettimeoutms"),
            "unset: an operation waits forever on a server that stopped answering",
            "30000",
            "A half-open connection (a failed node, a dropped NAT entry) blocks its caller indefinitely; "
            "timeoutMS (pymongo 4.2+) bounds whole operations and is the better fix.",
            Severity.MEDIUM,
        ))
    if parse_number(options.get("serverselectiontimeoutms")) is None:
        settings.append(UrlSetting(
            "serverSelectionTimeoutMS", None, "30000 ms",
            "5000",
            "While there is no primary (an election, an outage) every request waits 30 s before failing, and "
            "the callers' own timeouts and thread pools run out first.",
            Severity.LOW,
        ))
    if parse_number(options.get("connecttimeoutms")) is None:
        settings.append(UrlSetting(
            "connectTimeoutMS", None, "20000 ms",
            "5000",
            "A server that does not answer holds each new connection for 20 s, long after a request should "
            "have failed over or failed.",
            Severity.LOW,
        ))
    return settings
