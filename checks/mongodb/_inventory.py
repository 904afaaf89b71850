"""What the MongoDB checks share: one snapshot per session of every collection's indexes, its
document count and sizes read lazily and only where a check needs them, bounded samples with
type histograms, query-shape normalisation, the ESR ordering rule, and index-spec helpers.

Several checks run concurrently on one session and want the same listIndexes, counts and
samples: each is fetched once per session (memoised as a shared task) and never more than
`CONCURRENCY` commands are in flight: the one connection the target's checks share, so a
budgeted call's clock starts when it has the connection, never while it queues for it.

On a mongod a count and collStats are metadata, and a sample a few hundred documents read
along the _id index: milliseconds. An engine without metadata counts scans the collection for
each of them (SecantusDB: 5.7 s for `count` on 1,000,000 documents, 40 s for collStats). So
each such call gets a time budget (`call_budget`, sent as maxTimeMS); one that does not
answer in time leaves its figure unknown, with the reason, and a collection whose
count did not answer is not sampled, since sampling it would scan it too. Where a check wants
the sizes, the count comes from the same collStats reply: one call, not two.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import fnmatch
import random
import re
import uuid
import weakref
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the driver is imported where it is used: the check catalog loads without it
    from pymongo.errors import PyMongoError

CONCURRENCY = 1  # the target's checks share one connection (the connector's maxPoolSize)
# `collStats` is deprecated in favour of `$collStats`, but SecantusDB's `$collStats` reports
# sizes of 0 while the command is complete; the command still answers on every mongod.
COLLSTATS = "collStats"


# --- index specs ----------------------------------------------------------------------------------

# Options that change what an index holds or enforces; the rest (v, ns, background) do not.
INDEX_OPTIONS = (
    "unique", "sparse", "partialFilterExpression", "expireAfterSeconds", "collation", "hidden",
    "weights", "default_language", "language_override", "2dsphereIndexVersion", "bits", "min", "max",
    "wildcardProjection",
)


@dataclass(frozen=True)
class IndexSpec:
    """One index as `listIndexes` returns it, key order preserved."""

    name: str
    key: tuple[tuple[str, Any], ...]
    options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> IndexSpec:
        options = {k: _plain(doc[k]) for k in INDEX_OPTIONS if k in doc}
        return cls(name=str(doc["name"]), key=tuple((k, _plain(v)) for k, v in dict(doc["key"]).items()), options=options)

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.key)

    @property
    def key_document(self) -> dict[str, Any]:
        return dict(self.key)

    @property
    def is_id(self) -> bool:
        return self.name == "_id_"

    @property
    def unique(self) -> bool:
        return bool(self.options.get("unique"))

    @property
    def is_ttl(self) -> bool:
        return "expireAfterSeconds" in self.options

    @property
    def is_plain(self) -> bool:
        """Every key ascending or descending: no text, hashed, geo or wildcard key."""
        return all(isinstance(v, (int, float)) and not isinstance(v, bool) and v in (1, -1) for _, v in self.key)

    def create_spec(self) -> dict[str, Any]:
        """The element of a `createIndexes` command that rebuilds this index as it is."""
        return {"key": self.key_document, "name": self.name, **self.options}

    def describe(self) -> str:
        return describe_key(self.key_document) + "".join(
            f" {k}={v}" for k, v in self.options.items() if k in ("unique", "sparse", "expireAfterSeconds", "hidden")
        ) + (" partial" if "partialFilterExpression" in self.options else "")


def _plain(value: Any) -> Any:
    """SON and other mappings as plain dicts/lists, so specs compare and serialise simply."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def index_name(key: dict[str, Any]) -> str:
    """The name mongod gives an index by default: field_direction pairs joined by "_"."""
    return "_".join(f"{k}_{v}" for k, v in key.items())


def describe_key(key: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in key.items()) + "}"


def create_indexes(collection: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"createIndexes": collection, "indexes": [spec]}


def drop_index(collection: str, name: str) -> dict[str, Any]:
    return {"dropIndexes": collection, "index": name}


# --- the per-session snapshot ---------------------------------------------------------------------

