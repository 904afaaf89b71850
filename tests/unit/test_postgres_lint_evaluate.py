"""The schema lint's pure judgement, a table of failing and passing cases per rule."""

from __future__ import annotations

import pytest

from checks.postgres.lint import indexes, keys, tables, types
from checks.postgres.lint._rule import LintFacts
from tests.unit.test_postgres_evaluate import Schema, scope


def schema(columns: dict[str, str], *, not_null=(), pk=None, index=None, predicate=None, method="btree", extra=None):
    s = Schema()
    s.table("t", columns, not_null=tuple(not_null))
    if pk:
        s.primary_key("t", pk)
    if index:
        s.index("t", index, name="t_idx", predicate=predicate, method=method)
    return LintFacts(s.build(), extra)


CASES = [
    (types.TimestampWithoutTimeZone, schema({"at": "timestamp without time zone"}), True),
    (types.TimestampWithoutTimeZone, schema({"at": "timestamp(3) without time zone"}), True),
    (types.TimestampWithoutTimeZone, schema({"at": "timestamp with time zone"}), False),
    (types.VarcharLength, schema({"v": "character varying(20)"}), True),
    (types.VarcharLength, schema({"v": "character varying"}), False),
    (types.CharLength, schema({"c": "character(2)"}), True),
    (types.CharLength, schema({"c": "text"}), False),
    (types.Money, schema({"m": "money"}), True),
    (types.Money, schema({"m": "numeric(12,2)"}), False),
    (types.Json, schema({"j": "json"}), True),
    (types.Json, schema({"j": "jsonb"}), False),
    (keys.IntegerKey, schema({"id": "integer"}, pk=["id"]), True),
    (keys.IntegerKey, schema({"id": "bigint"}, pk=["id"]), False),
    (indexes.BtreeOnArray, schema({"tags": "text[]"}, index=["tags"]), True),
    (indexes.BtreeOnArray, schema({"tags": "text[]"}, index=["tags"], method="gin"), False),
    (indexes.BooleanIndex, schema({"flag": "boolean"}, index=["flag"]), True),
    (indexes.BooleanIndex, schema({"flag": "boolean", "v": "text"}, index=["v"], predicate="flag"), False),
    (indexes.UnnecessaryWhere, schema({"v": "text"}, not_null=["v"], index=["v"], predicate="(v IS NOT NULL)"), True),
    (indexes.UnnecessaryWhere, schema({"v": "text"}, index=["v"], predicate="(v IS NOT NULL)"), False),
    (indexes.TimestampInTheMiddle, schema({"a": "text", "at": "timestamp with time zone", "b": "text"},
                                          index=["a", "at", "b"]), True),
    (indexes.TimestampInTheMiddle, schema({"a": "text", "b": "text", "at": "timestamp with time zone"},
                                          index=["a", "b", "at"]), False),
    (indexes.TimestampInTheMiddle, schema({"at": "timestamp with time zone", "a": "text"}, index=["at", "a"]), True),
    (indexes.TimestampInTheMiddle, schema({"at": "timestamp with time zone"}, index=["at"]), False),
    (tables.AllNullable, schema({"id": "bigint", "a": "text", "b": "text"}, pk=["id"]), True),
    (tables.AllNullable, schema({"id": "bigint", "a": "text", "b": "text"}, pk=["id"], not_null=["a"]), False),
    (tables.NameOverflow, schema({"x" * 63: "text"}), True),
    (tables.NameOverflow, schema({"x" * 62: "text"}), False),
]


@pytest.mark.parametrize("rule, facts, reported", CASES)
def test_rules(rule, facts, reported):
    check = rule()
    assert bool(check.evaluate(facts, scope(check))) is reported


@pytest.mark.parametrize("null_frac, reported", [(0.9, True), (0.2, False), (None, False)])
def test_index_nulls_follow_the_statistics(null_frac, reported):
    facts = schema({"email": "text"}, index=["email"])
    oid = next(iter(facts.catalog.tables))
    facts = LintFacts(facts.catalog, {} if null_frac is None else {(oid, "email"): null_frac})
    check = indexes.IndexNulls()
    assert bool(check.evaluate(facts, scope(check))) is reported
