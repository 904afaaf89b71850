"""MongoDB figures for snapshots: documents per collection and index use where the server
counts it ($indexStats; absent counters are left out, not zero)."""

from __future__ import annotations

from typing import Any

from checks.mongodb._inventory import OWN_COMMENT
from checks.snapshots import Figure
from checks.snapshots.diff import FigureKind, growth, usage_stopped

MAX_COLLECTIONS = 500


async def gather(session: Any) -> list[Figure]:
    figures: list[Figure] = []
    seen = 0
    for name in await session.databases():
        db = session.client[name]
        collections = await db.list_collection_names(filter={"type": "collection"})
        for coll in sorted(collections):
            if coll.startswith("system.") or seen >= MAX_COLLECTIONS:
                continue
            seen += 1
            namespace = f"{name}.{coll}"
            try:
                count = await db[coll].estimated_document_count()
            except Exception:  # over the time budget or refused: unknown, not zero
                count = None
            figures.append(("mongo.collection", namespace, {"documents": count}))
            try:
                stats = [s async for s in await db[coll].aggregate([{"$indexStats": {}}], comment=OWN_COMMENT)]
            except Exception:
                stats = []
            for stat in stats:
                ops = (stat.get("accesses") or {}).get("ops")
                if ops is not None:
                    figures.append(("mongo.index", f"{namespace}.{stat.get('name')}", {"ops": int(ops)}))
    return figures


# How `dbvitals diff` reads these figures (checks.snapshots.diff).
KINDS = {
    "mongo.index": FigureKind(usage_stopped("ops"), gone="index dropped", headline="ops"),
    "mongo.collection": FigureKind(growth("documents", "documents"), gone="collection dropped", headline="documents"),
}
