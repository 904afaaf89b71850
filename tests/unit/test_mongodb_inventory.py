"""The MongoDB pack's shared pure helpers: query shapes, the ESR rule, BSON types, index specs, and
which timed-out calls are retried."""

from __future__ import annotations

import asyncio
import datetime as dt
import re

import pytest
from bson import Decimal128, Int64, ObjectId
from pymongo.errors import ExecutionTimeout, OperationFailure

from checks.mongodb._inventory import (
    OverBudget,
    budgeted,
    bson_type,
    IndexSpec,
    coverage,
    SAMPLE_RUNS,
    esr_index,
    format_seconds,
    key_serves,
    query_shape,
    seeded_runs,
    seeded_starts,
    summarise,
)
from checks.mongodb._ttl import is_expiry_field, time_name_rank


@pytest.mark.parametrize(
    "filter_, shape",
    [
        ({"email": "a@b", "status": "active"}, {"email": "?", "status": "?"}),
        ({"status": "x", "email": "y"}, {"email": "?", "status": "?"}),  # field order does not make a new shape
        ({"age": {"$gt": 3, "$lt": 9}}, {"age": {"$gt": "?", "$lt": "?"}}),
        ({"tag": {"$in": [1, 2, 3]}}, {"tag": {"$in": ["?"]}}),
        ({"$or": [{"a": 1}, {"b": {"$exists": True}}]}, {"$or": [{"a": "?"}, {"b": {"$exists": "?"}}]}),
        ({"meta": {"k": 1}}, {"meta": "?"}),  # an embedded-document equality is one literal
        ({"items": {"$elemMatch": {"sku": "x", "qty": {"$gte": 2}}}}, {"items": {"$elemMatch": {"qty": {"$gte": "?"}, "sku": "?"}}}),
        ({}, {}),
    ],
)
def test_query_shape(filter_, shape):
    assert query_shape(filter_) == shape


@pytest.mark.parametrize(
    "filter_, sort, key, words",
    [
        # The login: three equalities, in the filter's order.
        ({"email": "a", "status": "active", "banned": False}, None, {"email": 1, "status": 1, "banned": 1}, "equality (email, status, banned)"),
        # The wallet history: equality, then the sort in its direction.
        ({"userId": 1, "status": "done"}, {"createdAt": -1}, {"userId": 1, "status": 1, "createdAt": -1}, "then sort (createdAt descending)"),
        # A range goes after the sort, so the index returns documents in order.
        ({"userId": 1, "amount": {"$gt": 5}}, {"createdAt": -1}, {"userId": 1, "createdAt": -1, "amount": 1}, "then range (amount)"),
        # $in without a sort is an equality...
        ({"status": {"$in": ["a", "b"]}, "userId": 1}, None, {"status": 1, "userId": 1}, "equality (status, userId)"),
        # ...and a range with one: its key ranges are not in sort order together.
        ({"status": {"$in": ["a", "b"]}, "userId": 1}, {"ts": 1}, {"userId": 1, "ts": 1, "status": 1}, "range (status)"),
        # A one-element $in is an equality.
        ({"status": {"$in": ["a"]}}, {"ts": 1}, {"status": 1, "ts": 1}, "equality (status)"),
        # A field both filtered by equality and sorted needs no sort key.
        ({"userId": 1}, {"userId": 1, "ts": -1}, {"userId": 1, "ts": -1}, "sort (ts descending)"),
        # A top-level $and is flattened.
        ({"$and": [{"a": 1}, {"b": {"$lt": 2}}]}, None, {"a": 1, "b": 1}, "equality (a) then range (b)"),
        # Only a sort.
        ({}, {"createdAt": -1}, {"createdAt": -1}, "sort (createdAt descending)"),
        ({"name": re.compile("^ab")}, None, {"name": 1}, "range (name)"),
    ],
)
def test_esr_order(filter_, sort, key, words):
    suggestion = esr_index(filter_, sort)
    assert suggestion is not None
    assert list(suggestion.key.items()) == list(key.items())
    assert words in suggestion.order


def test_esr_says_when_the_range_could_go_first():
    suggestion = esr_index({"userId": 1, "amount": {"$gt": 5}}, {"createdAt": -1})
    assert "sort is placed before range" in suggestion.order
    assert list(suggestion.alternative.items()) == [("userId", 1), ("amount", 1), ("createdAt", -1)]