@dataclass(frozen=True)
class CollectionInfo:
    database: str
    name: str
    count: int | None  # None: not read, or did not answer (see `unknown`)
    size: int | None  # bytes of uncompressed BSON (collStats.size)
    storage_size: int | None
    indexes: tuple[IndexSpec, ...]
    index_sizes: dict[str, int] = field(default_factory=dict, hash=False, compare=False)
    unknown: str = ""  # why a figure above is missing, e.g. "count did not answer within 1.5s"

    @property
    def namespace(self) -> str:
        return f"{self.database}.{self.name}"

    def index(self, name: str) -> IndexSpec | None:
        return next((i for i in self.indexes if i.name == name), None)


_MEMO: weakref.WeakKeyDictionary[Any, dict[Any, asyncio.Future[Any]]] = weakref.WeakKeyDictionary()

# Longest a count, collStats or sample may take before its figure is reported unknown.
CALL_BUDGET = 1.5


def call_budget(config: Any) -> float:
    """Seconds for one statistics or sampling call: CALL_BUDGET, never more than the target's
    per-query timeout nor a tenth of its check timeout."""
    return min(CALL_BUDGET, float(config.timeout), float(config.check_timeout) / 10)


def _limiter(session: Any) -> asyncio.Semaphore:
    return memo_value(session, "limiter", lambda: asyncio.Semaphore(CONCURRENCY))


def memo_value(session: Any, key: Any, make: Callable[[], Any]) -> Any:
    cache = _MEMO.setdefault(session, {})
    if key not in cache:
        cache[key] = make()
    return cache[key]


async def memo(session: Any, key: Any, factory: Callable[[], Awaitable[Any]]) -> Any:
    """`factory()` run once per session and key; concurrent callers share the result.

    Shielded: a check that times out must not cancel the fetch other checks are awaiting.
    """
    task = memo_value(session, key, lambda: asyncio.ensure_future(factory()))
    return await asyncio.shield(task)


async def limited(session: Any, coro: Awaitable[Any]) -> Any:
    async with _limiter(session):
        return await coro


class OverBudget(Exception):
    """A call that did not answer within its budget, or failed; `reason` says which, in words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Attempt:
    """How one try of a budgeted call went: its reply, or the driver's error."""

    reply: Any = None
    error: PyMongoError | None = None


async def _attempt(budget: float, call: Callable[[], Awaitable[Any]]) -> _Attempt:
    """`call()` under `budget` seconds (sent as maxTimeMS, so the server abandons the work too)."""
    from pymongo import timeout as operation_timeout
    from pymongo.errors import PyMongoError

    try:
        with operation_timeout(budget):
            return _Attempt(reply=await call())
    except PyMongoError as exc:
        return _Attempt(error=exc)


def _settle(what: str, budget: float, attempt: _Attempt) -> Any:
    """The reply, or OverBudget with the reason. A call that timed out holding the target's one
    connection is genuinely too slow: it is never retried, a second try would cost the same."""
    if attempt.error is None:
        return attempt.reply
    if attempt.error.timeout:
        raise OverBudget(f"{what} did not answer within {budget:g}s") from attempt.error
    raise OverBudget(_failed(what, attempt.error)) from attempt.error


def _failed(what: str, exc: PyMongoError) -> str:
    return f"{what} failed: {type(exc).__name__}: {str(exc)[:160]}"


async def budgeted(session: Any, what: str, budget: float, call: Callable[[], Awaitable[Any]]) -> Any:
    """`call()` under a budget of `budget` seconds, which pymongo sends as maxTimeMS so the
    server abandons the work too. The clock starts once the connection is this call's.
    Raises OverBudget with the reason."""
    async with _limiter(session):
        attempt = await _attempt(budget, call)
    return _settle(what, budget, attempt)


async def collection_names(session: Any, database: str) -> list[str]:
    async def fetch() -> list[str]:
        infos = await limited(session, session.client[database].list_collections(filter={"type": "collection"}))
        names = [info["name"] async for info in infos]
        return sorted(n for n in names if not n.startswith("system."))

    return await memo(session, ("collections", database), fetch)


