"""The lock tables as the manual gives them (Table 13.2), and statement splitting by pglast."""

from __future__ import annotations

import pytest

from checks.postgres.migration import locks as L
from checks.postgres.migration.parse import MigrationSyntaxError, split


def test_the_conflict_matrix_is_symmetric_and_as_the_manual_says():
    for a in L.MODES:
        for b in L.MODES:
            assert L.conflicts(a, b) == L.conflicts(b, a), (a, b)
    assert not L.conflicts(L.ACCESS_SHARE, L.SHARE)  # a reader does not block CREATE INDEX
    assert L.conflicts(L.ACCESS_SHARE, L.ACCESS_EXCLUSIVE)
    assert L.conflicts(L.ROW_EXCLUSIVE, L.SHARE)
    assert not L.conflicts(L.ROW_EXCLUSIVE, L.ROW_EXCLUSIVE)
    assert L.conflicts(L.SHARE_UPDATE_EXCLUSIVE, L.SHARE_UPDATE_EXCLUSIVE)
    assert not L.conflicts(L.SHARE, L.SHARE)
    assert L.blocks(L.ACCESS_EXCLUSIVE) == "reads and writes"
    assert L.blocks(L.SHARE) == L.blocks(L.SHARE_ROW_EXCLUSIVE) == L.blocks(L.EXCLUSIVE) == "writes"
    assert "not reads or writes" in L.blocks(L.SHARE_UPDATE_EXCLUSIVE)
    assert set(L.FROM_PG_LOCKS.values()) == set(L.MODES)


def test_split_gives_each_statement_its_first_line():
    text = "-- héader\nSELECT 1;\n\n/* c */\nCREATE INDEX ON t\n  (a);\nSELECT 'x;y'"
    statements = split(text, "m.sql")
    assert [(s.line, s.sql) for s in statements] == [
        (2, "SELECT 1"), (5, "CREATE INDEX ON t\n  (a)"), (7, "SELECT 'x;y'"),
    ]


def test_a_syntax_error_names_file_and_line():
    with pytest.raises(MigrationSyntaxError, match=r"^m\.sql:3: syntax error"):
        split("SELECT 1;\n\nALTER TABLE x ADD COLUMN;", "m.sql")
