"""What the two TTL checks share: time-like field names, declared retention rules, and the
count of documents a TTL pass would delete at once."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from checks.config import TtlExpectation
from checks.mongodb._inventory import (
    OWN_COMMENT,
    CollectionInfo,
    OverBudget,
    bson_type,
    budgeted,
    format_seconds,
    inventory,
    sample,
)

# Names that usually hold a point in time. Preferred first when choosing a TTL field.
EXPIRY_NAME = re.compile(r"^(expires?|expiry|expiration|expire)(At|_at|On|_on|Date|_date|Time|_time)?$", re.I)
TIME_NAMES = (
    re.compile(r"^(created|inserted|recorded|logged)(At|_at|On|_on|Date|_date|Time|_time)?$", re.I),
    re.compile(r"^(ts|timestamp|time|date|datetime|occurred_?at|event_?time)$", re.I),
    re.compile(r"^(finished|completed|resolved|ended|closed|processed|sent|deleted)(At|_at|On|_on|Date|_date)$", re.I),
    re.compile(r"^(updated|modified|last_?seen|last_?active)(At|_at|On|_on|Date|_date|Time|_time)?$", re.I),
    re.compile(r"(At|_at|Date|_date|Time|_time|Timestamp|_ts)$"),
)
TTL_MONITOR = "the TTL monitor runs every 60 s on the primary and deletes every expired document it finds"


def time_name_rank(name: str) -> int | None:
    """How much a field name looks like a time to expire on: 0 best; None for other names."""
    if EXPIRY_NAME.match(name):
        return 0
    for rank, pattern in enumerate(TIME_NAMES, 1):
        if pattern.search(name) if rank == len(TIME_NAMES) else pattern.match(name):
            return rank
    return None


def is_expiry_field(name: str) -> bool:
    """A field holding the expiry moment itself: its TTL is expireAfterSeconds = 0."""
    return bool(EXPIRY_NAME.match(name))


@dataclass(frozen=True)
class RuleTarget:
    rule: TtlExpectation
    database: str
    info: CollectionInfo | None  # None: the collection does not exist

    @property
    def seconds(self) -> int:
        assert self.rule.after is not None
        return int(self.rule.after.total_seconds())


def mongo_rules(config: Any) -> list[TtlExpectation]:
    return [r for r in config.expect.ttl if r.collection is not None]


def resolve_rules(
    rules: list[TtlExpectation], default_database: str | None, infos: dict[str, dict[str, CollectionInfo]]
) -> list[RuleTarget]:
    """Each MongoDB retention rule with the database it applies to (named, the URL's, or the
    one holding the collection)."""
    resolved = []
    for rule in rules:
        database = rule.database or default_database
        if database is None:
            holding = [db for db, colls in infos.items() if rule.collection in colls]
            database = holding[0] if holding else next(iter(infos), None)
        if database is not None:
            resolved.append(RuleTarget(rule, database, infos.get(database, {}).get(str(rule.collection))))
    return resolved


async def rules_and_inventory(
    session: Any, config: Any
) -> tuple[list[RuleTarget], dict[str, dict[str, CollectionInfo]]]:
    """The target's retention rules resolved to databases, and the inventory of every database
    the checks look at (the URL's or all, plus any a rule names)."""
    rules = mongo_rules(config)
    named = [r.database for r in rules if r.database]
    databases = dict.fromkeys([*await session.databases(), *named])
    infos = {db: {i.name: i for i in await inventory(session, db)} for db in databases}
    return resolve_rules(rules, session.default_database, infos), infos


def ttl_spec(field: str, seconds: int, partial: dict[str, Any] | None, direction: int = 1) -> dict[str, Any]:
    key = {field: direction}
    spec: dict[str, Any] = {"key": key, "name": f"{field}_{direction}_ttl", "expireAfterSeconds": seconds}
    if partial:
        spec["partialFilterExpression"] = partial
    return spec


def older_than(seconds: float) -> str:
    """What a TTL of `seconds` deletes, said of the date field: "older than 1h"; with 0 (expire at
    the date the field holds) "in the past", never "older than 0s"."""
    return f"older than {format_seconds(seconds)}" if round(seconds) > 0 else "in the past"


@dataclass(frozen=True)
class Expiring:
    """Documents older than a TTL cutoff: what the first TTL pass deletes at once."""

    documents: int | None  # None: could not be counted
    exact: bool
    basis: str

    def describe(self) -> str:
        if self.documents is None:
            return f"an unknown number of documents ({self.basis})"
        about = "" if self.exact else "about "
        return f"{about}{self.documents:,} documents ({self.basis})"


async def count_expiring(
    session: Any,
    info: CollectionInfo,
    field: str,
    seconds: int,
    filter_: dict[str, Any] | None,
    *,
    exact_limit: int,
    sample_size: int,
    budget: float,
) -> Expiring:
    """Exact when an index leads with the field or the collection is small; otherwise estimated
    from the bounded sample the checks share, so a 100-million-document collection is never
    scanned. `info` carries the count (`counted`); every call is budgeted."""
    cutoff = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=seconds)
    query = {**(filter_ or {}), field: {"$lt": cutoff}}
    coll = session.client[info.database][info.name]
    indexed = any(i.fields[:1] == (field,) for i in info.indexes)
    older = older_than(seconds)
    try:
        if indexed or (info.count is not None and info.count <= exact_limit):
            n = await budgeted(session, "counting them", budget, lambda: coll.count_documents(query, comment=OWN_COMMENT))
            return Expiring(n, True, f"{older}, counted")
        if info.count is None:
            return Expiring(None, False, f"{older}; the collection's size is unknown: {info.unknown}")
        drawn = await sample(session, info, sample_size, budget)
        if drawn.unknown:
            return Expiring(None, False, f"{older}; {drawn.unknown}")
        matches = literal_matcher(filter_ or {})
        if matches is not None and drawn.documents:
            matched = sum(1 for doc in drawn.drawn if matches(doc) and _before(doc.get(field), cutoff))
            size = drawn.documents
        else:  # a filter with operators: let the server match it, on the sampled documents (by _id)
            ids = [doc["_id"] for doc in drawn.drawn]

            async def run() -> int:
                return int(await coll.count_documents({"$and": [{"_id": {"$in": ids}}, query]}, comment=OWN_COMMENT))

            matched = await budgeted(session, "a sampled count", budget, run)
            size = drawn.documents
        estimate = round(matched / size * info.count) if info.count and size else 0
        return Expiring(estimate, False, f"{older}, estimated from {size} sampled documents ({drawn.method})")
    except OverBudget as exc:  # a count that times out leaves the figure unknown, not wrong
        return Expiring(None, False, f"{older}; {exc.reason}")
    except Exception as exc:
        return Expiring(None, False, f"count failed: {type(exc).__name__}")