async def index_stats_rows(session: Any, database: str, name: str) -> list[dict[str, Any]] | None:
    """`$indexStats` of the connected node, memoised: per index its usage counters and, on a
    mongod, its full spec. None when the server refuses it (the indexStats privilege)."""
    from pymongo.errors import OperationFailure

    async def fetch() -> list[dict[str, Any]] | None:
        async def rows() -> list[dict[str, Any]]:
            cursor = await session.client[database][name].aggregate([{"$indexStats": {}}], comment=OWN_COMMENT)
            return await cursor.to_list(None)

        try:
            return await limited(session, rows())
        except OperationFailure:
            return None

    return await memo(session, ("indexStats", database, name), fetch)


def _specs_from_stats(rows: list[dict[str, Any]] | None) -> tuple[IndexSpec, ...] | None:
    if not rows or not all(isinstance(r.get("spec"), dict) for r in rows):
        return None
    return tuple(IndexSpec.from_document(r["spec"]) for r in rows)


async def collection_info(session: Any, database: str, name: str) -> CollectionInfo:
    """The collection's indexes; count and sizes not read yet. Read from `$indexStats` where
    its rows carry each index's spec (mongod 4.2+), so the one call also gives the usage
    counters mongodb.unused-index needs; else from listIndexes (a catalog read). The first
    collection decides which, so a server without specs costs one extra call, not one each."""
    state: dict[str, str] = memo_value(session, "index source", dict)

    async def fetch() -> CollectionInfo:
        async with memo_value(session, "index source lock", asyncio.Lock):
            if "mode" not in state:
                specs = _specs_from_stats(await index_stats_rows(session, database, name))
                state["mode"] = "indexStats" if specs is not None else "listIndexes"
                if specs is not None:
                    return CollectionInfo(database, name, None, None, None, specs, unknown="not read")
        if state["mode"] == "indexStats":
            specs = _specs_from_stats(await index_stats_rows(session, database, name))
            if specs is not None:
                return CollectionInfo(database, name, None, None, None, specs, unknown="not read")

        async def indexes() -> list[dict[str, Any]]:
            cursor = await session.client[database][name].list_indexes()
            return [doc async for doc in cursor]

        docs = await limited(session, indexes())
        return CollectionInfo(database, name, None, None, None, tuple(IndexSpec.from_document(d) for d in docs),
                              unknown="not read")

    return await memo(session, ("info", database, name), fetch)


@dataclass
class _Asked:
    """What has been asked of one collection's figures so far: a count whose turn comes after a
    collStats was asked for takes its count from that reply instead of sending its own call."""

    stats: bool = False
    count_sent: bool = False


def _asked(session: Any, info: CollectionInfo, budget: float) -> _Asked:
    return memo_value(session, ("asked", info.database, info.name, budget), _Asked)


async def counted(session: Any, info: CollectionInfo, budget: float) -> CollectionInfo:
    """The collection with its document count: the `count` command (metadata on a mongod), or
    the count in its collStats reply when sizes were asked for before the count's turn came."""
    asked = _asked(session, info, budget)

    async def fetch() -> CollectionInfo:
        db = session.client[info.database]

        def call() -> Awaitable[Any]:
            return db.command("count", info.name)

        attempt = None
        async with _limiter(session):
            if not asked.stats:
                asked.count_sent = True
                attempt = await _attempt(budget, call)
        if attempt is None:
            return await measured(session, info, budget)
        try:
            reply = _settle("count", budget, attempt)
        except OverBudget as exc:
            return replace_info(info, unknown=exc.reason)
        return replace_info(info, count=int(reply.get("n", 0)), unknown="sizes not read")

    return await memo(session, ("count", info.database, info.name, budget), fetch)


async def measured(session: Any, info: CollectionInfo, budget: float) -> CollectionInfo:
    """The collection with its count and its data and index sizes, in one collStats call. If a
    count call already went out, collStats waits for it and is skipped where even counting
    did not answer within the budget: collStats counts too, so it would be slower still."""
    asked = _asked(session, info, budget)
    asked.stats = True

    async def fetch() -> CollectionInfo:
        have = info
        if asked.count_sent:
            have = await counted(session, info, budget)
            if have.count is None:
                return replace_info(have, unknown=f"{have.unknown}; collStats not attempted")
        db = session.client[info.database]
        try:
            stats = await budgeted(session, "collStats", budget, lambda: db.command(COLLSTATS, info.name))
        except OverBudget as exc:
            return replace_info(have, unknown=exc.reason)
        count = int(stats["count"]) if "count" in stats else have.count
        return replace_info(
            have,
            count=count,
            size=int(stats.get("size", 0)),
            storage_size=int(stats.get("storageSize", 0)),
            index_sizes={k: int(v) for k, v in dict(stats.get("indexSizes", {})).items()},
            unknown="" if count is not None else "collStats reported no count",
        )

    return await memo(session, ("stats", info.database, info.name, budget), fetch)


