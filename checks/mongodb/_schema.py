"""What a bounded sample says about a collection's schema, shared by the schema checks and the
index advisor: objects used as maps (dynamic keys), and the sampled collections themselves."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from checks.mongodb._inventory import CollectionInfo, Sample, call_budget, counted, inventory, sample

MAP_MIN_KEYS = 10  # distinct keys across the sample before an object can be a map
MAP_SPREAD = 4  # distinct keys at least this many times the keys of an average document


@dataclass(frozen=True)
class DynamicKeys:
    """A top-level object whose keys are data (agency codes, user ids), not a schema."""

    field: str
    documents: int  # sampled documents holding the object
    distinct_keys: int
    mean_keys: float
    examples: tuple[str, ...]


def dynamic_objects(drawn: Sample) -> dict[str, DynamicKeys]:
    """Objects whose key set varies across documents far more than one document holds: many
    distinct keys across the sample, few in each document."""
    found: dict[str, DynamicKeys] = {}
    for name, field in drawn.fields.items():
        if field.types.get("object", 0) < 2:
            continue
        keys: dict[str, None] = {}
        per_doc = []
        for doc in drawn.drawn:
            value = doc.get(name)
            if isinstance(value, dict):
                per_doc.append(len(value))
                keys.update(dict.fromkeys(value))
        mean = sum(per_doc) / len(per_doc) if per_doc else 0
        if len(keys) >= MAP_MIN_KEYS and len(keys) >= MAP_SPREAD * max(mean, 1):
            found[name] = DynamicKeys(name, len(per_doc), len(keys), round(mean, 1), tuple(list(keys)[:5]))
    return found


async def sampled_collections(session: Any, config: Any, size: int, *,
                              scope: Any = None) -> list[tuple[CollectionInfo, Sample]]:
    """Every collection of the judged databases with its bounded sample (the memoised one the
    other checks read: no extra call when they ran), counted first so an engine that scans to
    count is never asked to sample a collection it could not count in time. With `scope`, each
    collection left unsampled (its count or sample over the call budget) is said as skipped:
    the check did not look at it, so it is partial."""
    budget = call_budget(config)
    infos = [info for db in await session.databases() for info in await inventory(session, db)]

    async def one(info: CollectionInfo) -> tuple[CollectionInfo, Sample]:
        info = await counted(session, info, budget)
        return info, await sample(session, info, size, budget)

    pairs = list(await asyncio.gather(*(one(info) for info in infos)))
    if scope is not None:
        for info, drawn in pairs:
            if drawn.unknown:
                scope.skipped(f"collection {info.namespace}", drawn.unknown)
    return pairs
