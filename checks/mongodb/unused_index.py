"""mongodb.unused-index: indexes no operation has used since the counters started.

`$indexStats` counts accesses per node, from the node's last restart (or the index's creation):
an index unused on the primary may serve every query on a secondary. So the counters are
merged across every replica-set member that can be reached, and an index is reported only when
it is unused on all of them over a long enough window.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import Field

from checks.config import Duration, duration
from checks.contract import Check, CheckOptions, Scope
from checks.model import Finding, Fix, FixAvailability, FixSafety, FixStep, Severity
from checks.mongodb._inventory import (
    OWN_COMMENT,
    CollectionInfo,
    IndexSpec,
    call_budget,
    create_indexes,
    drop_index,
    index_stats_rows,
    inventory,
    limited,
    measured,
)


class UnusedIndexOptions(CheckOptions):
    min_age: Duration = Field(
        default=duration("7d"), description="How long the counters must have been running (on every member) before zero means unused."
    )


@dataclass(frozen=True)
class Usage:
    host: str
    ops: int
    since: dt.datetime | None  # None: the server keeps no counter (SecantusDB)


@dataclass
class UnusedIndexFacts:
    now: dt.datetime
    collections: list[CollectionInfo]
    usage: dict[tuple[str, str, str], list[Usage]] = field(default_factory=dict)  # (db, collection, index)
    members_reached: list[str] = field(default_factory=list)
    members_unreached: dict[str, str] = field(default_factory=dict)  # host -> why


def member_url(url: str, host: str) -> str | None:
    """The URL with `host` as its only host and directConnection=true; None for an SRV URL,
    whose members' options live in DNS."""
    parts = urlsplit(url)
    if parts.scheme != "mongodb":
        return None
    userinfo = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    query = [(k, v) for k, v in parse_qsl(parts.query) if k.lower() not in ("replicaset", "directconnection")]
    query.append(("directConnection", "true"))
    return urlunsplit((parts.scheme, userinfo + host, parts.path, urlencode(query), ""))


def _has_unused(info: CollectionInfo, facts: UnusedIndexFacts) -> bool:
    """An index counted on every member with no operation: the only case evaluate reports."""
    for index in info.indexes:
        usages = facts.usage.get((info.database, info.name, index.name), [])
        if candidate(index) and usages and all(u.since is not None for u in usages) and not sum(u.ops for u in usages):
            return True
    return False


async def _same(info: CollectionInfo) -> CollectionInfo:
    return info


def candidate(index: IndexSpec) -> bool:
    """Indexes whose value is not in serving reads: _id, unique (a constraint), TTL (expiry),
    and hidden ones (already taken out of use on purpose)."""
    return not (index.is_id or index.unique or index.is_ttl or index.options.get("hidden"))