def replace_info(info: CollectionInfo, **changes: Any) -> CollectionInfo:
    return CollectionInfo(**{**info.__dict__, **changes})


async def inventory(session: Any, database: str) -> list[CollectionInfo]:
    names = await collection_names(session, database)
    return list(await asyncio.gather(*(collection_info(session, database, n) for n in names)))


def figure(value: int | None, info: CollectionInfo) -> int | str:
    """A count or size for evidence: the number, or "unknown: <why>"."""
    return value if value is not None else f"unknown: {info.unknown or 'not read'}"


# --- bounded sampling -----------------------------------------------------------------------------

@cache
def _bson_types() -> tuple[tuple[type[Any], str], ...]:
    from bson import Binary, Decimal128, Int64, ObjectId, Regex, Timestamp
    from bson.code import Code
    from bson.max_key import MaxKey
    from bson.min_key import MinKey

    return (
        (bool, "bool"), (Int64, "long"), (int, "int"), (float, "double"), (str, "string"),
        (dt.datetime, "date"), (ObjectId, "objectId"), (dict, "object"), (list, "array"),
        (Binary, "binData"), (bytes, "binData"), (uuid.UUID, "binData"), (Decimal128, "decimal"),
        (Timestamp, "timestamp"), (Regex, "regex"), (re.Pattern, "regex"), (Code, "javascript"),
        (MinKey, "minKey"), (MaxKey, "maxKey"),
    )


def bson_type(value: Any) -> str:
    """The `$type` alias of a decoded BSON value."""
    if value is None:
        return "null"
    for cls, alias in _bson_types():
        if isinstance(value, cls):
            if alias == "int" and not -(2**31) <= value < 2**31:
                return "long"
            return alias
    return type(value).__name__


@dataclass(frozen=True)
class FieldSample:
    """A top-level field across the sampled documents."""

    types: dict[str, int]  # $type alias -> documents (missing fields are not counted)
    examples: tuple[Any, ...] = ()  # a few values, first seen first
    oldest: dt.datetime | None = None  # for date values
    newest: dt.datetime | None = None

    @property
    def present(self) -> int:
        return sum(self.types.values())

    @property
    def non_null_types(self) -> dict[str, int]:
        return {t: n for t, n in self.types.items() if t != "null"}

    def share(self, bson: str) -> float:
        present = sum(self.non_null_types.values())
        return self.types.get(bson, 0) / present if present else 0.0


# How a sample was drawn, said in each finding's evidence. Both are deterministic: the same
# documents come back on unchanged data, so two runs give the same findings.
WHOLE = "every document, in _id order (a small collection is read whole)"
SEEDED = ("a seeded sample: {runs} runs of consecutive documents in _id order, each starting at an offset "
          "drawn in its stretch of the collection by a generator seeded with the namespace")
SEEDED_BY_ID = ("a seeded sample: {runs} runs of consecutive documents in _id order, each starting at an _id "
                "drawn in its stretch between the smallest and largest _id by a generator seeded with the namespace")
# Up to this many documents a run starts at a skip along the _id index; past it, at an _id drawn
# between the smallest and largest (a skip walks, on older servers fetches, every skipped document).
SKIP_LIMIT = 100_000
WHOLE_LIMIT = 2_000  # collections up to this many documents are read whole, not sampled
WHOLE_BYTES = 32 << 20  # ... and up to this much BSON (collStats size): a few large documents are sampled
SAMPLE_RUNS = 4  # stretches a sample is spread over, so it reaches old and new documents alike
# Marks dbvitals's own reads, so the workload readers (profiler, slow log, currentOp) skip them.
OWN_COMMENT = "dbvitals"


@dataclass(frozen=True)
class Sample:
    """At most `size` documents; `documents` is how many came back, `method` how they were drawn."""

    database: str
    collection: str
    documents: int
    fields: dict[str, FieldSample]
    # The drawn documents themselves (at most the sample size), for estimates by predicate.
    drawn: tuple[dict[str, Any], ...] = field(default=(), repr=False, compare=False)
    method: str = WHOLE
    unknown: str = ""  # why nothing was drawn from a collection that may hold documents

    @property
    def whole(self) -> bool:
        return self.method == WHOLE


