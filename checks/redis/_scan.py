"""One pass over a Redis keyspace, kept as per-pattern aggregates (never the key list).

Per SCAN page (large COUNT; never KEYS), one read-only Lua call returns the page's keys
with their TYPE and TTL, and their length (STRLEN, HLEN, LLEN, SCARD, ZCARD, XLEN) only when
redis.big-keys is part of the run: TTL coverage alone reads two things per key, as
`redis-cli --bigkeys` does. Where scripting is refused, pipelined commands do the same.
Memory is bounded: per pattern a handful of counters, a reservoir of TTLs (for the median)
and a reservoir of keys (for MEMORY USAGE, measured after the pass and extrapolated); per
type a bounded heap of the biggest keys. Too many distinct patterns (names with a free-text
part) collapse into `{name}` and, at worst, `{any}`.

`redis.ttl-coverage` and `redis.big-keys` both read the result, as the shared fact
`redis.keyspace` (checks/redis/_keyspace.py): one pass per target and run.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from checks.redis._patterns import display_key, infer_pattern, is_placeholder, split_segments
from checks.secrets import mask_url
from checks.units import int_or_none

if TYPE_CHECKING:  # the driver is imported where a scan runs: the check catalog loads without it
    import redis.asyncio as aioredis

TTL_SAMPLE = 101  # TTLs (and idle times) kept per pattern for the percentiles
MEMORY_SAMPLE = 16  # keys per pattern measured at least, when it has that many (its key reservoir)
HOT_KEYS_KEPT = 20  # hottest keys by OBJECT FREQ kept per database (LFU policies only)
# Upper bounds of the TTL histogram's buckets: <= 1 hour, <= 1 day, <= 1 week, then more.
TTL_BUCKETS = (3600, 86400, 604800)
TTL_BUCKET_NAMES = ("<=1h", "<=1d", "<=1w", ">1w", "none")
EXAMPLES = 3
MISSING_TTL_EXAMPLES = 5
MAX_PATTERNS = 5000  # per database; beyond it, literal segments collapse
COLLAPSE_AT = 20  # distinct literals in one position that make it a `{name}`

TYPE_NAMES = {name.encode(): name for name in ("string", "list", "set", "zset", "hash", "stream")}


def type_name(kind: bytes | str) -> str:
    """TYPE's reply as text; a module type (ReJSON-RL...) as it comes."""
    if isinstance(kind, str):
        return kind
    return TYPE_NAMES.get(kind) or kind.decode("utf-8", "backslashreplace")

LENGTH_COMMAND = {
    "string": "STRLEN",
    "list": "LLEN",
    "set": "SCARD",
    "zset": "ZCARD",
    "hash": "HLEN",
    "stream": "XLEN",
}