@pytest.mark.parametrize("filter_", [{"$or": [{"a": 1}, {"b": 2}]}, {"$expr": {"$gt": ["$a", "$b"]}}, {"$where": "x"}, {}])
def test_no_single_index_for(filter_):
    assert esr_index(filter_, None) is None


@pytest.mark.parametrize(
    "index_key, wanted, serves",
    [
        ((("a", 1), ("b", 1), ("c", 1)), {"a": 1, "b": 1}, True),
        ((("a", -1), ("b", -1)), {"a": 1, "b": 1}, True),  # fully reversed: walked backwards
        ((("a", 1), ("b", -1)), {"a": 1, "b": 1}, False),
        ((("b", 1), ("a", 1)), {"a": 1, "b": 1}, False),
        ((("a", 1),), {"a": 1, "b": 1}, False),
    ],
)
def test_key_serves(index_key, wanted, serves):
    assert key_serves(index_key, wanted) is serves


@pytest.mark.parametrize(
    "value, alias",
    [
        (None, "null"), (True, "bool"), (1, "int"), (2**40, "long"), (Int64(3), "long"), (1.5, "double"),
        ("x", "string"), (dt.datetime(2024, 1, 1), "date"), (ObjectId(), "objectId"), ({}, "object"), ([], "array"),
        (b"x", "binData"), (Decimal128("1.1"), "decimal"),
    ],
)
def test_bson_type(value, alias):
    assert bson_type(value) == alias


def test_summarise_counts_types_and_date_range():
    old, new = dt.datetime(2020, 1, 1), dt.datetime(2024, 1, 1)
    drawn = summarise("db", "c", [{"t": old, "u": "a"}, {"t": new, "u": ObjectId()}, {"t": "2021-01-01"}])
    assert drawn.documents == 3
    assert drawn.fields["t"].types == {"date": 2, "string": 1}
    assert drawn.fields["t"].oldest == old.replace(tzinfo=dt.timezone.utc)
    assert drawn.fields["t"].newest == new.replace(tzinfo=dt.timezone.utc)
    assert drawn.fields["u"].present == 2
    assert drawn.fields["t"].share("date") == pytest.approx(2 / 3)


def test_index_spec_from_listindexes_document():
    spec = IndexSpec.from_document(
        {"v": 2, "key": {"createdAt": 1.0}, "name": "createdAt_1", "expireAfterSeconds": 3600.0, "ns": "x.y"}
    )
    assert spec.key == (("createdAt", 1),)
    assert spec.is_ttl and spec.is_plain and not spec.unique
    assert spec.create_spec() == {"key": {"createdAt": 1}, "name": "createdAt_1", "expireAfterSeconds": 3600}
    assert not IndexSpec.from_document({"key": {"body": "text"}, "name": "t"}).is_plain


@pytest.mark.parametrize("seconds, text", [(30 * 86400, "30d"), (3600, "1h"), (90, "1m30s"), (0, "0s"), (86400 + 7200, "1d2h")])
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text


@pytest.mark.parametrize(
    "name, ranked",
    [("expiresAt", 0), ("createdAt", 1), ("created_at", 1), ("ts", 2), ("timestamp", 2), ("resolvedAt", 3),
     ("updatedAt", 4), ("shippedAt", 5), ("status", None), ("userId", None)],
)
def test_time_name_rank(name, ranked):
    assert time_name_rank(name) == ranked


def test_expiry_fields_expire_at_their_own_time():
    assert is_expiry_field("expiresAt") and is_expiry_field("expiry_date") and not is_expiry_field("createdAt")


@pytest.mark.parametrize(
    "filter_, doc, matches",
    [({}, {"a": 1}, True), ({"status": "failed"}, {"status": "failed"}, True), ({"status": "failed"}, {"status": "ok"}, False),
     ({"status": {"$in": ["failed"]}}, {"status": "failed"}, None)],
)
def test_literal_matcher_handles_only_literal_equalities(filter_, doc, matches):
    from checks.mongodb._ttl import literal_matcher

    matcher = literal_matcher(filter_)
    assert (None if matcher is None else matcher(doc)) == matches


# --- budgeted calls: a timeout or a failure is the figure's reason, never retried -------------------

