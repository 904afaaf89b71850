"""The shape of a normalised statement from pg_stat_statements, as far as an index suggestion
needs it: one table, the columns compared for equality, for a range, and the sort.

Deliberately small: a statement with a join, an OR, a subquery in its WHERE or a GROUP BY is
left alone (no shape), because a wrong suggestion is worse than none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(
    r"""\s*(?:(?P<qid>"(?:[^"]|"")*")|(?P<param>\$\d+)|(?P<num>\d+(?:\.\d+)?)|(?P<str>'(?:[^']|'')*')"""
    r"""|(?P<word>[A-Za-z_][A-Za-z0-9_$]*)|(?P<op><>|!=|<=|>=|::|[=<>(),.*;+\-/\[\]]))"""
)
_CLAUSE_END = {"order", "limit", "offset", "for", "group", "having", "window", "fetch", "returning"}


@dataclass(frozen=True)
class Token:
    kind: str  # qid, param, num, str, word, op
    text: str

    @property
    def word(self) -> str:
        return self.text.lower() if self.kind == "word" else ""

    @property
    def name(self) -> str:
        """An identifier as the server folds it."""
        return self.text[1:-1].replace('""', '"') if self.kind == "qid" else self.text.lower()


@dataclass(frozen=True)
class Shape:
    schema: str | None
    table: str
    equality: tuple[str, ...]
    ranges: tuple[str, ...]
    sort: tuple[str, ...]


def tokenize(sql: str) -> list[Token] | None:
    tokens, pos, text = [], 0, sql.strip().rstrip(";")
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            return None
        kind = match.lastgroup
        assert kind is not None  # every alternative of _TOKEN is a named group
        tokens.append(Token(kind, match[kind]))
        pos = match.end()
    return tokens


def parse(sql: str) -> Shape | None:
    tokens = tokenize(sql)
    if not tokens:
        return None
    first = tokens[0].word
    if first == "select":
        at = _find_top_level(tokens, 1, "from")
        if at is None:
            return None
        at += 1
    elif first == "delete" and len(tokens) > 1 and tokens[1].word == "from":
        at = 2
    elif first == "update":
        at = 1
    else:
        return None
    table, at = _table(tokens, at)
    if table is None:
        return None
    schema, name, alias = table
    if first == "update":
        at = _find_top_level(tokens, at, "where")
        if at is None:
            return None
    equality: list[str] = []
    ranges: list[str] = []
    sort: list[str] | None = []
    if at < len(tokens) and tokens[at].word == "where":
        end = next((i for i in range(at + 1, len(tokens)) if tokens[i].word in _CLAUSE_END and _depth(tokens, i) == 0), len(tokens))
        if not _predicates(tokens[at + 1:end], {n for n in (name, alias) if n is not None}, equality, ranges):
            return None
        at = end
    if at < len(tokens) and tokens[at].word == "group":
        return None
    if at + 1 < len(tokens) and tokens[at].word == "order" and tokens[at + 1].word == "by":
        sort = _order_by(tokens, at + 2, {n for n in (name, alias) if n is not None})
        if sort is None:
            return None
    if not equality and not ranges and not sort:
        return None
    unique = lambda cols: tuple(dict.fromkeys(cols))
    return Shape(schema, name, unique(equality), unique(c for c in ranges if c not in equality), unique(sort))


def _depth(tokens: list[Token], index: int) -> int:
    depth = 0
    for token in tokens[:index]:
        depth += token.text == "("
        depth -= token.text == ")"
    return depth


def _find_top_level(tokens: list[Token], start: int, word: str) -> int | None:
    depth = 0
    for i in range(start, len(tokens)):
        depth += tokens[i].text == "("
        depth -= tokens[i].text == ")"
        if depth == 0 and tokens[i].word == word:
            return i
    return None


def _is_name(token: Token) -> bool:
    return token.kind == "qid" or (token.kind == "word" and token.word not in _RESERVED)


