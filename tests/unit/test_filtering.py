"""The one filter model: the box's text parsed into terms, each term tested against a row."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from console.filtering import Field, parse, with_field

FIELDS = (
    Field("severity", ("sev",), frozenset({"critical", "high", "low"}), {"crit": "critical"}),
    Field("target", ("t",)),
    Field("state"),
)
ROWS = [
    {"severity": "critical", "target": "orders", "state": "idle in transaction"},
    {"severity": "high", "target": "orders-replica", "state": "active"},
    {"severity": "low", "target": "sessions", "state": "idle"},
]


def shown(text: str) -> list[str]:
    query = parse(text, FIELDS)
    assert not query.problems, query.problems
    return [r["target"] for r in ROWS if query.matches(r, "\n".join(r.values()))]


@pytest.mark.parametrize(
    ("text", "targets"),
    [
        ("", ["orders", "orders-replica", "sessions"]),
        ("orders", ["orders", "orders-replica"]),
        ("ORDERS replica", ["orders-replica"]),
        ("sev:high", ["orders-replica"]),
        ("sev:crit,low", ["orders", "sessions"]),
        ("SEVERITY:HIGH", ["orders-replica"]),
        ("!sev:high", ["orders", "sessions"]),
        ("target:orders", ["orders"]),
        ("t:orders*", ["orders", "orders-replica"]),
        ("!orders", ["sessions"]),
        ("/^idle$/", ["sessions"]),
        ("state:/^idle/", ["orders", "sessions"]),
        ("!state:/^idle/", ["orders-replica"]),
        ('"in transaction"', ["orders"]),
        ("/idle in/ sev:critical", ["orders"]),
    ],
)
def test_terms(text, targets):
    assert shown(text) == targets


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("sevv:high", 'unknown field "sevv"'),
        ("sev:hihg", 'unknown severity "hihg"'),
        ("sev:", "severity: needs a value"),
        ("/(/", "bad expression /(/"),
    ],
)
def test_a_term_it_cannot_apply_is_said_and_filters_nothing(text, problem):
    query = parse(f"orders {text}", FIELDS)
    assert query.problems and query.problems[0].startswith(problem)
    assert query.describe() == "orders"


def test_what_applies_is_what_the_box_says():
    assert parse("sev:high orders", FIELDS).describe() == "sev:high orders"
    assert not parse("", FIELDS).active
    assert not parse("   ", FIELDS).active


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("", {"high"}, "severity:high"),
        ("orders sev:low", {"high", "critical"}, "orders severity:critical,high"),
        ("orders sev:low", set(), "orders"),
        ("!sev:low x", {"high"}, "!sev:low x severity:high"),
    ],
)
def test_a_key_that_filters_edits_the_text(text, values, expected):
    assert with_field(text, "severity", values, FIELDS) == expected


words = st.text(st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Zs")), max_size=40)


@given(words)
def test_any_text_parses_and_matching_never_raises(text):
    query = parse(text, FIELDS)
    for row in ROWS:
        query.matches(row, "\n".join(row.values()))
    # Parsing what applies again gives the same terms: the header says exactly what filters.
    again = parse(query.describe(), FIELDS)
    assert again.describe() == query.describe() and not again.problems


@given(st.lists(st.sampled_from(["critical", "high", "low"]), unique=True), words)
def test_with_field_then_parse_asks_for_exactly_those_values(values, text):
    edited = with_field(parse(text, FIELDS).describe(), "severity", values, FIELDS)
    assert parse(edited, FIELDS).values_of("severity") == set(values)