class _Session:
    """What the inventory keys its per-session state on; the calls below never reach a server."""


BUDGET = 0.2


def _timed_out_after(seconds: float, tries: list[str], name: str):
    async def call():
        tries.append(name)
        await asyncio.sleep(seconds)
        raise ExecutionTimeout("operation exceeded time limit", 50)

    return call


def test_a_call_that_timed_out_is_not_retried():
    tries: list[str] = []

    async def run():
        await budgeted(_Session(), "count", BUDGET, _timed_out_after(BUDGET, tries, "alone"))

    with pytest.raises(OverBudget, match=r"^count did not answer within 0.2s$"):
        asyncio.run(run())
    assert tries == ["alone"]


def test_a_call_that_failed_otherwise_is_reported_at_once():
    tries: list[str] = []

    async def refused():
        tries.append("refused")
        raise OperationFailure("not authorized on app to execute command", 13)

    with pytest.raises(OverBudget, match=r"^count failed: OperationFailure: not authorized"):
        asyncio.run(budgeted(_Session(), "count", BUDGET, refused))
    assert tries == ["refused"]


# --- the index list from $indexStats where it carries specs -------------------------------------

# $indexStats on a mongod (4.2+): each row carries the index's full spec beside its counters.
MONGOD_INDEX_STATS = [
    {"name": "_id_", "key": {"_id": 1}, "host": "db1:27017",
     "accesses": {"ops": Int64(912), "since": dt.datetime(2026, 5, 1)}, "spec": {"v": 2, "key": {"_id": 1}, "name": "_id_"}},
    {"name": "createdAt_1", "key": {"createdAt": 1}, "host": "db1:27017",
     "accesses": {"ops": Int64(0), "since": dt.datetime(2026, 5, 1)},
     "spec": {"v": 2, "key": {"createdAt": 1}, "name": "createdAt_1", "expireAfterSeconds": 3600}},
]


class _Cursor:
    def __init__(self, rows):
        self.rows = rows

    async def to_list(self, _length=None):
        return self.rows

    def __aiter__(self):
        return self._iterate()

    async def _iterate(self):
        for row in self.rows:
            yield row


class _Collection:
    def __init__(self, calls, stats_rows, index_docs):
        self.calls, self.stats_rows, self.index_docs = calls, stats_rows, index_docs

    async def aggregate(self, pipeline, **_):
        self.calls.append("$indexStats")
        return _Cursor(self.stats_rows)

    async def list_indexes(self):
        self.calls.append("listIndexes")
        return _Cursor(self.index_docs)


def _session_with(stats_rows, index_docs):
    """A session whose client holds collections a, b and c of database app, recording calls."""
    session = _Session()
    calls: list[str] = []
    collection = _Collection(calls, stats_rows, index_docs)
    session.client = {"app": {name: collection for name in ("a", "b", "c")}}
    return session, calls


@pytest.mark.parametrize(
    "stats_rows, expected_calls",
    [
        (MONGOD_INDEX_STATS, ["$indexStats"] * 3),  # mongod: one call per collection gives specs and counters
        ([{k: v for k, v in r.items() if k != "spec"} for r in MONGOD_INDEX_STATS],  # SecantusDB: no specs
         ["$indexStats", "listIndexes", "listIndexes", "listIndexes"]),
    ],
)
def test_indexes_come_from_index_stats_where_it_carries_specs(stats_rows, expected_calls):
    from checks.mongodb._inventory import collection_info, index_stats_rows

    index_docs = [r["spec"] for r in MONGOD_INDEX_STATS]
    session, calls = _session_with(stats_rows, index_docs)

    async def run():
        infos = [await collection_info(session, "app", name) for name in ("a", "b", "c")]
        rows = await index_stats_rows(session, "app", "a")  # unused-index reads the same rows: no new call
        return infos, rows

    infos, rows = asyncio.run(run())
    assert calls == expected_calls
    assert [i.name for i in infos[0].indexes] == ["_id_", "createdAt_1"] and infos[0].indexes[1].is_ttl
    assert rows == stats_rows