@dataclass
class PatternStats:
    """What one pattern's keys look like. `add` per key; `merge` across nodes or collapses."""

    pattern: str
    keys: int = 0
    with_ttl: int = 0
    types: dict[str, int] = field(default_factory=dict)
    ttl_min: int | None = None
    ttl_max: int | None = None
    ttl_reservoir: Reservoir = field(default_factory=lambda: Reservoir(TTL_SAMPLE))
    length_total: int = 0  # elements (collections) or bytes (strings)
    length_keys: int = 0  # keys whose length was read (none when big-keys did not ask for lengths)
    key_reservoir: Reservoir = field(default_factory=lambda: Reservoir(MEMORY_SAMPLE))
    examples: list[str] = field(default_factory=list)
    missing_ttl_examples: list[str] = field(default_factory=list)
    memory_sampled_keys: int = 0
    memory_sampled_bytes: int = 0
    memory_sampled_squares: float = 0.0  # sum of squared sizes: the sample's spread, for the error
    ttl_buckets: list[int] = field(default_factory=lambda: [0, 0, 0, 0])  # counts per TTL_BUCKETS (+ more)
    # OBJECT IDLETIME (seconds unread) or, under an LFU policy, OBJECT FREQ of the sampled keys
    access_reservoir: Reservoir = field(default_factory=lambda: Reservoir(TTL_SAMPLE))
    access_max: int | None = None
    encodings: dict[str, int] = field(default_factory=dict)  # OBJECT ENCODING of the sampled keys

    @property
    def without_ttl(self) -> int:
        return self.keys - self.with_ttl

    @property
    def ttl_share(self) -> float:
        return self.with_ttl / self.keys if self.keys else 0.0

    @property
    def ttl_sample(self) -> list[int]:
        return self.ttl_reservoir.items

    @property
    def key_sample(self) -> list[bytes]:
        return self.key_reservoir.items

    @property
    def ttl_median(self) -> int | None:
        if not self.ttl_sample:
            return None
        ordered = sorted(self.ttl_sample)
        return ordered[len(ordered) // 2]

    def ttl_percentile(self, share: float) -> int | None:
        """The TTL below which `share` of the sampled keys with a TTL fall (0.9: the p90)."""
        return percentile(self.ttl_sample, share)

    def access_percentile(self, share: float) -> int | None:
        return percentile(self.access_reservoir.items, share)

    @property
    def ttl_histogram(self) -> dict[str, int]:
        """Keys per remaining-TTL bucket (exact: every key's TTL is counted), and those with none."""
        return dict(zip(TTL_BUCKET_NAMES, [*self.ttl_buckets, self.without_ttl]))

    def memory_estimate(self, factor: float = 1.0) -> tuple[int, int] | None:
        """(bytes, ± bytes at 95 %) for all the pattern's keys, from the measured sample: the
        sample's mean times the keys, and 1.96 standard errors with the finite-population
        correction (0 when every key was measured). None when nothing was measured."""
        n = self.memory_sampled_keys
        if not n:
            return None
        population = max(self.keys * factor, n)
        mean = self.memory_sampled_bytes / n
        total = mean * population
        if n >= population or n < 2:
            return round(total), 0 if n >= population else round(total)
        variance = max(0.0, (self.memory_sampled_squares - n * mean * mean) / (n - 1))
        correction = math.sqrt((population - n) / (population - 1))
        return round(total), round(1.96 * population * math.sqrt(variance / n) * correction)

    def add_samples(self, memory: list[int], access: list[int], encodings: list[Any], rng: random.Random) -> None:
        """Per sampled key: MEMORY USAGE (-1: refused), OBJECT IDLETIME or FREQ (-1: not
        tracked), OBJECT ENCODING (empty: refused)."""
        for used in memory:
            if used >= 0:
                self.memory_sampled_keys += 1
                self.memory_sampled_bytes += used
                self.memory_sampled_squares += used * used
        read = [value for value in access if value >= 0]
        if read:
            self.access_reservoir.offer_many(read, rng)
            high = max(read)
            self.access_max = high if self.access_max is None else max(self.access_max, high)
        for encoding in encodings:
            if encoding:
                name = encoding.decode() if isinstance(encoding, bytes) else str(encoding)
                self.encodings[name] = self.encodings.get(name, 0) + 1

    def reset_samples(self, access: bool = True) -> None:
        """Forget the measured sample (before measuring another); `access`: the idle times too."""
        self.memory_sampled_keys = self.memory_sampled_bytes = 0
        self.memory_sampled_squares = 0.0
        if access:
            self.access_reservoir = Reservoir(TTL_SAMPLE)
            self.access_max = None
        self.encodings = {}

    @property
    def main_type(self) -> str:
        return max(self.types.items(), key=lambda kv: kv[1])[0] if self.types else "unknown"

    def add(self, key: bytes, kind: str, ttl: int, length: int | None, rng: random.Random) -> None:
        self.add_batch([key], [kind], [ttl], None if length is None else [length], rng)

    def add_batch(
        self, keys: list[bytes], kinds: list[Any], ttls: list[int], lengths: list[int] | None, rng: random.Random
    ) -> None:
        """A batch's keys of this pattern, with their types (bytes or text), TTLs and lengths
        (-1: none), in list operations rather than a Python step per key for every figure."""
        count = len(keys)
        self.keys += count
        first = kinds[0]
        if kinds.count(first) == count:
            name = type_name(first)
            self.types[name] = self.types.get(name, 0) + count
        else:
            for kind in kinds:
                name = type_name(kind)
                self.types[name] = self.types.get(name, 0) + 1
        if lengths is not None:
            known = [length for length in lengths if length >= 0]
            self.length_keys += len(known)
            self.length_total += sum(known)
        if len(self.examples) < EXAMPLES:
            self.examples.extend(display_key(key) for key in keys[: EXAMPLES - len(self.examples)])
        expiring = [ttl for ttl in ttls if ttl >= 0]
        if expiring:
            self.with_ttl += len(expiring)
            expiring.sort()  # in C: the histogram then takes three bisections, not a step per key
            low, high = expiring[0], expiring[-1]
            buckets, previous = self.ttl_buckets, 0
            for index, bound in enumerate(TTL_BUCKETS):
                upto = bisect.bisect_right(expiring, bound, previous)
                buckets[index] += upto - previous
                previous = upto
            buckets[3] += len(expiring) - previous
            self.ttl_min = low if self.ttl_min is None else min(self.ttl_min, low)
            self.ttl_max = high if self.ttl_max is None else max(self.ttl_max, high)
            self.ttl_reservoir.offer_many(expiring, rng)
        if len(expiring) < count and len(self.missing_ttl_examples) < MISSING_TTL_EXAMPLES:
            for key, ttl in zip(keys, ttls):
                if ttl < 0:
                    self.missing_ttl_examples.append(display_key(key))
                    if len(self.missing_ttl_examples) == MISSING_TTL_EXAMPLES:
                        break
        self.key_reservoir.offer_many(keys, rng)

    def merge(self, other: PatternStats, rng: random.Random) -> None:
        self.ttl_reservoir.merge(other.ttl_reservoir, rng)
        self.key_reservoir.merge(other.key_reservoir, rng)
        self.keys += other.keys
        self.with_ttl += other.with_ttl
        for kind, count in other.types.items():
            self.types[kind] = self.types.get(kind, 0) + count
        for attr, pick in (("ttl_min", min), ("ttl_max", max)):
            mine, theirs = getattr(self, attr), getattr(other, attr)
            setattr(self, attr, theirs if mine is None else mine if theirs is None else pick(mine, theirs))
        self.length_total += other.length_total
        self.length_keys += other.length_keys
        self.examples = (self.examples + other.examples)[:EXAMPLES]
        self.missing_ttl_examples = (self.missing_ttl_examples + other.missing_ttl_examples)[:MISSING_TTL_EXAMPLES]
        self.memory_sampled_keys += other.memory_sampled_keys
        self.memory_sampled_bytes += other.memory_sampled_bytes
        self.memory_sampled_squares += other.memory_sampled_squares
        self.ttl_buckets = [a + b for a, b in zip(self.ttl_buckets, other.ttl_buckets)]
        self.access_reservoir.merge(other.access_reservoir, rng)
        if other.access_max is not None:
            self.access_max = other.access_max if self.access_max is None else max(self.access_max, other.access_max)
        for name, count in other.encodings.items():
            self.encodings[name] = self.encodings.get(name, 0) + count


def percentile(values: list[int], share: float) -> int | None:
    """The nearest-rank percentile of a sample (None for an empty one)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


class Reservoir:
    """A uniform sample of at most `size` items from a stream (Vitter's Algorithm L): once full,
    it draws how many items to skip, so most offers cost one comparison and no random number."""

    __slots__ = ("size", "items", "seen", "_weight", "_next")

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: list[Any] = []
        self.seen = 0
        self._weight = 1.0
        self._next = size  # index of the next item taken

    def offer(self, item: Any, rng: random.Random) -> None:
        index = self.seen
        self.seen += 1
        if index < self.size:
            self.items.append(item)
            if self.seen == self.size:
                self._weight = math.exp(math.log(rng.random() or 1e-300) / self.size)
                self._advance(rng)
        elif index == self._next:
            self.items[rng.randrange(self.size)] = item
            self._weight *= math.exp(math.log(rng.random() or 1e-300) / self.size)
            self._advance(rng)

    def offer_many(self, items: list[Any], rng: random.Random) -> None:
        """`offer` each item in turn, jumping straight to the ones the skip counts pick."""
        end = self.seen + len(items)
        while self.seen < end:
            if self.seen >= self.size:
                if self._next >= end:
                    self.seen = end
                    return
                self.seen = self._next
            self.offer(items[len(items) - (end - self.seen)], rng)

    def _advance(self, rng: random.Random) -> None:
        if self._weight >= 1.0:
            self._next = self.seen
            return
        gap = math.floor(math.log(rng.random() or 1e-300) / math.log1p(-self._weight))
        self._next = self.seen + gap

    def merge(self, other: Reservoir, rng: random.Random) -> None:
        """Two uniform samples of disjoint streams -> one, each side in proportion to its stream;
        later offers then take an item with probability size/seen, as a single stream would."""
        if len(self.items) + len(other.items) <= self.size:
            self.items = self.items + other.items
        else:
            total = self.seen + other.seen
            mine = min(len(self.items), round(self.size * self.seen / total)) if total else 0
            theirs = min(len(other.items), self.size - mine)
            mine = min(len(self.items), self.size - theirs)
            self.items = rng.sample(self.items, mine) + rng.sample(other.items, theirs)
        self.seen += other.seen
        if len(self.items) < self.size:
            self._next = self.seen
        else:
            self._weight = self.size / self.seen
            self._advance(rng)

    def clear(self) -> None:
        self.items = []


@dataclass(frozen=True, order=True)
class BigKey:
    length: int  # bytes (string) or elements
    db: int
    key: str
    type: str
    memory_bytes: int | None = None
    ttl: int = -1
    node: str | None = None


@dataclass
class PatternTable:
    """Per-pattern aggregates of one database, bounded in the number of patterns."""

    rng: random.Random
    max_patterns: int = MAX_PATTERNS
    patterns: dict[str, PatternStats] = field(default_factory=dict)
    # (segment count, position, the other segments) -> the collapsed pattern that took them
    generalised: dict[tuple[int, int, tuple[str, ...]], str] = field(default_factory=dict)
    collapsed: int = 0  # patterns merged into a `{name}` or `{any}` one

    def stats_for(self, pattern: str) -> PatternStats:
        stats = self.patterns.get(pattern)
        if stats is not None:
            return stats
        if self.generalised:
            pattern = self._generalise(pattern)
            stats = self.patterns.get(pattern)
            if stats is not None:
                return stats
        if len(self.patterns) >= self.max_patterns:
            self.collapse()
            pattern = self._generalise(pattern)
            stats = self.patterns.get(pattern)
            if stats is not None:
                return stats
            if len(self.patterns) >= self.max_patterns:
                pattern = _catch_all(pattern)
                stats = self.patterns.get(pattern)
                if stats is not None:
                    return stats
        stats = self.patterns[pattern] = PatternStats(pattern)
        return stats

    def _generalise(self, pattern: str) -> str:
        segments = split_segments(pattern)
        for position in range(0, len(segments), 2):
            others = tuple(segments[:position] + segments[position + 1:])
            target = self.generalised.get((len(segments), position, others))
            if target is not None:
                return target
        return pattern

    def collapse(self) -> None:
        """Merge patterns that differ in one literal segment, when that segment took at least
        COLLAPSE_AT values (`user:alice:profile`, `user:bob:profile`… -> `user:{name}:profile`)."""
        groups: dict[tuple[int, int, tuple[str, ...]], list[str]] = {}
        for pattern in self.patterns:
            segments = split_segments(pattern)
            for position in range(0, len(segments), 2):
                if is_placeholder(segments[position]):
                    continue
                others = tuple(segments[:position] + segments[position + 1:])
                groups.setdefault((len(segments), position, others), []).append(pattern)
        for (count, position, others), members in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            alive = [m for m in members if m in self.patterns]
            if len(alive) < COLLAPSE_AT:
                continue
            segments = list(others[:position]) + ["{name}"] + list(others[position:])
            target = "".join(segments)
            merged = self.patterns.get(target) or PatternStats(target)
            for member in alive:
                merged.merge(self.patterns.pop(member), self.rng)
                self.collapsed += 1
            self.patterns[target] = merged
            self.generalised[(count, position, others)] = target


def _catch_all(pattern: str) -> str:
    segments = split_segments(pattern)
    return segments[0] + segments[1] + "{any}" if len(segments) > 1 else "{any}"


@dataclass
class DatabaseScan:
    db: int
    keys_total: int  # DBSIZE (or INFO keyspace) when the pass began
    scanned: int = 0
    complete: bool = False
    patterns: dict[str, PatternStats] = field(default_factory=dict)
    collapsed_patterns: int = 0
    keys_at_start: int | None = None  # DBSIZE before the first SCAN call and after the last one:
    keys_at_end: int | None = None  # equal to each other and to `scanned`, no key can have been counted twice
    hot_keys: list[tuple[int, str, str]] = field(default_factory=list)  # (OBJECT FREQ, key, pattern), hottest first
    freq_on_every_key: bool = False  # OBJECT FREQ read on every key (the page script), not on samples only

    @property
    def counts_exact(self) -> bool:
        """Every key counted once. SCAN returns each key present throughout at least once, and
        may return one twice when the table is resized mid-pass; with no key added or removed
        (DBSIZE unchanged, and equal to the keys read) there was none to count twice."""
        return self.complete and self.keys_at_start == self.keys_at_end == self.scanned

    @property
    def count_error(self) -> int | None:
        """How far the keys read may be from the keys there (duplicates, keys written or removed
        during the pass): the distance to DBSIZE at the start or the end, whichever is larger.
        0 when exact; None for a partial pass (its counts are extrapolated instead)."""
        if not self.complete:
            return None
        if self.counts_exact:
            return 0
        sizes = [size for size in (self.keys_at_start, self.keys_at_end) if size is not None]
        return max((abs(self.scanned - size) for size in sizes), default=None)

    @property
    def extrapolation(self) -> float:
        """Multiply scanned counts by this to estimate the whole database."""
        if self.complete or not self.scanned:
            return 1.0
        return max(1.0, self.keys_total / self.scanned)


@dataclass
class KeyspaceScan:
    """The whole pass: per database (per merged node, on a cluster) pattern aggregates."""

    databases: list[DatabaseScan]
    source: str  # masked URL of what was scanned
    db_selection: str  # why these databases: "named in the URL", "every database holding keys", "cluster"
    nodes: list[str] = field(default_factory=list)  # cluster masters scanned
    replica: bool = False
    big_keys: dict[str, list[BigKey]] = field(default_factory=dict)  # per type, biggest first
    over_threshold: dict[str, int] = field(default_factory=dict)  # per type, all keys past it
    seconds: float = 0.0
    scan_limit: int | None = None
    throttle: int | None = None
    lengths_read: bool = True  # STRLEN/HLEN/...: only when redis.big-keys is part of the run
    # What the sampled keys' access figure is: "idle" (OBJECT IDLETIME, seconds unread), "freq"
    # (OBJECT FREQ, the LFU counter, read on every key), or None (not read).
    access: str | None = None
    maxmemory_policy: str | None = None
    uptime_s: int | None = None  # idle times cannot exceed the server's uptime
    sample_every: int = 0  # one key in this many measured in the page script (0: the reservoirs only)

    @property
    def scanned(self) -> int:
        return sum(d.scanned for d in self.databases)

    @property
    def keys_total(self) -> int:
        return sum(d.keys_total for d in self.databases)

    @property
    def complete(self) -> bool:
        return all(d.complete for d in self.databases)

    def said_to(self, scope: Any) -> KeyspaceScan:
        """This pass, after telling a reading check's scope (Scope.skipped) which databases it did
        not read to the end: a check judging from a cut-short pass is partial."""
        for d in self.databases:
            if not d.complete:
                scope.skipped(
                    f"db {d.db}: {max(0, d.keys_total - d.scanned):,} of {d.keys_total:,} keys not read",
                    f"the keyspace pass stopped at scan_limit = {self.scan_limit:,} keys; its figures are extrapolated"
                    if self.scan_limit else "the keyspace pass did not finish")
        return self

    def summary(self) -> dict[str, Any]:
        """Evidence every finding built on this pass carries: what was read, and how."""
        return {
            "scanned_keys": self.scanned,
            "keys_total": self.keys_total,
            "complete": self.complete,
            "databases": [d.db for d in self.databases],
            "db_selection": self.db_selection,
            "source": self.source,
            **({"cluster_masters": self.nodes} if self.nodes else {}),
            **({"replica": True} if self.replica else {}),
            **({"scan_limit": self.scan_limit} if self.scan_limit else {}),
            **({"throttle_keys_per_s": self.throttle} if self.throttle else {}),
            "counts": self.counts_note(),
            "seconds": round(self.seconds, 2),
        }

    def counts_note(self) -> str:
        """Whether the key counts are exact, approximate (with a bound) or extrapolated."""
        if not self.complete:
            return "extrapolated from a partial pass (scan_limit)"
        if all(d.counts_exact for d in self.databases):
            return "exact: DBSIZE did not change during the pass and equals the keys read"
        errors = [d.count_error for d in self.databases]
        if None in errors:
            return "approximate: DBSIZE was not read around the pass, so duplicates from SCAN cannot be ruled out"
        error = sum(e or 0 for e in errors)
        return (f"approximate: keys were written or removed during the pass, and SCAN may return a key twice "
                f"while the table is resized; off by at most {error:,} keys overall")


@dataclass(frozen=True)
class ScanPlan:
    """How to read the keyspace (built by the redis.keyspace fact from its options)."""

    scan_limit: int | None = None  # keys, over all databases
    throttle: int | None = None  # keys per second
    count: int = 1000  # SCAN COUNT
    replica_url: str | None = None
    big_thresholds: tuple[tuple[str, int], ...] = ()  # (type, length) past which a key is big
    big_keys_kept: int = 50  # per type
    memory_sample: bool = True
    memory_samples: int = 5  # MEMORY USAGE ... SAMPLES: nested values read to estimate a collection
    sample_every: int = 100  # in the page script, one key in this many is measured (0: reservoirs only)


class _BigKeyHeap:
    def __init__(self, thresholds: dict[str, int], kept: int) -> None:
        self.thresholds = thresholds
        self.kept = kept
        self.heaps: dict[str, list[tuple[int, int, bytes, int, str]]] = {}
        self.over: dict[str, int] = {}

    def offer(self, db: int, key: bytes, kind: str, length: int, ttl: int, node: str) -> None:
        threshold = self.thresholds.get(kind)
        if threshold is None or length < threshold:
            return
        self.over[kind] = self.over.get(kind, 0) + 1
        heap = self.heaps.setdefault(kind, [])
        entry = (length, db, key, ttl, node)
        if len(heap) < self.kept:
            heapq.heappush(heap, entry)
        elif entry > heap[0]:
            heapq.heapreplace(heap, entry)


# --- The pass -----------------------------------------------------------------------------------

class Commands:
    """Runs a batch of commands in one round trip and returns the replies (errors as values).

    Used where scripting is refused (the scripted pass needs one call per page): a million
    keys then mean millions of commands, and redis-py's pipeline spends ~15 µs of Python on
    each (20 s for a million keys, against 1 s here). This packs the batch with hiredis and
    parses the replies with one hiredis reader on a connection taken from the client's pool
    (authenticated, on the right db, with its TLS): a few C calls per command. It reaches into
    redis-py's connection (`_reader`, `_writer`); without hiredis, or on a connection class
    without them, it falls back to a pipeline.
    """

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self.connection: Any = None
        self.reader: Any = None
        self.timeout = client.connection_pool.connection_kwargs.get("socket_timeout") or 30

    async def __aenter__(self) -> Commands:
        try:
            import hiredis
        except ImportError:
            return self
        connection = await self.client.connection_pool.get_connection()
        if getattr(connection, "_reader", None) is None or getattr(connection, "_writer", None) is None:
            await self.client.connection_pool.release(connection)
            return self
        self.connection = connection
        self.reader = hiredis.Reader()
        self._pack = hiredis.pack_command
        return self

    async def __aexit__(self, kind: Any, error: Any, traceback: Any) -> None:
        if self.connection is None:
            return
        if error is not None:
            # Replies may still be in flight: this connection must not serve anyone else.
            await self.connection.disconnect()
        await self.client.connection_pool.release(self.connection)
        self.connection = None

    async def run(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        return await self.receive(self.send(commands))

    def send(self, commands: list[tuple[Any, ...]]) -> Any:
        """Write the batch and return at once: the caller may work while the server does.
        Hand the result to `receive`, before sending anything else."""
        if self.connection is None:
            return commands
        self.connection._writer.write(b"".join([self._pack(c) for c in commands]))
        return len(commands)

    async def receive(self, sent: Any) -> list[Any]:
        if self.connection is None:
            return await _pipelined(self.client, sent)
        wanted: int = sent
        replies: list[Any] = []
        if not wanted:
            return replies
        stream, gets = self.connection._reader, self.reader.gets
        async with asyncio.timeout(self.timeout + wanted / 10000):
            await self.connection._writer.drain()
            while len(replies) < wanted:
                reply = gets()
                if reply is False:
                    data = await stream.read(1 << 17)
                    if not data:
                        from redis.exceptions import ConnectionError as RedisConnectionError

                        raise RedisConnectionError("connection closed by the server during the scan")
                    self.reader.feed(data)
                    continue
                replies.append(reply)
        return replies


def url_database(url: str) -> int | None:
    """The logical database a redis:// URL names (`/3` or `?db=3`), or None."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    if "db" in query and query["db"][0].isdigit():
        return int(query["db"][0])
    path = parts.path.strip("/")
    if parts.scheme in ("redis", "rediss") and path.isdigit():
        return int(path)
    return None


def keyspace_counts(info_keyspace: dict[str, Any]) -> dict[int, tuple[int, int]]:
    """INFO keyspace -> {db: (keys, expires)}."""
    counts: dict[int, tuple[int, int]] = {}
    for name, value in info_keyspace.items():
        if not str(name).startswith("db") or not isinstance(value, dict):
            continue
        counts[int(str(name)[2:])] = (int(value.get("keys", 0)), int(value.get("expires", 0)))
    return counts


class _Throttle:
    def __init__(self, keys_per_second: int | None) -> None:
        self.rate = keys_per_second
        self.started = time.monotonic()
        self.done = 0

    async def after(self, keys: int) -> None:
        self.done += keys
        if not self.rate:
            return
        ahead = self.done / self.rate - (time.monotonic() - self.started)
        if ahead > 0:
            await asyncio.sleep(ahead)


async def scan_database(
    client: aioredis.Redis,
    db: int,
    keys_total: int,
    plan: ScanPlan,
    limit: int | None,
    throttle: _Throttle,
    big: _BigKeyHeap,
    rng: random.Random,
    node: str = "",
    script: str | None = None,
    lengths: bool = True,
    access: str | None = None,
) -> DatabaseScan:
    """One logical database, `client` already selected on it (`node`: its cluster master).
    `lengths`: read each key's length too (redis.big-keys needs it; TTL coverage does not).
    `access`: "idle" (OBJECT IDLETIME) or "freq" (OBJECT FREQ, every key: an LFU policy) on
    the sampled keys, None for neither.

    With `script` ("EVAL_RO" or "EVAL"), each page is one read-only Lua call (PAGE_SCRIPT)
    that SCANs and returns the page's keys with their TYPE, TTL (and length): the cheapest
    way for the server and for this process, through redis-py's public API. Where the server
    refuses it (scripting denied by ACL, a managed Redis), the pass starts over without it.

    Without a script, per batch two requests: TYPE + TTL of the batch together with the SCAN
    for the next one, then (if wanted) the batch's length commands; they are kept in flight
    back to back and the previous batch is aggregated meanwhile.
    """
    table = PatternTable(rng)
    result = DatabaseScan(db=db, keys_total=keys_total, keys_at_start=keys_total)
    hot: list[tuple[int, bytes, str]] = []
    count = plan.count
    if throttle.rate:
        count = max(10, min(count, throttle.rate // 4))  # several small batches a second, not one burst
    if script is not None:
        try:
            await _scripted_pass(client, script, count, limit, lengths, access, plan, db, result, table, big, hot, rng,
                                 node, throttle)
            await _finish(lambda requests: _pipelined(client, requests), plan, result, table, hot, access, lengths)
            return result
        except _ScriptRefused:
            table = PatternTable(rng)
            result = DatabaseScan(db=db, keys_total=keys_total, keys_at_start=keys_total)
    async with Commands(client) as commands:
        cursor, keys = _scan_reply((await commands.run([("SCAN", b"0", "COUNT", count)]))[0])
        keys, more = _trim(keys, cursor, limit, result.scanned)
        typed = commands.send(_type_requests(keys, cursor if more else None, count))
        pending: _Batch | None = None
        while True:
            replies = await commands.receive(typed)
            next_scan = replies.pop() if more else None
            batch, length_requests = _classify(keys, replies, lengths)
            lengths_sent = commands.send(length_requests)
            scanned_before = result.scanned
            result.scanned += len(keys)
            if next_scan is not None:
                cursor, next_keys = _scan_reply(next_scan)
                next_keys, next_more = _trim(next_keys, cursor, limit, result.scanned)
                typed = commands.send(_type_requests(next_keys, cursor if next_more else None, count))
            if pending is not None:
                _aggregate(db, *pending, table, big, rng, node)
            pending = batch
            if length_requests:
                _fill_lengths(batch, await commands.receive(lengths_sent))
            await throttle.after(result.scanned - scanned_before)
            if next_scan is None:
                result.complete = cursor in (b"0", 0)
                break
            keys, more = next_keys, next_more
        if pending is not None:
            _aggregate(db, *pending, table, big, rng, node)
        await _finish(commands.run, plan, result, table, hot, access, lengths)
    return result


# One SCAN page and, per key, TYPE, TTL and (ARGV[3] = '1') the length: keys are not
# declared (they come from the SCAN), which a standalone server allows and a cluster does not.
# One key in ARGV[4] (from the ARGV[7]-th) is also measured: MEMORY USAGE with ARGV[6] SAMPLES,
# OBJECT ENCODING, and OBJECT IDLETIME (ARGV[5] = 'idle'); under an LFU policy (ARGV[5] =
# 'freq') OBJECT FREQ is read on every key. Both before the lengths: STRLEN and the like
# reset a key's idle time and bump its LFU counter (TYPE, TTL, OBJECT, MEMORY do not).
PAGE_SCRIPT = """
local call, try = redis.call, redis.pcall  -- looked up once, not per key
local page = call('SCAN', ARGV[1], 'COUNT', ARGV[2])
local keys, types, ttls, sizes = page[2], {}, {}, {}
local n, every, access = #keys, tonumber(ARGV[4]), ARGV[5]
local picked, memory, seen, encodings, freqs = {}, {}, {}, {}, {}
for i = 1, n do
  local key = keys[i]
  types[i] = call('TYPE', key)['ok']
  ttls[i] = call('TTL', key)
end
if access == 'freq' then
  for i = 1, n do
    local f = try('OBJECT', 'FREQ', keys[i])
    if type(f) == 'number' then freqs[i] = f else freqs[i] = -1 end
  end
end
if every > 0 then
  for i = tonumber(ARGV[7]) + 1, n, every do
    if types[i] ~= 'none' then
      local key, m = keys[i], #picked + 1
      picked[m] = i - 1
      local used = try('MEMORY', 'USAGE', key, 'SAMPLES', ARGV[6])
      if type(used) == 'number' then memory[m] = used else memory[m] = -1 end
      if access == 'idle' then
        local idle = try('OBJECT', 'IDLETIME', key)
        if type(idle) == 'number' then seen[m] = idle else seen[m] = -1 end
      elseif access == 'freq' then
        seen[m] = freqs[i]
      else
        seen[m] = -1
      end
      local encoding = try('OBJECT', 'ENCODING', key)
      if type(encoding) == 'string' then encodings[m] = encoding else encodings[m] = '' end
    end
  end
end
if ARGV[3] == '1' then
  local commands = {string='STRLEN', hash='HLEN', list='LLEN', set='SCARD', zset='ZCARD', stream='XLEN'}
  for i = 1, n do
    local command = commands[types[i]]
    if command then sizes[i] = call(command, keys[i]) else sizes[i] = -1 end
  end
end
return {page[1], keys, types, ttls, sizes, picked, memory, seen, encodings, freqs}
"""


class _ScriptRefused(Exception):
    """The server will not run the page script: read the keyspace with plain commands."""


async def _scripted_pass(
    client: aioredis.Redis,
    script: str,
    count: int,
    limit: int | None,
    lengths: bool,
    access: str | None,
    plan: ScanPlan,
    db: int,
    result: DatabaseScan,
    table: PatternTable,
    big: _BigKeyHeap,
    hot: list[tuple[int, bytes, str]],
    rng: random.Random,
    node: str,
    throttle: _Throttle,
) -> None:
    from redis.exceptions import ResponseError

    every = plan.sample_every if plan.memory_sample or access else 0

    async def page(cursor: Any, position: int) -> Any:
        # The stride runs across pages: key number `position` of the pass starts this page.
        first = (-position) % every if every else 0
        return await client.execute_command(
            script, PAGE_SCRIPT, 0, cursor, count, 1 if lengths else 0, every, access or "", plan.memory_samples, first)

    try:
        reply = await page(b"0", 0)
    except ResponseError as error:
        raise _ScriptRefused(str(error)) from error
    following: asyncio.Future[Any] | None = None
    result.freq_on_every_key = access == "freq"
    try:
        while True:
            cursor, keys, kinds, ttls, sizes, picked, memory, seen, encodings, freqs = reply
            keys, more = _trim(keys, cursor, limit, result.scanned)
            if more:
                # The next page goes out now: the server reads it while this one is aggregated.
                following = asyncio.ensure_future(page(cursor, result.scanned + len(keys)))
                await asyncio.sleep(0)
            kept = len(keys)
            samples = None
            if picked:
                inside = [n for n, index in enumerate(picked) if index < kept]
                samples = ([picked[n] for n in inside], [memory[n] for n in inside], [seen[n] for n in inside],
                           [encodings[n] for n in inside])
            _aggregate(db, keys, kinds[:kept], ttls[:kept], sizes[:kept] if lengths else None,
                       table, big, rng, node, samples, freqs[:kept] if freqs else None, hot)
            result.scanned += len(keys)
            await throttle.after(len(keys))
            if following is None:
                result.complete = cursor in (b"0", 0)
                return
            reply = await following
            following = None
    finally:
        if following is not None:
            following.cancel()


def _trim(keys: list[bytes], cursor: Any, limit: int | None, scanned: int) -> tuple[list[bytes], bool]:
    """The batch cut to the scan limit, and whether another SCAN call follows it."""
    if limit is not None and scanned + len(keys) > limit:
        keys = keys[: max(0, limit - scanned)]
    more = cursor not in (b"0", 0) and (limit is None or scanned + len(keys) < limit)
    return keys, more


def _type_requests(keys: list[bytes], next_cursor: Any, count: int) -> list[tuple[Any, ...]]:
    requests: list[tuple[Any, ...]] = []
    for key in keys:
        requests.append(("TYPE", key))
        requests.append(("TTL", key))
    if next_cursor is not None:
        requests.append(("SCAN", next_cursor, "COUNT", count))
    return requests


async def _pipelined(client: aioredis.Redis, requests: list[tuple[Any, ...]]) -> list[Any]:
    """The requests in one redis-py pipeline, errors returned as values."""
    if not requests:
        return []
    pipe = client.pipeline(transaction=False)
    for request in requests:
        pipe.execute_command(*request)
    return await pipe.execute(raise_on_error=False)


RunCommands = Callable[[list[tuple[Any, ...]]], Awaitable[list[Any]]]


async def _finish(
    run: RunCommands,
    plan: ScanPlan,
    result: DatabaseScan,
    table: PatternTable,
    hot: list[tuple[int, bytes, str]],
    access: str | None,
    lengths: bool,
) -> None:
    """Totals, the samples of patterns the page stride missed, and the aggregates handed over."""
    [size] = await run([("DBSIZE",)])
    result.keys_at_end = size if isinstance(size, int) else None
    if result.complete:
        # Keys written during the pass make DBSIZE at its start a floor, not the total.
        result.keys_total = max(result.keys_total, result.scanned)
    if plan.memory_sample:
        # Idle times read now would be our own: this pass's length reads touched every key.
        await _measure_samples(run, table.patterns.values(), plan.memory_samples, None if lengths else access, table.rng,
                               hot if not result.freq_on_every_key else None)
    for stats in table.patterns.values():
        stats.key_reservoir.clear()  # measured (or not wanted): the keys themselves are not kept
    result.patterns = table.patterns
    result.collapsed_patterns = table.collapsed
    result.hot_keys = [(freq, display_key(key), pattern) for freq, key, pattern in sorted(hot, reverse=True)]


def _scan_reply(reply: Any) -> tuple[Any, list[bytes]]:
    if isinstance(reply, Exception):
        raise reply
    return reply[0], reply[1]


# keys, types, TTLs, lengths (-1 where not read): parallel lists of the keys still there
_Batch = tuple[list[bytes], list[bytes], list[int], list[int] | None]


def _classify(keys: list[bytes], replies: list[Any], lengths: bool) -> tuple[_Batch, list[tuple[Any, ...]]]:
    """TYPE and TTL replies -> the keys still there, and (if wanted) one length command for
    each key of a type that has one, in order."""
    kept, kinds, ttls = [], [], []
    for key, kind, ttl in zip(keys, replies[::2], replies[1::2]):
        if not isinstance(kind, bytes) or kind == b"none" or not isinstance(ttl, int) or ttl == -2:
            continue  # deleted or expired between SCAN and TYPE/TTL
        kept.append(key)
        kinds.append(kind)
        ttls.append(ttl)
    if not lengths:
        return (kept, kinds, ttls, None), []
    requests = [(LENGTH_COMMAND[name], key) for key, kind in zip(kept, kinds) if (name := type_name(kind)) in LENGTH_COMMAND]
    return (kept, kinds, ttls, [-1] * len(kept)), requests


def _fill_lengths(batch: _Batch, replies: list[Any]) -> None:
    """The length replies, in the order `_classify` asked for them, into the batch."""
    _, kinds, _, sizes = batch
    assert sizes is not None
    answers = iter(replies)
    for index, kind in enumerate(kinds):
        if type_name(kind) in LENGTH_COMMAND:
            reply = next(answers)
            if isinstance(reply, int):
                sizes[index] = reply


def _aggregate(
    db: int,
    keys: list[bytes],
    kinds: list[bytes],
    ttls: list[int],
    sizes: list[int] | None,
    table: PatternTable,
    big: _BigKeyHeap,
    rng: random.Random,
    node: str,
    samples: tuple[list[int], list[int], list[int], list[Any]] | None = None,
    freqs: list[int] | None = None,
    hot: list[tuple[int, bytes, str]] | None = None,
) -> None:
    """One batch into the pattern table (grouped by pattern first) and the big-key heaps.
    `samples`: (indexes into the batch, MEMORY USAGE, idle time or freq, encoding) of the keys
    the page script measured; `freqs`: OBJECT FREQ of every key (LFU), for the hot-key heap."""
    if b"none" in kinds or -2 in ttls:  # expired or deleted between SCAN and TYPE
        live = [i for i, (kind, ttl) in enumerate(zip(kinds, ttls)) if kind != b"none" and ttl != -2]
        keys, kinds, ttls = [keys[i] for i in live], [kinds[i] for i in live], [ttls[i] for i in live]
        sizes = [sizes[i] for i in live] if sizes is not None else None
        freqs = [freqs[i] for i in live] if freqs is not None else None
        if samples is not None:
            moved = {old: new for new, old in enumerate(live)}
            inside = [n for n, index in enumerate(samples[0]) if index in moved]
            indexes, usage, idle, encodings = samples
            samples = ([moved[indexes[n]] for n in inside], [usage[n] for n in inside], [idle[n] for n in inside],
                       [encodings[n] for n in inside])
    if not keys:
        return
    groups: dict[str, list[int]] = {}
    patterns = list(map(infer_pattern, keys))
    for index, pattern in enumerate(patterns):
        group = groups.get(pattern)
        if group is None:
            groups[pattern] = [index]
        else:
            group.append(index)
    for pattern, indexes in groups.items():
        stats = table.stats_for(pattern)
        if len(indexes) == len(keys):
            stats.add_batch(keys, kinds, ttls, sizes, rng)
            continue
        stats.add_batch(
            [keys[i] for i in indexes],
            [kinds[i] for i in indexes],
            [ttls[i] for i in indexes],
            [sizes[i] for i in indexes] if sizes is not None else None,
            rng,
        )
    if sizes is not None and big.thresholds:
        smallest = min(big.thresholds.values())
        for index in [i for i, size in enumerate(sizes) if size >= smallest]:
            big.offer(db, keys[index], type_name(kinds[index]), sizes[index], ttls[index], node)
    if samples is not None:
        for index, used, seen, encoding in zip(*samples):
            table.stats_for(patterns[index]).add_samples([used], [seen], [encoding], rng)
    if freqs is not None and hot is not None:
        floor = hot[0][0] if len(hot) >= HOT_KEYS_KEPT else -1
        for index in [i for i, freq in enumerate(freqs) if freq > floor]:
            _offer_hot(hot, (freqs[index], keys[index], patterns[index]))


def _offer_hot(hot: list[tuple[int, bytes, str]], entry: tuple[int, bytes, str]) -> None:
    if len(hot) < HOT_KEYS_KEPT:
        heapq.heappush(hot, entry)
    elif entry > hot[0]:
        heapq.heapreplace(hot, entry)


async def _measure_samples(
    run: RunCommands,
    patterns: Iterable[PatternStats],
    samples: int,
    access: str | None,
    rng: random.Random,
    hot: list[tuple[int, bytes, str]] | None = None,
) -> None:
    """For each pattern the page stride measured fewer keys of than its reservoir holds (small
    patterns, and every pattern without the page script): that uniform sample instead, with
    MEMORY USAGE, OBJECT ENCODING and (`access`) OBJECT IDLETIME or FREQ. A key gone since is
    skipped."""
    chosen = [stats for stats in patterns if stats.memory_sampled_keys < len(stats.key_sample)]
    for stats in chosen:
        # Idle times the page script read before any length read stand when none can be read now.
        stats.reset_samples(access=access is not None)
    probes = [(stats, key) for stats in chosen for key in stats.key_sample]
    per_key = 3 if access else 2
    for start in range(0, len(probes), 500):
        batch = probes[start:start + 500]
        requests: list[tuple[Any, ...]] = []
        for _, key in batch:
            requests.append(("MEMORY", "USAGE", key, "SAMPLES", samples))
            requests.append(("OBJECT", "ENCODING", key))
            if access:
                requests.append(("OBJECT", "IDLETIME" if access == "idle" else "FREQ", key))
        replies = await run(requests)
        for number, (stats, key) in enumerate(batch):
            used, encoding, *seen = replies[number * per_key:(number + 1) * per_key]
            if not isinstance(used, int):
                continue  # gone since, or MEMORY refused
            figure = seen[0] if seen and isinstance(seen[0], int) else -1
            stats.add_samples([used], [figure], [encoding if isinstance(encoding, (bytes, str)) else ""], rng)
            if hot is not None and access == "freq" and figure >= 0:
                _offer_hot(hot, (figure, key, stats.pattern))


async def _big_keys(
    clients: dict[tuple[str, int], aioredis.Redis], kind: str, heap: list[tuple[int, int, bytes, int, str]], measure: bool
) -> list[BigKey]:
    """The kept big keys of one type, biggest first, with MEMORY USAGE where it answers."""
    result = []
    for length, db, key, ttl, node in sorted(heap, reverse=True):
        used = None
        client = clients.get((node, db))
        if measure and client is not None:
            try:
                used = await client.execute_command("MEMORY USAGE", key)
            except Exception:  # MEMORY not allowed for this user: the length still stands
                used = None
        result.append(BigKey(length, db, display_key(key), kind, used if isinstance(used, int) else None, ttl, node or None))
    return result


def client_for(base: aioredis.Redis, **overrides: Any) -> aioredis.Redis:
    """A client with `base`'s settings (credentials, timeouts, TLS) but another db or host."""
    import redis.asyncio as aioredis

    kwargs = dict(base.connection_pool.connection_kwargs)
    kwargs.update(overrides)
    connection_class = base.connection_pool.connection_class
    # One connection, as the target's own session: the server budget counts sessions.
    kwargs.pop("max_connections", None)
    kwargs.pop("timeout", None)
    pool = aioredis.BlockingConnectionPool(connection_class=connection_class, max_connections=1, timeout=None, **kwargs)
    return aioredis.Redis.from_pool(pool)


async def cluster_masters(client: aioredis.Redis) -> list[tuple[str, int]]:
    """Every master of a Redis Cluster that is not failed, from CLUSTER NODES."""
    raw = await client.execute_command("CLUSTER", "NODES")
    masters: list[tuple[str, int]] = []
    if isinstance(raw, dict):  # redis-py parsed it: {"host:port": {"flags": ...}}
        for address, node in raw.items():
            node_flags = str(node.get("flags", ""))
            if "master" in node_flags and "fail" not in node_flags and "noaddr" not in node_flags:
                host, _, port = address.rpartition(":")
                masters.append((host, int(port.split("@")[0])))
        return sorted(masters)
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        flags = fields[2].split(",")
        if "master" not in flags or "fail" in flags or "noaddr" in flags:
            continue
        address = fields[1].split("@")[0].split(",")[0]
        host, _, port = address.rpartition(":")
        masters.append((host, int(port)))
    return sorted(masters)


async def scan_keyspace(
    session: Any, plan: ScanPlan, target_url: str, password: str | None = None, lengths: bool = True
) -> KeyspaceScan:
    """The whole pass: the named database, every database holding keys, or every master.
    `lengths`: read each key's length too (redis.big-keys needs it)."""
    import redis.asyncio as aioredis

    started = time.monotonic()
    rng = random.Random(0x5CA7)
    big = _BigKeyHeap(dict(plan.big_thresholds), plan.big_keys_kept)
    throttle = _Throttle(plan.throttle)
    base: aioredis.Redis = session.client
    owned: list[aioredis.Redis] = []
    source = mask_url(target_url)
    replica = False
    if plan.replica_url:
        overrides: dict[str, Any] = {}
        if password and not urlsplit(plan.replica_url).password:
            overrides["password"] = password
        kwargs = dict(base.connection_pool.connection_kwargs)
        base = aioredis.Redis.from_url(
            plan.replica_url,
            socket_timeout=kwargs.get("socket_timeout"),
            socket_connect_timeout=kwargs.get("socket_connect_timeout"),
            client_name="dbvitals",
            **overrides,
        )
        owned.append(base)
        source, replica = mask_url(plan.replica_url), True
    clients: dict[tuple[str, int], aioredis.Redis] = {}
    try:
        info = await base.info()
        policy = str(info.get("maxmemory_policy", "")) or None
        # Under an LFU policy the server tracks access frequency, not idle time (and refuses IDLETIME).
        access = "freq" if policy and "lfu" in policy else "idle"
        databases: list[DatabaseScan] = []
        nodes: list[str] = []
        if info.get("redis_mode") == "cluster":
            selection = "cluster: db 0 of every master"
            masters = await cluster_masters(base)
            nodes = [f"{host}:{port}" for host, port in masters]
            per_node = [client_for(base, host=host, port=port, db=0) for host, port in masters]
            owned.extend(per_node)
            sizes = [int(await c.dbsize()) for c in per_node]
            limits = _apportion(plan.scan_limit, sizes)
            # One budget for all masters: each node's pass counts against the same rate.
            rate_share = throttle
            node_scans = await asyncio.gather(*(
                scan_database(c, 0, size, plan, limit, rate_share, big, rng, name, lengths=lengths, access=access)
                for c, size, limit, name in zip(per_node, sizes, limits, nodes)
            ))
            for name, client in zip(nodes, per_node):
                clients[(name, 0)] = client
            databases = [merge_databases(list(node_scans), rng)] if node_scans else []
        else:
            # Read-only Lua per page; a cluster refuses keys outside the script's slots, so not there.
            major = str(info.get("redis_version", "0")).split(".")[0]
            script = "EVAL_RO" if major.isdigit() and int(major) >= 7 else "EVAL"
            named = url_database(target_url)
            counts = keyspace_counts(await base.info("keyspace"))
            if named is not None:
                selection = f"db {named}, named in the URL"
                chosen = [(named, counts.get(named, (0, 0))[0])]
            else:
                selection = "every database holding keys (INFO keyspace)"
                chosen = sorted((db, keys) for db, (keys, _) in counts.items() if keys > 0)
            limits = _apportion(plan.scan_limit, [keys for _, keys in chosen])
            for (db, keys), limit in zip(chosen, limits):
                client = base if int(base.connection_pool.connection_kwargs.get("db", 0) or 0) == db else client_for(base, db=db)
                if client is not base:
                    owned.append(client)
                clients[("", db)] = client
                databases.append(
                    await scan_database(client, db, keys, plan, limit, throttle, big, rng, "", script, lengths, access))
        big_keys = {kind: await _big_keys(clients, kind, heap, plan.memory_sample) for kind, heap in big.heaps.items()}
        return KeyspaceScan(
            databases=databases,
            source=source,
            db_selection=selection,
            nodes=nodes,
            replica=replica,
            big_keys=big_keys,
            over_threshold=dict(big.over),
            seconds=time.monotonic() - started,
            scan_limit=plan.scan_limit,
            throttle=plan.throttle,
            lengths_read=lengths,
            access=access,
            maxmemory_policy=policy,
            uptime_s=int_or_none(info.get("uptime_in_seconds")),
            sample_every=plan.sample_every if plan.memory_sample else 0,
        )
    finally:
        for client in owned:
            await client.aclose()



def _apportion(limit: int | None, sizes: list[int]) -> list[int | None]:
    """Split a scan limit over databases in proportion to their sizes (each gets at least 1)."""
    if not limit:
        return [None] * len(sizes)
    total = sum(sizes)
    if total <= limit:
        return [None] * len(sizes)
    return [max(1, -(-limit * size // total)) for size in sizes]


def merge_databases(scans: list[DatabaseScan], rng: random.Random) -> DatabaseScan:
    """One database's view from several nodes (a cluster's masters): aggregates merged per pattern."""
    merged = DatabaseScan(db=scans[0].db, keys_total=sum(s.keys_total for s in scans))
    merged.scanned = sum(s.scanned for s in scans)
    merged.complete = all(s.complete for s in scans)
    merged.collapsed_patterns = sum(s.collapsed_patterns for s in scans)
    for side in ("keys_at_start", "keys_at_end"):
        sizes = [getattr(s, side) for s in scans]
        setattr(merged, side, None if None in sizes else sum(sizes))
    merged.hot_keys = sorted((entry for s in scans for entry in s.hot_keys), reverse=True)[:HOT_KEYS_KEPT]
    merged.freq_on_every_key = all(s.freq_on_every_key for s in scans)
    for scan in scans:
        for pattern, stats in scan.patterns.items():
            existing = merged.patterns.get(pattern)
            if existing is None:
                merged.patterns[pattern] = stats
            else:
                existing.merge(stats, rng)
    return merged
