"""redis.cluster: a cluster's slots all served and its nodes healthy; outside a cluster, keys
spread over logical databases (which a cluster does not have).

In cluster mode, read from CLUSTER INFO (state, slots assigned / ok / pfail / fail) and
CLUSTER NODES (nodes flagged fail, pfail, handshake or noaddr). Otherwise from INFO keyspace:
the databases holding keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import Field

from checks.contract import Check, CheckOptions, Scope
from checks.model import Engine, Finding, FixAvailability, Severity
from checks.redis._patterns import display_key
from checks.redis._scan import keyspace_counts
from checks.units import int_or_none

SLOTS = 16384


class ClusterOptions(CheckOptions):
    max_databases: int = Field(
        default=1, ge=1, le=16,
        description="Outside a cluster, more logical databases holding keys than this is a finding (a cluster has db 0 only).",
    )


@dataclass(frozen=True)
class ClusterNode:
    id: str
    address: str
    flags: list[str]
    slots: int


@dataclass(frozen=True)
class ClusterFacts:
    enabled: bool
    info: dict[str, str] = field(default_factory=dict)  # CLUSTER INFO
    nodes: list[ClusterNode] = field(default_factory=list)
    databases: dict[int, int] = field(default_factory=dict)  # db -> keys (INFO keyspace)


class Cluster(Check):
    id: ClassVar[str] = "redis.cluster"
    engine: ClassVar[Engine] = "redis"
    title: ClassVar[str] = "Every cluster slot is served by a healthy node; keys live where a cluster can take them"
    severity: ClassVar[Severity] = Severity.HIGH
    rationale: ClassVar[str] = (
        "A slot without a serving master fails every command on its keys (CLUSTERDOWN); a node marked fail or "
        "pfail is a failover in progress or a partition; a node stuck in handshake is a CLUSTER MEET that never "
        "completed. Outside a cluster, keys spread over logical databases cannot move to a cluster (it has db 0 "
        "only), and SELECT-based separation shares one server's CPU and memory anyway."
    )
    fix_availability: ClassVar[FixAvailability] = FixAvailability.NEVER
    Options = ClusterOptions

    async def gather(self, session: Any, scope: Scope) -> ClusterFacts:
        client = session.client
        if str(session.info.get("redis_mode", "")) != "cluster":
            return ClusterFacts(enabled=False,
                                databases={db: keys for db, (keys, _) in keyspace_counts(await client.info("keyspace")).items()})
        raw_info = display_key(await client.execute_command("CLUSTER", "INFO"))
        info = dict(line.split(":", 1) for line in raw_info.splitlines() if ":" in line)
        raw_nodes = await client.execute_command("CLUSTER", "NODES")
        return ClusterFacts(enabled=True, info={k.strip(): v.strip() for k, v in info.items()}, nodes=parse_nodes(raw_nodes))

    def evaluate(self, facts: ClusterFacts, scope: Scope) -> list[Finding]:
        options: ClusterOptions = scope.options
        if not facts.enabled:
            used = {db: keys for db, keys in sorted(facts.databases.items()) if keys > 0}
            if len(used) <= options.max_databases:
                return []
            return [self.finding(
                scope,
                object="databases",
                title=f"Keys in {len(used)} logical databases",
                message=(
                    f"Keys live in {len(used)} logical databases (" + ", ".join(f"db {db}: {keys:,}" for db, keys in used.items())
                    + "). Redis Cluster has db 0 only, so this data cannot move to a cluster as it is; and the databases "
                    "share one server's CPU, memory and eviction. Separate them by key prefix or by server instead."
                ),
                evidence={"databases": used, "max_databases": options.max_databases},
                severity=Severity.LOW,
                key="databases",
            )]
        findings = []
        info = facts.info
        assigned, ok = int_or_none(info.get("cluster_slots_assigned")), int_or_none(info.get("cluster_slots_ok"))
        state = info.get("cluster_state")
        evidence = {key: info.get(key) for key in ("cluster_state", "cluster_slots_assigned", "cluster_slots_ok",
                                                  "cluster_slots_pfail", "cluster_slots_fail", "cluster_known_nodes",
                                                  "cluster_size")}
        if state != "ok" or (assigned is not None and assigned < SLOTS) or (ok is not None and ok < SLOTS):
            missing = SLOTS - (assigned or 0)
            findings.append(self.finding(
                scope,
                object="slots",
                title="Cluster slots not all served" if state == "ok" else f"Cluster state {state}",
                message=(
                    f"cluster_state is {state}; {assigned or 0:,} of {SLOTS:,} slots are assigned and {ok or 0:,} served by a healthy "
                    "master" + (f": commands on keys of the {missing:,} unassigned slots fail with CLUSTERDOWN." if missing
                                else ".") + (" With cluster-require-full-coverage yes (the default), the whole cluster "
                                             "refuses commands while any slot is uncovered." if state != "ok" else "")
                ),
                evidence=evidence,
                severity=Severity.CRITICAL,
                key="slots",
            ))
        for flag, severity, meaning in (
            ("fail", Severity.HIGH, "marked failed by a majority of masters: its slots fail over to a replica, or are down"),
            ("pfail", Severity.MEDIUM, "unreachable from this node (possibly failing): a partition or a node going down"),
            ("handshake", Severity.MEDIUM, "still in handshake: a CLUSTER MEET that never completed (wrong address or "
                                           "bus port blocked)"),
            ("noaddr", Severity.MEDIUM, "known without an address"),
        ):
            nodes = [n for n in facts.nodes if flag in n.flags]
            if not nodes:
                continue
            findings.append(self.finding(
                scope,
                object=f"nodes:{flag}",
                title=f"{len(nodes)} cluster node{'s' if len(nodes) > 1 else ''} flagged {flag}",
                message=", ".join(f"{n.address or n.id[:8]}" for n in nodes) + f": {meaning}.",
                evidence={"nodes": [{"id": n.id, "address": n.address, "flags": n.flags, "slots": n.slots} for n in nodes],
                          **evidence},
                severity=severity,
                key=flag,
            ))
        return findings


def parse_nodes(raw: Any) -> list[ClusterNode]:
    """CLUSTER NODES, raw text or as redis-py parses it ({"host:port@bus": {...}})."""
    nodes = []
    if isinstance(raw, dict):
        for address, node in raw.items():
            flags = [f for f in str(node.get("flags", "")).split(",") if f]
            slots = sum(_slot_count(str(s)) for s in node.get("slots", []) or [])
            nodes.append(ClusterNode(str(node.get("node_id", "")), address.split("@")[0], flags, slots))
        return nodes
    for line in display_key(raw).splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        flags = [f for f in fields[2].split(",") if f]
        slots = sum(_slot_count(s) for s in fields[8:] if not s.startswith("["))
        nodes.append(ClusterNode(fields[0], fields[1].split("@")[0].split(",")[0].lstrip(":"), flags, slots))
    return nodes


def _slot_count(text: str | list[Any]) -> int:
    if isinstance(text, list):
        return len(text)
    low, _, high = str(text).partition("-")
    try:
        return int(high or low) - int(low) + 1
    except ValueError:
        return 0