class UnusedIndex(Check):
    id = "mongodb.unused-index"
    engine = "mongodb"
    title = "Indexes no query has used"
    severity = Severity.LOW
    fix_availability = FixAvailability.SOMETIMES  # never on the "usage unknown" note
    rationale = (
        "An index no query uses still costs memory in the cache, disk, and work on every insert, update and "
        "delete. $indexStats counts accesses per node since its restart, so the counters of every member are "
        "merged and a minimum observation window is required."
    )
    Options = UnusedIndexOptions

    async def gather(self, session: Any, scope: Scope) -> UnusedIndexFacts:
        databases = await session.databases()
        collections = [info for db in databases for info in await inventory(session, db)]
        facts = UnusedIndexFacts(now=dt.datetime.now(dt.timezone.utc), collections=collections)
        hello = session.hello
        me = str(hello.get("me") or "")
        others = [h for h in [*hello.get("hosts", []), *hello.get("passives", [])] if h != me] if hello.get("setName") else []
        await self._collect(session, session.client, collections, facts, me or "connected node")
        for host in others:
            url = member_url(scope.config.connect_url, host)
            if url is None:
                facts.members_unreached[host] = "an SRV URL: members are not addressed one by one"
                continue
            from checks.mongodb.connector import close_client, make_client  # imports pymongo: only when used

            client = make_client(scope.config.model_copy(update={"url": url}))
            try:
                await self._collect(session, client, collections, facts, host)
            except Exception as exc:  # a member down: its counters are unknown, and said so
                facts.members_unreached[host] = f"{type(exc).__name__}: {str(exc)[:160]}"
            finally:
                await close_client(client)
        budget = call_budget(scope.config)  # sizes only for the collections with an index to report
        facts.collections = list(await asyncio.gather(
            *(measured(session, info, budget) if _has_unused(info, facts) else _same(info) for info in collections)
        ))
        return facts

    async def _collect(
        self, session: Any, client: Any, collections: list[CollectionInfo], facts: UnusedIndexFacts, label: str
    ) -> None:
        async def rows_of(info: CollectionInfo) -> list[dict[str, Any]]:
            if client is session.client:  # the connected node's rows came with the inventory
                return await index_stats_rows(session, info.database, info.name) or []

            async def run() -> list[dict[str, Any]]:
                cursor = await client[info.database][info.name].aggregate([{"$indexStats": {}}], comment=OWN_COMMENT)
                return await cursor.to_list(None)

            return await limited(session, run())

        def record(info: CollectionInfo, rows: list[dict[str, Any]]) -> None:
            for row in rows:
                accesses = row.get("accesses") or {}
                since = accesses.get("since")
                if isinstance(since, dt.datetime) and since.tzinfo is None:
                    since = since.replace(tzinfo=dt.timezone.utc)
                facts.usage.setdefault((info.database, info.name, str(row.get("name"))), []).append(
                    Usage(str(row.get("host") or label), int(accesses.get("ops") or 0), since if isinstance(since, dt.datetime) else None)
                )

        if collections:
            first = await rows_of(collections[0])
            record(collections[0], first)
            # A node that keeps no counters (no "since") keeps none for any collection: asking
            # each one would only repeat the unknown.
            if first and all(not (r.get("accesses") or {}).get("since") for r in first):
                facts.members_reached.append(label)
                return
            for info, rows in zip(collections[1:], await asyncio.gather(*(rows_of(i) for i in collections[1:]))):
                record(info, rows)
        facts.members_reached.append(label)

    def evaluate(self, facts: UnusedIndexFacts, scope: Scope) -> list[Finding]:
        options: UnusedIndexOptions = scope.options
        candidates = [(info, index) for info in facts.collections for index in info.indexes if candidate(index)]
        if not candidates:
            return []
        counted = [u for usages in facts.usage.values() for u in usages if u.since is not None]
        if not counted:
            return [self._unknown(scope, facts, len(candidates))]
        findings = []
        for info, index in candidates:
            usages = facts.usage.get((info.database, info.name, index.name), [])
            if not usages or any(u.since is None for u in usages) or sum(u.ops for u in usages) > 0:
                continue
            newest_start = max(u.since for u in usages if u.since is not None)
            window = facts.now - newest_start
            if window < options.min_age:
                continue
            findings.append(self._finding(scope, facts, info, index, usages, window))
        return findings

    def _unknown(self, scope: Scope, facts: UnusedIndexFacts, candidates: int) -> Finding:
        return self.finding(
            scope,
            object=scope.status.url,
            title="Index usage unknown: the server keeps no $indexStats counters",
            message=(
                f"$indexStats reports no counting window (accesses.since is empty) for any of the {candidates} indexes "
                "that could be unused: this server does not count index use, so whether they are used is unknown. "
                "No index is reported as unused."
            ),
            evidence={
                "index_usage": "unknown",
                "indexes_considered": candidates,
                "members_reached": facts.members_reached,
                "reason": "accesses.since is null on every index (ops stay 0)",
            },
            severity=Severity.INFO,
            key="unknown",
        )

    def _finding(
        self, scope: Scope, facts: UnusedIndexFacts, info: CollectionInfo, index: IndexSpec,
        usages: list[Usage], window: dt.timedelta,
    ) -> Finding:
        days = window.total_seconds() / 86400
        size = info.index_sizes.get(index.name)
        unknown = f"unknown: {info.unknown}" if info.unknown else "unknown"
        unreached = facts.members_unreached
        message = (
            f"{info.namespace}: {index.name} {index.describe()} has served no operation in {days:,.1f} days "
            f"on {len(usages)} member{'s' if len(usages) != 1 else ''}"
            + (f"; it takes {size:,} bytes" if size else "") + "."
        )
        if unreached:
            message += f" Not reached: {', '.join(unreached)}; their counters are unknown."
        return self.finding(
            scope,
            object=f"{info.namespace}.{index.name}",
            title=f"Index {index.name} is unused",
            message=message,
            evidence={
                "namespace": info.namespace,
                "index": index.create_spec(),
                "bytes": size if size is not None else unknown,
                "usage": [
                    {"host": u.host, "ops": u.ops, "since": u.since.isoformat() if u.since else None} for u in usages
                ],
                "observed_days": round(days, 1),
                "members_not_reached": unreached,
            },
            severity=Severity.INFO if unreached else Severity.LOW,
            fix=Fix(
                summary=f"Drop the unused index {index.name}",
                steps=(FixStep("mongodb", drop_index(info.name, index.name), f"drop {index.name}", database=info.database),),
                safety=FixSafety.UNSAFE,
                lock="dropIndexes: a brief exclusive collection lock; a rare (monthly) query may have needed it",
                inverse=(FixStep("mongodb", create_indexes(info.name, index.create_spec()), f"rebuild {index.name}", database=info.database),),
                notes=(
                    "Counters reset on restart and miss rare jobs (month-end reports). To test first, hide it: "
                    f'{{"collMod": "{info.name}", "index": {{"name": "{index.name}", "hidden": true}}}}.'
                ),
            ),
        )
