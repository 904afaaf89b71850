"""What every engine's `<engine>.connection` check shares: an unreachable target is one
critical finding that says which failure it was; a slow answer is a low one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import Field

from checks.config import Duration, duration
from checks.contract import Check, CheckOptions, Scope
from checks.model import FixAvailability, Finding, Severity, TargetState

STATE_TITLES = {
    TargetState.REFUSED: "Connection refused",
    TargetState.RESET: "The server reset the connection",
    TargetState.CLOSED: "The server closed the connection",
    TargetState.TIMEOUT: "No answer within the timeout",
    TargetState.AUTH_FAILED: "Authentication failed",
    TargetState.TLS_ERROR: "TLS handshake failed",
    TargetState.PROTOCOL_ERROR: "Something else answers on this port",
    TargetState.UNKNOWN_HOST: "Host name does not resolve",
    TargetState.SSH_ERROR: "The SSH bastion did not let dbvitals through",
    TargetState.ERROR: "Cannot connect",
    TargetState.SKIPPED: "Not checked: the server is nearly out of connection slots",
}

STATE_ADVICE = {
    TargetState.REFUSED: "Nothing listens on that host and port: is the server running, and is the port right?",
    TargetState.RESET: "Something listens on that host and port but drops every connection at once: a server at its "
    "connection limit, a proxy or firewall rejecting this client, or a service other than the database.",
    TargetState.CLOSED: "Something listens on that host and port but hangs up without a word: a server at its "
    "connection limit, a proxy with no backend, or a service other than the database.",
    TargetState.TIMEOUT: "The server (or something in between) accepted or dropped the connection but did not "
    "answer in time: an overloaded server, a firewall dropping packets, or the wrong port.",
    TargetState.AUTH_FAILED: "The server rejected the credentials: check the user, the password "
    "(DBVITALS_TARGETS__<NAME>__PASSWORD) and that the user exists.",
    TargetState.TLS_ERROR: "Check the TLS settings in the URL against the server's certificate.",
    TargetState.PROTOCOL_ERROR: "The host and port answer in another protocol (an HTTP, SSH or other database "
    "port?): check the URL's port.",
    TargetState.UNKNOWN_HOST: "DNS does not know this host: check the spelling of the URL's host.",
    TargetState.SSH_ERROR: "The tunnel through the bastion (ssh = ...) could not be opened: check the bastion's "
    "address, that it answers, the key (ssh_key, the agent) and its host key (ssh_known_hosts); the database "
    "itself was not tried.",
    TargetState.ERROR: "The driver could not open a session.",
    TargetState.SKIPPED: "dbvitals did not connect, so as not to take one of the server's last slots.",
}


class ConnectionOptions(CheckOptions):
    latency_warn_ms: float = Field(default=250.0, description="Round trip above which the latency is a finding.")
    max_replica_lag: Duration = Field(default=duration("30s"), description="Replication lag above which a replica is a finding.")


@dataclass(frozen=True)
class ConnectionFacts:
    role: str | None = None
    replica_lag_s: float | None = None  # None: not a replica, or not readable
    details: dict[str, Any] = field(default_factory=dict)
    problems: list[tuple[str, Severity, str, dict[str, Any]]] = field(default_factory=list)


class ConnectionCheck(Check):
    """Engine subclasses implement `gather_connected`; the rest is shared."""

    severity: ClassVar[Severity] = Severity.CRITICAL
    fix_availability: ClassVar[FixAvailability] = FixAvailability.NEVER
    runs_when_unreachable: ClassVar[bool] = True
    runs_when_server_full: ClassVar[bool] = True
    Options = ConnectionOptions

    async def gather(self, session: Any, scope: Scope) -> ConnectionFacts | None:
        if not scope.status.reachable:
            return None
        return await self.gather_connected(session, scope)

    async def gather_connected(self, session: Any, scope: Scope) -> ConnectionFacts:
        raise NotImplementedError

    def evaluate(self, facts: ConnectionFacts | None, scope: Scope) -> list[Finding]:
        status = scope.status
        if facts is None:
            return [
                self.finding(
                    scope,
                    object=status.url,
                    title=STATE_TITLES.get(status.state, "Cannot connect"),
                    message=f"{status.name}: {(status.error or status.state.value).rstrip('.')}. {STATE_ADVICE[status.state]}",
                    evidence={
                        "state": status.state.value,
                        "error": status.error,
                        "url": status.url,
                        "timeout_s": scope.config.timeout,
                    },
                    key=status.state.value,
                )
            ]
        findings = []
        evidence = {
            "latency_ms": round(status.latency_ms or 0, 2),
            "server_version": status.server_version,
            "role": facts.role or status.role,
            **facts.details,
        }
        options: ConnectionOptions = scope.options
        if status.latency_ms is not None and status.latency_ms > options.latency_warn_ms:
            findings.append(
                self.finding(
                    scope,
                    object=status.url,
                    title="Slow round trip",
                    message=f"A trivial command took {status.latency_ms:.0f} ms "
                    f"(threshold {options.latency_warn_ms:.0f} ms): every query pays this.",
                    evidence={**evidence, "threshold_ms": options.latency_warn_ms},
                    severity=Severity.LOW,
                    key="latency",
                )
            )
        lag_limit = options.max_replica_lag.total_seconds()
        if facts.replica_lag_s is not None and facts.replica_lag_s > lag_limit:
            findings.append(
                self.finding(
                    scope,
                    object=status.url,
                    title="Replica is behind",
                    message=f"This replica is {facts.replica_lag_s:.0f}s behind its primary "
                    f"(threshold {lag_limit:.0f}s): reads here are stale.",
                    evidence={**evidence, "replica_lag_s": round(facts.replica_lag_s, 1), "threshold_s": lag_limit},
                    severity=Severity.HIGH,
                    key="lag",
                )
            )
        for key, severity, message, extra in facts.problems:
            findings.append(
                self.finding(
                    scope,
                    object=status.url,
                    title=message.split(":")[0],
                    message=message,
                    evidence={**evidence, **extra},
                    severity=severity,
                    key=key,
                )
            )
        return findings
