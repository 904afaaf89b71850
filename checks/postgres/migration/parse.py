"""A migration's files, split into statements by PostgreSQL's own parser (pglast, libpg_query)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pglast
from pglast import ast
from pglast.parser import ParseError


@dataclass(frozen=True)
class Statement:
    file: str
    line: int  # the statement's first line in its file, from 1
    sql: str
    node: Any  # the pglast AST node of the statement


class MigrationSyntaxError(Exception):
    """SQL PostgreSQL would not parse, phrased as file:line: message."""


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, max(0, min(offset, len(text)))) + 1


def split(text: str, file: str) -> list[Statement]:
    try:
        raws = pglast.parse_sql(text)
    except ParseError as exc:
        message, where = (exc.args + (None,))[:2] if exc.args else ("syntax error", None)
        line = _line_of(text, where) if isinstance(where, int) else 1
        raise MigrationSyntaxError(f"{file}:{line}: {message}") from None
    statements = []
    for raw in raws:
        start = raw.stmt_location or 0
        length = raw.stmt_len or (len(text) - start)  # 0: to the end of the text
        sql = text[start:start + length].strip()
        # pglast's location is of the statement itself; comments before it are outside it.
        lead = len(text[start:start + length]) - len(text[start:start + length].lstrip())
        statements.append(Statement(file, _line_of(text, start + lead), sql, raw.stmt))
    return statements


def read_files(paths: list[str]) -> list[Statement]:
    """All statements of the files in order, as one migration. OSError and MigrationSyntaxError
    reach the caller."""
    statements: list[Statement] = []
    for path in paths:
        text = Path(path).read_text(encoding="utf-8")
        statements += split(text, path)
    return statements


def walk(node: Any) -> Any:
    """Every AST node under `node` (itself first), depth first."""
    if isinstance(node, ast.Node):
        yield node
        for name in node:
            yield from walk(getattr(node, name))
    elif isinstance(node, (tuple, list)):
        for item in node:
            yield from walk(item)