EXAMPLES_KEPT = 5


def summarise(database: str, collection: str, documents: Iterable[dict[str, Any]]) -> Sample:
    documents = tuple(documents)
    types: dict[str, Counter[str]] = {}
    examples: dict[str, list[Any]] = {}
    oldest: dict[str, dt.datetime] = {}
    newest: dict[str, dt.datetime] = {}
    count = 0
    for doc in documents:
        count += 1
        for name, value in doc.items():
            types.setdefault(name, Counter())[bson_type(value)] += 1
            kept = examples.setdefault(name, [])
            if len(kept) < EXAMPLES_KEPT and not isinstance(value, (dict, list)):
                kept.append(value)
            if isinstance(value, dt.datetime):
                stamp = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
                oldest[name] = min(oldest.get(name, stamp), stamp)
                newest[name] = max(newest.get(name, stamp), stamp)
    return Sample(
        database=database,
        collection=collection,
        documents=count,
        fields={
            name: FieldSample(dict(counter), tuple(examples[name]), oldest.get(name), newest.get(name))
            for name, counter in types.items()
        },
        drawn=documents,
    )


def seeded_runs(namespace: str, count: int, size: int) -> list[tuple[int, int]]:
    """(offset in _id order, documents) of each run of a seeded sample of `size` documents out of
    `count`: the collection cut into SAMPLE_RUNS equal stretches, one run per stretch starting at
    an offset drawn by a generator seeded with the namespace's CRC32. Unchanged data gives the
    same runs, so the same documents; a sample still reaches every part of the collection."""
    runs = max(1, min(SAMPLE_RUNS, size))
    length = size // runs
    stretch = count // runs
    rng = random.Random(zlib.crc32(namespace.encode()))
    return [(i * stretch + rng.randrange(max(stretch - length, 0) + 1), length) for i in range(runs)]


def seeded_starts(namespace: str, low: Any, high: Any, runs: int) -> list[Any] | None:
    """The _id each run of a large collection's seeded sample starts at: one drawn in each of
    `runs` equal stretches between its smallest and largest _id (ObjectIds as 96-bit numbers,
    numbers and dates by value), by a generator seeded with the namespace. None for _ids
    that cannot be interpolated (strings, binary, mixed types): the runs start at a skip."""
    from bson import ObjectId

    rng = random.Random(zlib.crc32(namespace.encode()))
    fractions = [(i + rng.random()) / runs for i in range(runs)]
    if isinstance(low, ObjectId) and isinstance(high, ObjectId):
        # As 96-bit numbers: the creation time leads, and ids made in one second still differ.
        start, end = int.from_bytes(low.binary, "big"), int.from_bytes(high.binary, "big")
        return [ObjectId((start + int((end - start) * f)).to_bytes(12, "big")) for f in fractions]
    numbers = (int, float)
    if isinstance(low, numbers) and isinstance(high, numbers) and not isinstance(low, bool) and not isinstance(high, bool):
        exact = isinstance(low, int) and isinstance(high, int)
        return [(int(low + (high - low) * f) if exact else low + (high - low) * f) for f in fractions]
    if isinstance(low, dt.datetime) and isinstance(high, dt.datetime):
        return [low + (high - low) * f for f in fractions]
    return None