@pytest.mark.parametrize(
    "index_key, filter_, sort, serves",
    [
        # equality fields' direction does not matter; the one sort field is walked backwards
        ({"status": 1, "brandUserId": 1, "createdAt": 1}, {"status": "a", "brandUserId": "b"}, {"createdAt": -1}, True),
        ({"status": -1, "brandUserId": 1, "createdAt": -1}, {"status": "a", "brandUserId": "b"}, {"createdAt": -1}, True),
        # two sort fields: served in the index's directions or the reverse of both only
        ({"status": 1, "a": 1, "b": -1}, {"status": "x"}, {"a": -1, "b": 1}, True),
        ({"status": 1, "a": 1, "b": 1}, {"status": "x"}, {"a": 1, "b": -1}, False),
        # the equalities in another order serve as well
        ({"brandUserId": 1, "status": -1, "createdAt": 1}, {"status": "a", "brandUserId": "b"}, {"createdAt": -1}, True),
        # a range field's direction does not matter either
        ({"userId": 1, "createdAt": -1, "amount": -1}, {"userId": 1, "amount": {"$gt": 5}}, {"createdAt": -1}, True),
    ],
)
def test_coverage_compares_direction_only_where_it_orders(index_key, filter_, sort, serves):
    suggestion = esr_index(filter_, sort)
    found = coverage(IndexSpec("existing", tuple(index_key.items())), suggestion)
    assert found is not None and found.serves is serves
    assert "reverse of ALL its keys" in found.words


def test_coverage_says_what_the_existing_index_orders():
    suggestion = esr_index({"status": "x"}, {"a": 1, "b": -1})
    found = coverage(IndexSpec("status_1_a_1_b_1", (("status", 1), ("a", 1), ("b", 1))), suggestion)
    assert found.words.startswith("status_1_a_1_b_1 {status: 1, a: 1, b: 1} has these fields but orders them "
                                  "{a: 1, b: 1} (or {a: -1, b: -1} walked backwards), not {a: 1, b: -1}")


def test_coverage_of_an_index_on_other_fields_is_none():
    suggestion = esr_index({"status": "x"}, {"a": 1})
    assert coverage(IndexSpec("a_1_status_1", (("a", 1), ("status", 1))), suggestion) is None
    assert coverage(IndexSpec("status_1", (("status", 1),)), suggestion) is None
    # a range is no equality: an index leading with it does not serve {userId: 1, amount: 1} the same way
    ranged = esr_index({"userId": 1, "amount": {"$gt": 5}}, None)
    assert coverage(IndexSpec("amount_1_userId_1", (("amount", 1), ("userId", 1))), ranged) is None


@pytest.mark.parametrize("count, size", [(2001, 200), (3000, 200), (1_000_000, 200), (450, 400), (10_000, 10)])
def test_seeded_runs_are_fixed_per_namespace_and_spread_over_the_collection(count, size):
    runs = seeded_runs("app.users", count, size)
    assert runs == seeded_runs("app.users", count, size)  # the same documents on unchanged data
    assert sum(length for _, length in runs) <= size and len(runs) == min(SAMPLE_RUNS, size)
    stretch = count // len(runs)
    for i, (offset, length) in enumerate(runs):  # one run inside each stretch: old and new documents alike
        assert i * stretch <= offset and offset + length <= (i + 1) * stretch <= count


def test_another_namespace_draws_other_offsets():
    assert seeded_runs("app.users", 1_000_000, 200) != seeded_runs("app.posts", 1_000_000, 200)


def test_seeded_starts_interpolate_object_ids_numbers_and_dates():
    first = ObjectId.from_datetime(dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc))
    last = ObjectId.from_datetime(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
    starts = seeded_starts("app.users", first, last, 4)
    assert starts == seeded_starts("app.users", first, last, 4) != seeded_starts("app.posts", first, last, 4)
    assert all(first <= s <= last for s in starts) and starts == sorted(starts)
    half = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
    assert starts[1].generation_time < half <= starts[2].generation_time  # one start in each quarter
    numbers = seeded_starts("app.t", 0, 1_000_000, 4)
    assert all(isinstance(n, int) and i * 250_000 <= n < (i + 1) * 250_000 for i, n in enumerate(numbers))
    dates = seeded_starts("app.t", dt.datetime(2025, 1, 1), dt.datetime(2025, 1, 5), 4)
    assert [d.day for d in dates] == [1, 2, 3, 4]
    assert seeded_starts("app.t", "a", "z", 4) is None and seeded_starts("app.t", 1, "z", 4) is None
