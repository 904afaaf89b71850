"""Identifier quoting, index naming and name → table resolution for the PostgreSQL pack."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from checks.postgres._catalog import (
    TableRef,
    fit_name,
    name_forms,
    new_index_name,
    quote_ident,
    reference_stem,
    resolve_reference,
    snake,
)

# Any name PostgreSQL accepts: no NUL, at most 63 bytes.
names = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), min_size=1, max_size=40).filter(
    lambda s: len(s.encode()) <= 63)


def unquote(sql: str) -> str:
    if sql.startswith('"'):
        assert sql.endswith('"') and len(sql) >= 2
        inner = sql[1:-1]
        assert '"' not in inner.replace('""', ""), "a lone quote would end the identifier early"
        return inner.replace('""', '"')
    return sql


@pytest.mark.parametrize("name, quoted", [
    ("orders", "orders"),
    ("order_items2", "order_items2"),
    ("_private", "_private"),
    ("Orders", '"Orders"'),
    ("order items", '"order items"'),
    ('say "hi"', '"say ""hi"""'),
    ("user", '"user"'),  # reserved word
    ("select", '"select"'),
    ("name", "name"),  # unreserved keyword: PostgreSQL leaves it bare
    ("2fa", '"2fa"'),
    ("prix_€", '"prix_€"'),
    ("col$", '"col$"'),
    ("", '""'),
])
def test_quote_ident_matches_postgres(name, quoted):
    assert quote_ident(name) == quoted


def test_quote_ident_refuses_nul():
    with pytest.raises(ValueError):
        quote_ident("a\x00b")


@given(names)
def test_quoting_round_trips(name):
    quoted = quote_ident(name)
    assert unquote(quoted) == name
    bare = not quoted.startswith('"')
    assert not bare or (name == name.lower() and name.isascii() and " " not in name)


@pytest.mark.parametrize("column, stem", [
    ("transaction_id", "transaction"),
    ("badge_id", "badge"),
    ("authorId", "author"),
    ("AuthorID", "author"),
    ("orderItemId", "order_item"),
    ("order_item_id", "order_item"),
    ("id", None),
    ("identity", None),
    ("paid", None),
    ("min_group_id_required", None),
    ("_id", None),
])
def test_reference_stem(column, stem):
    assert reference_stem(column) == stem


@pytest.mark.parametrize("stem, forms", [
    ("badge", {"badge", "badges"}),
    ("category", {"category", "categories", "categorys"}),
    ("box", {"box", "boxs", "boxes"}),
    ("order_item", {"order_item", "order_items"}),
    ("person", {"person", "persons", "people"}),
    ("day", {"day", "days"}),
])
def test_name_forms(stem, forms):
    assert set(name_forms(stem)) == forms


def test_snake_case():
    assert snake("OrderItems") == "order_items"
    assert snake("HTTPRequestLog") == "http_request_log"


T = TableRef
TABLES = [
    T(1, "public", "transactions"), T(2, "public", "badges"), T(3, "public", "authors"),
    T(4, "public", "OrderItems"), T(5, "billing", "invoices"), T(6, "public", "invoices"),
    T(7, "archive", "transactions"), T(8, "public", "box"), T(9, "public", "boxes"),
]


@pytest.mark.parametrize("column, schema, expected, how", [
    ("transaction_id", "public", 1, "own schema"),
    ("badge_id", "public", 2, "own schema"),
    ("authorId", "public", 3, "own schema"),
    ("order_item_id", "public", 4, "own schema"),
    ("orderItemId", "public", 4, "own schema"),
    ("invoice_id", "billing", 5, "own schema"),  # the column's own schema first
    ("invoice_id", "public", 6, "own schema"),
    ("transaction_id", "archive", 7, "own schema"),
    ("invoice_id", "reports", 6, "search_path"),  # then search_path
    ("external_user_id", "public", None, "no table"),  # the whole stem only
    ("box_id", "public", None, "ambiguous"),  # box and boxes: no guess
    ("min_group_id_required", "public", None, "does not end"),
])
def test_resolve_reference(column, schema, expected, how):
    resolution = resolve_reference(column, schema, TABLES, ("public",))
    assert (resolution.table.oid if resolution.table else None) == expected
    assert how in resolution.how


def test_new_index_names_fit_and_do_not_collide():
    name = new_index_name("orders", ["customer_id"], taken=["orders_customer_id_idx"])
    assert name == "orders_customer_id_idx1"
    long_name = new_index_name("é" * 40, ["ü" * 40], taken=[])
    assert len(long_name.encode()) <= 63 and long_name.endswith("_idx")
    assert len(fit_name("x" * 100).encode()) == 63