async def sample(session: Any, info: CollectionInfo, size: int, budget: float) -> Sample:
    """The collection's documents for the checks to judge, the same on unchanged data: read whole
    when it holds at most `size` documents, or at most WHOLE_LIMIT documents and WHOLE_BYTES;
    else a seeded sample of `size` documents: a few runs read along the _id index, starting at
    a seeded skip (`seeded_runs`) or, past SKIP_LIMIT documents, at a seeded _id
    (`seeded_starts`). Each read has the call budget; one cut short leaves the sample empty
    with `unknown` set, and the checks reading it say the collection was skipped (partial).

    Not drawn (empty, with `unknown` set) when the collection's count did not answer within the
    budget: on such an engine the reads would scan the collection."""

    async def fetch() -> Sample:
        have = await counted(session, info, budget)
        if have.count is None:
            return Sample(info.database, info.name, 0, {}, unknown=f"not sampled: {have.unknown}")
        if have.count == 0:
            return summarise(info.database, info.name, [])
        coll = session.client[info.database][info.name]
        whole = have.count <= size
        if not whole and have.count <= WHOLE_LIMIT:  # its bytes too: collStats is cheap on a small collection
            sized = await measured(session, have, budget)
            whole = sized.size is not None and sized.size <= WHOLE_BYTES
        reads: list[tuple[str, dict[str, Any], int, int]] = []  # (what, filter, skip, limit)
        method, by_id = WHOLE, False
        if whole:
            reads = [("reading the whole collection", {}, 0, have.count)]
        else:
            starts = None
            if have.count > SKIP_LIMIT:
                try:
                    starts = await _seeded_starts(session, info, budget)
                except OverBudget as exc:
                    return Sample(info.database, info.name, 0, {}, unknown=f"not sampled: {exc.reason}")
            runs = seeded_runs(info.namespace, have.count, size)
            if starts is not None:
                reads = [(f"a seeded sample's run from _id {start}", {"_id": {"$gte": start}}, 0, length)
                         for start, (_, length) in zip(starts, runs)]
                method, by_id = SEEDED_BY_ID.format(runs=len(runs)), True
            else:
                reads = [(f"a seeded sample's run at offset {offset:,}", {}, offset, length) for offset, length in runs]
                method = SEEDED.format(runs=len(runs))

        drawn: list[dict[str, Any]] = []
        seen: set[Any] = set()  # runs from _id bounds may overlap on skewed data (those _ids are hashable)
        for what, filter_, skip, length in reads:  # each its own budgeted read: one slow read does not starve the rest
            def read(filter_: dict[str, Any] = filter_, skip: int = skip, length: int = length) -> Awaitable[list[dict[str, Any]]]:
                # One batch larger than the run: the server closes the cursor with it (no getMore).
                cursor = coll.find(filter_, sort=[("_id", 1)], skip=skip, limit=length, batch_size=length + 1,
                                   comment=OWN_COMMENT)
                return cursor.to_list(length)

            try:
                got = await budgeted(session, what, budget, read)
            except OverBudget as exc:
                return Sample(info.database, info.name, 0, {}, unknown=f"not sampled: {exc.reason}")
            if by_id:
                got = [doc for doc in got if doc["_id"] not in seen]
                seen.update(doc["_id"] for doc in got)
            drawn.extend(got)
        return replace_sample(summarise(info.database, info.name, drawn), method=method)

    return await memo(session, ("sample", info.database, info.name, size, budget), fetch)


async def _seeded_starts(session: Any, info: CollectionInfo, budget: float) -> list[Any] | None:
    """Where a large collection's runs start (`seeded_starts`), from its smallest and largest
    _id: two reads of one key each along the _id index. Raises OverBudget."""
    coll = session.client[info.database][info.name]
    ends = []
    for direction in (1, -1):
        def end(direction: int = direction) -> Awaitable[dict[str, Any] | None]:
            return coll.find_one({}, {"_id": 1}, sort=[("_id", direction)], comment=OWN_COMMENT)

        doc = await budgeted(session, "the collection's first and last _id", budget, end)
        if doc is None:
            return None
        ends.append(doc["_id"])
    return seeded_starts(info.namespace, ends[0], ends[1], SAMPLE_RUNS)


def replace_sample(drawn: Sample, **changes: Any) -> Sample:
    return Sample(**{**drawn.__dict__, **changes})


def oid_time(value: Any) -> dt.datetime | None:
    from bson import ObjectId

    return value.generation_time if isinstance(value, ObjectId) else None


# --- durations ------------------------------------------------------------------------------------

_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def format_seconds(seconds: float) -> str:
    """3600 -> "1h", 2592000 -> "30d", 90 -> "1m30s": the form the config accepts."""
    seconds = int(round(seconds))
    if seconds <= 0:
        return f"{seconds}s"
    parts = []
    for unit, size in _UNITS:
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts[:2])


def age_days(when: dt.datetime | None, now: dt.datetime) -> float | None:
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return round((now - when).total_seconds() / 86400, 1)


