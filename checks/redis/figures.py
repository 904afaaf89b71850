"""Redis figures for snapshots: keys and expiring keys per database, memory, and per key
pattern a count and memory estimated from a bounded SCAN sample (stated as an estimate)."""

from __future__ import annotations

from typing import Any

from checks.redis._patterns import infer_pattern
from checks.snapshots import Figure
from checks.snapshots.diff import FigureKind, growth

SAMPLE_KEYS = 10_000
MEMORY_SAMPLES_PER_PATTERN = 5
MAX_PATTERNS = 200


async def gather(session: Any) -> list[Figure]:
    client = session.client
    figures: list[Figure] = []
    info = await client.info()
    figures.append(("redis.server", "memory", {"used_memory": info.get("used_memory"),
                                               "connected_clients": info.get("connected_clients")}))
    for key, value in info.items():
        if str(key).startswith("db") and isinstance(value, dict):
            figures.append(("redis.db", str(key), {"keys": value.get("keys"), "expires": value.get("expires")}))
    total = await client.dbsize()
    counts: dict[str, int] = {}
    examples: dict[str, list[bytes]] = {}
    seen = 0
    cursor = 0
    while True:
        cursor, keys = await client.scan(cursor=cursor, count=1000)
        for key in keys:
            pattern = infer_pattern(key)
            counts[pattern] = counts.get(pattern, 0) + 1
            bucket = examples.setdefault(pattern, [])
            if len(bucket) < MEMORY_SAMPLES_PER_PATTERN:
                bucket.append(key)
        seen += len(keys)
        if cursor == 0 or seen >= SAMPLE_KEYS:
            break
    scale = total / seen if seen and cursor != 0 else 1.0
    top = sorted(counts.items(), key=lambda item: -item[1])[:MAX_PATTERNS]
    pipe = client.pipeline(transaction=False)
    for pattern, _ in top:
        for key in examples[pattern]:
            pipe.memory_usage(key)
    sizes = await pipe.execute() if top else []
    position = 0
    for pattern, count in top:
        sampled = sizes[position: position + len(examples[pattern])]
        position += len(examples[pattern])
        known = [s for s in sampled if isinstance(s, int)]
        mean = sum(known) / len(known) if known else None
        keys_estimate = round(count * scale)
        figures.append(("redis.pattern", pattern, {
            "keys": keys_estimate,
            "bytes": None if mean is None else round(mean * keys_estimate),
            "exact": cursor == 0,
        }))
    return figures


# How `dbvitals diff` reads these figures (checks.snapshots.diff).
KINDS = {
    "redis.pattern": FigureKind(growth("keys", "keys"), gone="no keys of this pattern left", headline="keys"),
}
