"""Wording an on-call engineer reads (#23): counts agree with their nouns, a share is never
rounded up to 100%, a zero TTL is not "older than 0s", ids carry no thousands separator."""

from __future__ import annotations

import pytest

from checks.mongodb._ttl import older_than
from checks.postgres.lint import tables
from checks.units import counted, listed, percent
from console.widgets.evidence_view import scalar
from tests.unit.test_postgres_evaluate import scope
from tests.unit.test_postgres_lint_evaluate import schema


@pytest.mark.parametrize("count, noun, plural, text", [
    (1, "statement", None, "1 statement"), (2, "statement", None, "2 statements"), (0, "session", None, "0 sessions"),
    (1, "fix", "fixes", "1 fix"), (3, "fix", "fixes", "3 fixes"), (12345, "value", None, "12,345 values"),
])
def test_a_count_agrees_with_its_noun(count, noun, plural, text):
    assert counted(count, noun, plural) == text


def test_a_list_of_names_agrees_with_its_noun():
    assert listed("column", ["a"]) == "column a" and listed("pid", ["4242", "4343"]) == "pids 4242, 4343"


@pytest.mark.parametrize("share, decimals, text", [
    (0.97, 0, "97%"), (0.9998, 0, "99.98%"), (0.9998, 1, "99.98%"), (1.0, 0, "100%"), (0.0, 0, "0%"),
    (0.0004, 0, "0.04%"), (0.978, 1, "97.8%"), (0.99999999, 0, ">99.99%"),
])
def test_a_share_never_reads_100_percent_before_it_is(share, decimals, text):
    assert percent(share, decimals) == text


def test_a_zero_ttl_is_in_the_past_not_older_than_0s():
    assert older_than(0) == "in the past" and older_than(3600) == "older than 1h"


def test_all_nullable_counts_the_columns_of_the_whole_table():
    check = tables.AllNullable()
    [keyed] = check.evaluate(schema({"id": "bigint", "a": "text", "b": "text"}, pk=["id"]), scope(check))
    assert keyed.title == "t: 2 of its 3 columns, all but the key, are nullable"
    [keyless] = check.evaluate(schema({"a": "text", "b": "text", "c": "text"}), scope(check))
    assert keyless.title == "t: all 3 columns are nullable"


@pytest.mark.parametrize("key, value, shown", [
    ("pid", 27861, "27861"), ("blocking_pids", 31337, "31337"), ("blocked_by", 40001, "40001"),
    ("port", 54321, "54321"), ("rows", 27861, "27,861"), ("used", 0.9998, "99.98 %"),
])
def test_ids_have_no_thousands_separator_and_shares_are_not_rounded_up(key, value, shown):
    assert scalar(key, value) == shown