def matches_any(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


# --- query shapes ---------------------------------------------------------------------------------

LOGICAL = {"$and", "$or", "$nor"}
EQUALITY_OPS = {"$eq", "$elemMatch", "$all", "$size"}


def query_shape(value: Any) -> Any:
    """A filter with every literal replaced by "?", operators and field names kept:
    `{email: "a@b", age: {$gt: 3}}` -> `{age: {$gt: "?"}, email: "?"}`. Field order is sorted,
    so the same query written in two orders is one shape."""
    if isinstance(value, dict):
        if value and all(str(k).startswith("$") for k in value):
            return {k: _operand_shape(k, v) for k, v in sorted(value.items())}
        return {k: _field_shape(k, v) for k, v in sorted(value.items())}
    return "?"


def _field_shape(name: str, value: Any) -> Any:
    if name in LOGICAL and isinstance(value, list):
        return [query_shape(v) for v in value]
    if isinstance(value, dict) and value and all(str(k).startswith("$") for k in value):
        return {k: _operand_shape(k, v) for k, v in sorted(value.items())}
    return "?"


def _operand_shape(op: str, value: Any) -> Any:
    if op in ("$in", "$nin", "$all") and isinstance(value, list):
        return ["?"]
    if op in ("$elemMatch", "$not") and isinstance(value, dict):
        return query_shape(value)
    if op in LOGICAL and isinstance(value, list):
        return [query_shape(v) for v in value]
    return "?"


@dataclass(frozen=True)
class Predicate:
    field: str
    kind: str  # "equality" | "range" | "in"


def predicates(filter_: dict[str, Any]) -> list[Predicate] | None:
    """The field predicates of a filter, top-level `$and` flattened; None when the filter has a
    shape no single index serves ($or, $nor, $where, $expr, $text)."""
    found: dict[str, Predicate] = {}
    for name, value in filter_.items():
        if name == "$and" and isinstance(value, list):
            for part in value:
                nested = predicates(part) if isinstance(part, dict) else None
                if nested is None:
                    return None
                for p in nested:
                    found[p.field] = _stronger(found.get(p.field), p)
            continue
        if name.startswith("$"):
            return None
        found[name] = _stronger(found.get(name), Predicate(name, _kind(value)))
    return list(found.values())


def _kind(value: Any) -> str:
    if isinstance(value, dict) and value and all(str(k).startswith("$") for k in value):
        ops = set(value) - {"$options"}
        if ops <= EQUALITY_OPS:
            return "equality"
        if ops == {"$in"}:
            values = value["$in"]
            return "equality" if isinstance(values, list) and len(values) == 1 else "in"
        return "range"
    from bson import Regex

    if isinstance(value, (re.Pattern, Regex)):
        return "range"
    return "equality"


def _stronger(old: Predicate | None, new: Predicate) -> Predicate:
    order = {"equality": 0, "in": 1, "range": 2}
    return new if old is None or order[new.kind] < order[old.kind] else old


@dataclass(frozen=True)
class IndexSuggestion:
    key: dict[str, int]
    order: str  # which rule was applied, in words
    alternative: dict[str, int] | None = None  # range before sort, when the range is very selective
    # Key fields whose direction does not matter (an equality selects one key, a range is read
    # either way); every other field orders the results, so its direction does.
    unordered: frozenset[str] = frozenset()
    equality: frozenset[str] = frozenset()  # of those, the leading equalities: their order does not matter either


def esr_index(filter_: dict[str, Any], sort: dict[str, int] | None) -> IndexSuggestion | None:
    """The Equality, Sort, Range rule: equality fields first (they narrow to one contiguous key
    range), then the sort fields in their directions (the index returns documents in order, so
    no in-memory sort), then range fields (they scan a span of keys; placed before the sort they
    would break the order). `$in` is an equality without a sort and a range with one, since it
    yields several key ranges whose union is not in sort order."""
    preds = predicates(filter_)
    if preds is None:
        return None
    sort = {k: (1 if int(v) >= 0 else -1) for k, v in (sort or {}).items() if isinstance(v, (int, float))}
    equality = [p.field for p in preds if p.kind == "equality" or (p.kind == "in" and not sort)]
    ranges = [p.field for p in preds if p.kind == "range" or (p.kind == "in" and sort)]
    sort_fields = [f for f in sort if f not in equality]
    ranges = [f for f in ranges if f not in sort_fields]
    key: dict[str, int] = {f: 1 for f in equality}
    key.update({f: sort[f] for f in sort_fields})
    key.update({f: 1 for f in ranges})
    if not key:
        return None
    words = []
    if equality:
        words.append(f"equality ({', '.join(equality)})")
    if sort_fields:
        words.append(f"sort ({', '.join(f'{f} {_direction(sort[f])}' for f in sort_fields)})")
    if ranges:
        words.append(f"range ({', '.join(ranges)})")
    order = "equality, sort, range rule: " + " then ".join(words)
    alternative = None
    if sort_fields and ranges:
        order += (
            "; sort is placed before range so the index returns documents already sorted, at the cost of "
            "scanning keys outside the range"
        )
        alternative = {f: 1 for f in equality}
        alternative.update({f: 1 for f in ranges})
        alternative.update({f: sort[f] for f in sort_fields})
    return IndexSuggestion(key=key, order=order, alternative=alternative, unordered=frozenset(equality) | frozenset(ranges),
                           equality=frozenset(equality))


def _direction(value: int) -> str:
    return "ascending" if value >= 0 else "descending"


@dataclass(frozen=True)
class Coverage:
    """How an existing index with the suggestion's fields, in its order, stands to it."""

    serves: bool
    words: str  # what the index covers, and what its directions mean for the sort


def coverage(index: IndexSpec, suggestion: IndexSuggestion) -> Coverage | None:
    """Whether `index` already does what the suggested key would: it starts with the same fields
    in the same order (the leading equalities in any order), and its directions give the same
    order. An equality or range field's
    direction does not matter; the fields that order the results must run all in the
    suggestion's directions, or all reversed (the index walked backwards): a compound index
    serves a sort in its own direction or the reverse of ALL its keys only. None when the index
    does not start with those fields."""
    wanted = list(suggestion.key.items())
    prefix = list(index.key[: len(wanted)])
    leading = len(suggestion.equality)  # ESR puts the equalities first: any order of them serves
    if (len(prefix) < len(wanted) or {k for k, _ in prefix[:leading]} != {k for k, _ in wanted[:leading]}
            or [k for k, _ in prefix[leading:]] != [k for k, _ in wanted[leading:]]):
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for _, v in prefix):
        return None  # a text, hashed or wildcard key: no order to compare
    directions = dict(prefix)
    ordered = [(k, int(directions[k]), d) for k, d in wanted if k not in suggestion.unordered]
    free = [k for k, _ in wanted if k in suggestion.unordered]
    about = f"{index.name} {describe_key(index.key_document)}"
    free_words = f"{', '.join(free)} {'is' if len(free) == 1 else 'are'} matched whatever the direction" if free else ""
    if not ordered or all(v == d for _, v, d in ordered):
        how = "in its own direction"
    elif all(v == -d for _, v, d in ordered):
        how = "walked backwards"
    else:
        has = describe_key({k: v for k, v, _ in ordered})
        reverse = describe_key({k: -v for k, v, _ in ordered})
        asked = describe_key({k: d for k, _, d in ordered})
        return Coverage(False, f"{about} has these fields but orders them {has} (or {reverse} walked backwards), "
                               f"not {asked}: a compound index serves a sort in its own direction or the reverse of "
                               "ALL its keys only" + (f"; {free_words}" if free_words else ""))
    sort_words = (f"the sort on {', '.join(k for k, _, _ in ordered)} is served {how} (a compound index serves a sort "
                  "in its own direction or the reverse of ALL its keys)") if ordered else ""
    return Coverage(True, f"{about} already serves it: " + "; ".join(w for w in (free_words, sort_words) if w))


def key_serves(index_key: tuple[tuple[str, Any], ...], wanted: dict[str, int]) -> bool:
    """Whether an existing index already starts with the wanted key (same or fully reversed
    directions), so building the wanted one would add nothing."""
    prefix = list(index_key[: len(wanted)])
    if len(prefix) < len(wanted):
        return False
    same = all(k == w and v == d for (k, v), (w, d) in zip(prefix, wanted.items()))
    reverse = all(k == w and v == -d for (k, v), (w, d) in zip(prefix, wanted.items()))
    return same or reverse