_RESERVED = {"where", "order", "limit", "join", "inner", "left", "right", "full", "cross", "on", "using", "as",
             "group", "offset", "for", "set", "and", "or", "not", "natural", "lateral", "only", "returning",
             "having", "window", "fetch", "union", "except", "intersect"}


def _table(tokens: list[Token], at: int) -> tuple[tuple[str | None, str, str | None] | None, int]:
    if at < len(tokens) and tokens[at].word == "only":
        at += 1
    if at >= len(tokens) or not _is_name(tokens[at]):
        return None, at
    schema, name = None, tokens[at].name
    at += 1
    if at + 1 < len(tokens) and tokens[at].text == "." and _is_name(tokens[at + 1]):
        schema, name = name, tokens[at + 1].name
        at += 2
    alias = None
    if at < len(tokens) and tokens[at].word == "as":
        at += 1
    if at < len(tokens) and _is_name(tokens[at]):
        alias = tokens[at].name
        at += 1
    if at < len(tokens) and tokens[at].word not in ("where", "order", "limit", "offset", "for", "set", "returning"):
        return None, at  # a join, a second table, a subquery: not a single-table statement
    return (schema, name, alias), at


def _column(tokens: list[Token], at: int, names: set[str]) -> tuple[str | None, int]:
    if at < len(tokens) and _is_name(tokens[at]):
        if at + 2 < len(tokens) and tokens[at + 1].text == "." and _is_name(tokens[at + 2]):
            if tokens[at].name not in names:
                return None, at
            return tokens[at + 2].name, at + 3
        return tokens[at].name, at + 1
    return None, at


def _is_value(tokens: list[Token]) -> bool:
    """A parameter, a literal, or one of those with a cast: what the normaliser leaves of a constant."""
    kinds = [t for t in tokens if not (t.text == "::" or (t.kind == "word" and t.word not in _RESERVED))]
    return len(kinds) == 1 and kinds[0].kind in ("param", "num", "str") or (
        len(tokens) == 1 and tokens[0].word in ("true", "false"))


def _predicates(tokens: list[Token], names: set[str], equality: list[str], ranges: list[str]) -> bool:
    parts: list[list[Token]] = []
    current: list[Token] = []
    depth, between = 0, False
    for token in tokens:
        depth += token.text == "("
        depth -= token.text == ")"
        if depth == 0 and token.word == "or":
            return False
        if depth == 0 and token.word == "between":
            between = True
        if depth == 0 and token.word == "and" and not between:
            parts.append(current)
            current = []
            continue
        if token.word == "and":
            between = False
        current.append(token)
    parts.append(current)
    for part in parts:
        column, at = _column(part, 0, names)
        if column is None:
            continue  # an expression on the left: not servable by a plain column index
        rest = part[at:]
        words = [t.word for t in rest]
        if rest and rest[0].text == "=" and (_is_value(rest[1:]) or words[1:2] == ["any"]):
            equality.append(column)
        elif words[:2] == ["is", "null"] or (words[:1] == ["in"] and all(t.kind in ("param", "num", "str") or t.text in "(),"
                                                                         for t in rest[1:])):
            equality.append(column)
        elif rest and rest[0].text in ("<", ">", "<=", ">=") and _is_value(rest[1:]):
            ranges.append(column)
        elif words[:1] == ["between"]:
            ranges.append(column)
    return True


def _order_by(tokens: list[Token], at: int, names: set[str]) -> list[str] | None:
    columns = []
    while at < len(tokens):
        column, at = _column(tokens, at, names)
        if column is None:
            return None
        columns.append(column)
        while at < len(tokens) and tokens[at].word in ("asc", "desc", "nulls", "first", "last"):
            at += 1
        if at < len(tokens) and tokens[at].text == ",":
            at += 1
            continue
        break
    return columns


def parameter_count(sql: str) -> int:
    return max((int(n) for n in re.findall(r"\$(\d+)", sql)), default=0)