def literal_matcher(filter_: dict[str, Any]) -> Callable[[dict[str, Any]], bool] | None:
    """A Python test for a filter of top-level literal equalities ({status: "failed"}); None
    for anything with operators, which only the server evaluates faithfully."""
    if any(k.startswith("$") or isinstance(v, (dict, list, re.Pattern)) for k, v in filter_.items()):
        return None
    return lambda doc: all(doc.get(k) == v for k, v in filter_.items())


def _before(value: Any, cutoff: dt.datetime) -> bool:
    if not isinstance(value, dt.datetime):
        return False
    return (value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)) < cutoff


def first_pass_warning(expiring: Expiring) -> str:
    return (
        f"The first TTL pass deletes {expiring.describe()} at once: {TTL_MONITOR}, so expect a burst of "
        "deletes, oplog and replication traffic and cache churn. On a large backlog, delete old documents in "
        "batches first, or start with a longer expireAfterSeconds and lower it step by step."
    )


# The partial filter language: equality, $exists, $gt/$gte/$lt/$lte, $type, $in, $and, $or.
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": lambda a, b: a > b, "$gte": lambda a, b: a >= b, "$lt": lambda a, b: a < b, "$lte": lambda a, b: a <= b,
}


def partial_filter_matcher(expr: dict[str, Any]) -> Callable[[dict[str, Any]], bool] | None:
    """A Python test for a partialFilterExpression on top-level fields, so the sampled documents
    it selects are counted without another server call; None for anything outside that
    language (or on dotted paths), which is then reported unknown."""
    tests: list[Callable[..., bool]] = []  # each called with a document; default arguments bind the loop's values
    for name, cond in expr.items():
        if name in ("$and", "$or") and isinstance(cond, list):
            parts = [partial_filter_matcher(p) if isinstance(p, dict) else None for p in cond]
            if any(p is None for p in parts):
                return None
            combine = all if name == "$and" else any
            tests.append(lambda doc, parts=parts, combine=combine: combine(p(doc) for p in parts))
            continue
        if name.startswith("$") or "." in name:
            return None
        if not (isinstance(cond, dict) and cond and all(str(k).startswith("$") for k in cond)):
            tests.append(lambda doc, name=name, cond=cond: doc.get(name) == cond)
            continue
        for op, operand in cond.items():
            if op == "$eq":
                tests.append(lambda doc, name=name, v=operand: doc.get(name) == v)
            elif op == "$exists":
                tests.append(lambda doc, name=name, v=bool(operand): (name in doc) == v)
            elif op == "$in" and isinstance(operand, list):
                tests.append(lambda doc, name=name, v=operand: doc.get(name) in v)
            elif op == "$type":
                wanted = set(operand) if isinstance(operand, list) else {operand}
                tests.append(lambda doc, name=name, v=wanted: name in doc and bson_type(doc[name]) in v)
            elif op in _COMPARE:
                tests.append(lambda doc, name=name, op=op, v=operand: _compares(doc.get(name), v, _COMPARE[op]))
            else:
                return None
    return lambda doc: all(t(doc) for t in tests)


def _compares(value: Any, operand: Any, compare: Callable[[Any, Any], bool]) -> bool:
    """BSON compares only within a type family (numbers together, dates together)."""
    if isinstance(value, dt.datetime) and isinstance(operand, dt.datetime):
        aware = [v if v.tzinfo else v.replace(tzinfo=dt.timezone.utc) for v in (value, operand)]
        return compare(*aware)
    numbers = (int, float)
    if isinstance(value, numbers) and isinstance(operand, numbers) and not isinstance(value, bool):
        return compare(value, operand)
    if isinstance(value, str) and isinstance(operand, str):
        return compare(value, operand)
    return False
