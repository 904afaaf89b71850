"""mongodb.redundant-index: an index whose key is a prefix of another index's key, or the same
key with every direction reversed (an index is read in either direction).

Every query the prefix index serves, the longer one serves too; the prefix index still costs
memory, disk and a write on every insert and update. Options that change what an index holds
or enforces (unique, TTL, partial filter, sparse, collation) make the shorter one a different
index; on the covering one, unique and expireAfterSeconds change nothing it can serve, so a
plain {createdAt: -1} beside a TTL {createdAt: 1} is redundant.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from checks.contract import Check, Scope
from checks.model import Finding, Fix, FixAvailability, FixSafety, FixStep, Severity
from checks.mongodb._inventory import CollectionInfo, IndexSpec, call_budget, create_indexes, drop_index, inventory, measured

# Options under which a prefix index is still a different index.
DISTINGUISHING = ("unique", "expireAfterSeconds", "partialFilterExpression", "sparse", "collation")
# Of those, the ones that leave every query the covering index can serve unchanged.
COVERING_MAY_ADD = ("unique", "expireAfterSeconds")


@dataclass(frozen=True)
class RedundantIndexFacts:
    collections: list[CollectionInfo]


def is_prefix(short: IndexSpec, long: IndexSpec) -> bool:
    """Same fields in the same order with the same, or all reversed, directions: a strict
    prefix, or the whole key reversed."""
    if len(short.key) > len(long.key) or not short.is_plain or not long.is_plain:
        return False
    head = long.key[: len(short.key)]
    same = all(a == b for a, b in zip(short.key, head))
    reversed_ = all(sf == lf and sd == -ld for (sf, sd), (lf, ld) in zip(short.key, head))
    if len(short.key) == len(long.key):
        return reversed_
    return same or reversed_


def compatible(short: IndexSpec, long: IndexSpec) -> bool:
    if short.is_id or short.unique or short.is_ttl:
        return False  # they enforce or expire something the longer index does not
    return all(short.options.get(o) == long.options.get(o) for o in DISTINGUISHING
               if not (o in COVERING_MAY_ADD and short.options.get(o) is None))


def _covers(short: IndexSpec, long: IndexSpec) -> bool:
    """Two plain reversed twins cover each other: only the later name is reported."""
    if len(short.key) == len(long.key) and compatible(long, short):
        return short.name > long.name
    return True


def redundant_pairs(info: CollectionInfo) -> list[tuple[IndexSpec, IndexSpec]]:
    """(redundant, covering): for each redundant index, the shortest index that covers it."""
    pairs = []
    for short in info.indexes:
        covering = [long for long in info.indexes
                    if long is not short and is_prefix(short, long) and compatible(short, long) and _covers(short, long)]
        if covering:
            pairs.append((short, min(covering, key=lambda i: (len(i.key), i.name))))
    return pairs


class RedundantIndex(Check):
    id = "mongodb.redundant-index"
    engine = "mongodb"
    title = "Indexes that are a prefix, or the reverse, of another index"
    severity = Severity.LOW
    fix_availability = FixAvailability.ALWAYS
    rationale = (
        "An index whose keys are the leading keys of another serves no query the longer one cannot: it takes "
        "cache memory and disk, and every insert, update and delete pays to maintain it."
    )

    async def gather(self, session: Any, scope: Scope) -> RedundantIndexFacts:
        databases = await session.databases()
        with_pairs = [info for db in databases for info in await inventory(session, db) if redundant_pairs(info)]
        budget = call_budget(scope.config)  # sizes are read only where there is something to report
        return RedundantIndexFacts(list(await asyncio.gather(*(measured(session, info, budget) for info in with_pairs))))

    def evaluate(self, facts: RedundantIndexFacts, scope: Scope) -> list[Finding]:
        findings = []
        for info in facts.collections:
            for short, long in redundant_pairs(info):
                findings.append(self._finding(scope, info, short, long))
        return findings

    def _finding(self, scope: Scope, info: CollectionInfo, short: IndexSpec, long: IndexSpec) -> Finding:
        size = info.index_sizes.get(short.name)
        relation = "is the reverse of" if len(short.key) == len(long.key) else "is a prefix of"
        unknown = f"unknown: {info.unknown}" if info.unknown else "unknown"
        db = info.database
        return self.finding(
            scope,
            object=f"{info.namespace}.{short.name}",
            title=f"Index {short.name} is redundant with {long.name}",
            message=(
                f"{info.namespace}: {short.name} {short.describe()} {relation} {long.name} {long.describe()} "
                f"(an index is read in either direction), with options that change nothing it serves: {long.name} "
                f"serves every query {short.name} does"
                + (f"; dropping it frees {size:,} bytes" if size else "") + "."
            ),
            evidence={
                "namespace": info.namespace,
                "redundant": short.create_spec(),
                "covering": long.create_spec(),
                "redundant_bytes": size if size is not None else unknown,
                "covering_bytes": info.index_sizes.get(long.name, unknown),
            },
            fix=Fix(
                summary=f"Drop {short.name} (covered by {long.name})",
                steps=(FixStep("mongodb", drop_index(info.name, short.name), f"drop {short.name}", database=db),),
                safety=FixSafety.UNSAFE,  # a query that hints the index by name fails once it is gone
                lock="dropIndexes: a brief exclusive collection lock; queries that hint this index by name fail",
                inverse=(FixStep("mongodb", create_indexes(info.name, short.create_spec()), f"rebuild {short.name}", database=db),),
                notes=(
                    "To test first, hide it (MongoDB 4.4+): "
                    f'{{"collMod": "{info.name}", "index": {{"name": "{short.name}", "hidden": true}}}}, '
                    "and unhide it the same way if a query slows down."
                ),
            ),
        )
