"""redis.security: a password-less default user on a network-facing bind, protected mode off,
and dangerous commands (FLUSHALL, FLUSHDB, CONFIG, KEYS, DEBUG) neither renamed nor denied.

A Redis bound to loopback only is reachable from its own host alone: no password there is a
development set-up, not a finding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

from checks.contract import Check, Scope
from checks.model import Engine, Finding, Fix, FixAvailability, FixSafety, FixStep, Severity
from checks.redis._config import config_values
from checks.redis._scan import Commands

# The command, and the arguments ACL DRYRUN checks it with (CONFIG SET is the dangerous half).
DANGEROUS: dict[str, tuple[str, ...]] = {
    "FLUSHALL": ("FLUSHALL",),
    "FLUSHDB": ("FLUSHDB",),
    "CONFIG": ("CONFIG", "SET", "maxmemory", "0"),
    "KEYS": ("KEYS", "*"),
    "DEBUG": ("DEBUG", "SLEEP", "0"),
}
WHY_DANGEROUS = {
    "FLUSHALL": "erases every database",
    "FLUSHDB": "erases a database",
    "CONFIG": "rewrites settings (CONFIG SET dir/dbfilename has been used to write files on the host)",
    "KEYS": "blocks the server while it walks the whole keyspace",
    "DEBUG": "can crash, sleep or reload the server",
}
LOOPBACK = ("127.", "::1", "localhost")
PERSIST_ACL = "ACL changes apply at once but live in memory: ACL SAVE (with an aclfile) or CONFIG REWRITE keeps them."


def is_loopback(address: str) -> bool:
    address = address.lstrip("-").strip("[]")
    return address.startswith(LOOPBACK)


@dataclass(frozen=True)
class UserFacts:
    name: str
    enabled: bool
    nopass: bool
    rules: str  # e.g. "+@all ~* &*"
    allowed: dict[str, bool | None] = field(default_factory=dict)  # None: could not tell


@dataclass(frozen=True)
class SecurityFacts:
    bind: str | None  # None: CONFIG not readable
    port: int | None
    protected_mode: str | None
    enable_debug_command: str | None
    url_host: str
    acl: bool  # ACL users readable (Redis 6+ and permitted)
    users: tuple[UserFacts, ...] = ()
    renamed: dict[str, bool] = field(default_factory=dict)  # command -> missing from the command table
    requirepass_set: bool | None = None  # Redis < 6 only
    unreadable: tuple[str, ...] = ()  # what could not be read, and why

    @property
    def network_facing(self) -> bool | None:
        """Whether clients on other hosts can reach the port (None: cannot tell)."""
        if self.port == 0:
            return False  # unix socket only
        if self.bind is not None:
            addresses = self.bind.split()
            return not addresses or any(not is_loopback(a) for a in addresses)
        return None if is_loopback(self.url_host) else True

    @property
    def default_user(self) -> UserFacts | None:
        return next((u for u in self.users if u.name == "default"), None)


class Security(Check):
    id: ClassVar[str] = "redis.security"
    engine: ClassVar[Engine] = "redis"
    title: ClassVar[str] = "Redis is not open to the network, and dangerous commands are fenced off"
    severity: ClassVar[Severity] = Severity.CRITICAL
    rationale: ClassVar[str] = (
        "A Redis that anyone on the network can reach without a password is read, wiped or turned into a foothold "
        "on the host (CONFIG SET dir + SAVE writes files) within hours of exposure. FLUSHALL, FLUSHDB, CONFIG, KEYS "
        "and DEBUG left to the application's user turn one bug or one leaked credential into an outage."
    )
    fix_availability: ClassVar[FixAvailability] = FixAvailability.SOMETIMES

    async def gather(self, session: Any, scope: Scope) -> SecurityFacts:
        client = session.client
        config = await config_values(client, "bind", "port", "protected-mode", "enable-debug-command")
        unreadable = [] if config["port"] is not None else ["CONFIG GET (denied): bind and protected-mode unknown"]
        url_host = urlsplit(scope.config.url).hostname or "127.0.0.1"
        async with Commands(client) as commands:
            info_replies = await commands.run([("COMMAND", "INFO", *DANGEROUS)])
            renamed = {}
            if isinstance(info_replies[0], list):
                renamed = {name: entry is None for name, entry in zip(DANGEROUS, info_replies[0])}
            users, acl = await _users(commands, unreadable)
            requirepass_set = None
            if not acl:
                requirepass = (await config_values(client, "requirepass"))["requirepass"]
                requirepass_set = None if requirepass is None else bool(requirepass)
        return SecurityFacts(
            bind=config["bind"],
            port=int(config["port"]) if config["port"] is not None else None,
            protected_mode=config["protected-mode"],
            enable_debug_command=config["enable-debug-command"],
            url_host=url_host,
            acl=acl,
            users=tuple(users),
            renamed=renamed,
            requirepass_set=requirepass_set,
            unreadable=tuple(unreadable),
        )

    def evaluate(self, facts: SecurityFacts, scope: Scope) -> list[Finding]:
        facing = facts.network_facing
        evidence: dict[str, Any] = {
            "bind": facts.bind,
            "port": facts.port,
            "protected_mode": facts.protected_mode,
            "network_facing": facing,
        }
        if facts.unreadable:
            evidence["unreadable"] = list(facts.unreadable)
        if not facing:
            return []  # loopback only (or unknown): reachable from this host alone
        findings = []
        default = facts.default_user
        nopass = (default is not None and default.enabled and default.nopass) or facts.requirepass_set is False
        if nopass:
            evidence_user = {**evidence, "default_user": _user_evidence(default) if default else {"requirepass": "unset"}}
            protected = facts.protected_mode == "yes"
            findings.append(self.finding(
                scope,
                object="default user",
                title="No password on a network-facing Redis",
                message=(
                    f"Redis listens on {facts.bind or 'every interface'} and its default user needs no password"
                    + (f" and may run {default.rules}" if default else "")
                    + (". Protected mode still refuses clients from other hosts, until someone turns it off to let the "
                       "application in." if protected else
                       ", with protected mode off: anyone who reaches the port can read, wipe or reconfigure it.")
                ),
                evidence=evidence_user,
                severity=Severity.MEDIUM if protected else Severity.CRITICAL,
                fix=Fix(
                    summary="Give the default user a password (and the application its own user)",
                    steps=(
                        FixStep(language="redis", command=["ACL", "SETUSER", "default", "on", ">CHOOSE-A-LONG-RANDOM-PASSWORD"])
                        if facts.acl else
                        FixStep(language="redis", command=["CONFIG", "SET", "requirepass", "CHOOSE-A-LONG-RANDOM-PASSWORD"]),
                    ),
                    safety=FixSafety.MANUAL,
                    lock="Every client without the password is refused from then on: update the application first.",
                    inverse=(FixStep(language="redis", command=["ACL", "SETUSER", "default", "nopass"])
                             if facts.acl else FixStep(language="redis", command=["CONFIG", "SET", "requirepass", ""]),),
                    notes="Roll the password out to the clients before setting it. " + PERSIST_ACL,
                ),
                key="nopass",
            ))
            if facts.protected_mode == "no":
                findings.append(self.finding(
                    scope,
                    object="protected-mode",
                    title="Protected mode off with no password",
                    message="protected-mode is no while the default user has no password and Redis listens beyond "
                    "loopback: nothing refuses a client from another host.",
                    evidence=evidence,
                    severity=Severity.HIGH,
                    fix=Fix(
                        summary="CONFIG SET protected-mode yes",
                        steps=(FixStep(language="redis", command=["CONFIG", "SET", "protected-mode", "yes"]),),
                        safety=FixSafety.UNSAFE,
                        lock="Clients from other hosts without a password are refused from then on.",
                        inverse=(FixStep(language="redis", command=["CONFIG", "SET", "protected-mode", "no"]),),
                        notes="CONFIG REWRITE (or redis.conf) keeps it after a restart.",
                    ),
                    key="protected-mode",
                ))
        findings += self._dangerous(scope, facts, evidence, nopass)
        return findings

    def _dangerous(self, scope: Scope, facts: SecurityFacts, evidence: dict[str, Any], nopass: bool) -> list[Finding]:
        findings = []
        # enable-debug-command (Redis 7+) fences DEBUG off for remote clients unless "yes"; a readable
        # CONFIG without it is an older server where DEBUG is open; unreadable CONFIG: cannot tell.
        debug_open = facts.enable_debug_command == "yes" or (facts.enable_debug_command is None and facts.port is not None)
        for user in facts.users:
            if not user.enabled:
                continue
            open_commands = [
                cmd for cmd, allowed in user.allowed.items()
                if allowed and not facts.renamed.get(cmd) and (cmd != "DEBUG" or debug_open)
            ]
            if not open_commands:
                continue
            deny = [f"-{cmd.lower()}" for cmd in open_commands]
            allow = [f"+{cmd.lower()}" for cmd in open_commands]
            findings.append(self.finding(
                scope,
                object=f"user {user.name}",
                title=f"Dangerous commands open to user {user.name}",
                message=(
                    f"User {user.name} may run {', '.join(open_commands)} on a network-facing Redis, and none of them "
                    "is renamed: " + "; ".join(f"{c} {WHY_DANGEROUS[c]}" for c in open_commands) + ". "
                    "Deny them to the application's user and keep them for an admin user."
                ),
                evidence={**evidence, "user": _user_evidence(user), "open_commands": open_commands,
                          "enable_debug_command": facts.enable_debug_command},
                severity=Severity.HIGH if nopass and user.name == "default" else Severity.MEDIUM,
                fix=Fix(
                    summary=f"ACL SETUSER {user.name} {' '.join(deny)}",
                    steps=(FixStep(language="redis", command=["ACL", "SETUSER", user.name, *deny]),),
                    safety=FixSafety.UNSAFE,
                    lock="No lock; clients of this user get NOPERM for these commands at once.",
                    inverse=(FixStep(language="redis", command=["ACL", "SETUSER", user.name, *allow]),),
                    notes=PERSIST_ACL + " rename-command in redis.conf is the alternative on servers without ACLs "
                    "(it needs a restart).",
                ) if facts.acl else Fix(
                    summary="rename-command the dangerous commands in redis.conf",
                    steps=tuple(FixStep(language="redis", command=["rename-command", c, ""]) for c in open_commands),
                    safety=FixSafety.MANUAL,
                    notes="Lines for redis.conf; they take effect at the next restart.",
                ),
                key=user.name,
            ))
        return findings


async def _users(commands: Commands, unreadable: list[str]) -> tuple[list[UserFacts], bool]:
    """The default user and the user dbvitals is connected as, with what each may run."""
    [whoami] = await commands.run([("ACL", "WHOAMI")])
    if isinstance(whoami, Exception):
        unreadable.append(f"ACL WHOAMI: {whoami}")
        return [], False
    names = ["default"] + ([whoami.decode()] if whoami != b"default" else [])
    users = []
    for name in names:
        [raw] = await commands.run([("ACL", "GETUSER", name)])
        if isinstance(raw, Exception) or raw is None:
            unreadable.append(f"ACL GETUSER {name}: {raw}")
            continue
        fields = raw if isinstance(raw, dict) else dict(zip(raw[::2], raw[1::2]))  # RESP3 map or RESP2 pairs
        flags = [f.decode() for f in fields.get(b"flags", [])]
        rules = " ".join(
            r.decode() if isinstance(r, bytes) else " ".join(x.decode() for x in r)
            for r in (fields.get(b"commands", b""), fields.get(b"keys", b""), fields.get(b"channels", b""))
            if r
        )
        dryruns = await commands.run([("ACL", "DRYRUN", name, *args) for args in DANGEROUS.values()])
        allowed: dict[str, bool | None] = {}
        for command, reply in zip(DANGEROUS, dryruns):
            if reply == b"OK":
                allowed[command] = True
            elif isinstance(reply, bytes):
                allowed[command] = False  # DRYRUN answers the denial as text
            else:
                allowed[command] = None  # DRYRUN unknown (Redis 6) or not permitted to us
        users.append(UserFacts(name=name, enabled="on" in flags, nopass="nopass" in flags, rules=rules, allowed=allowed))
    return users, bool(users)


def _user_evidence(user: UserFacts | None) -> dict[str, Any]:
    if user is None:
        return {}
    return {"name": user.name, "enabled": user.enabled, "nopass": user.nopass, "rules": user.rules,
            "allowed": {c: a for c, a in user.allowed.items()}}
