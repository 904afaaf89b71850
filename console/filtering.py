"""One filter model for every table of the console: the text in the filter box is the filter.

A box holds terms separated by spaces, all of which a row must match:
- `word` (or `"two words"`): somewhere in the row, case-insensitive;
- `field:value` (`field:a,b` for either): the row's field equals a value, case-insensitive;
  a value holding `*`, `?` or `[` is a glob;
- `/re/`, `field:/re/`: a regular expression searched for (case-insensitive);
- `!term`: the rows that do not match the term.
Which fields a table has (and which values a field takes, where they are few) is the table's to
say; a field or value it does not know, or a broken expression, is a problem the box shows, and
that term filters nothing until it is corrected. Keys that filter (a severity key, "this
target") edit the box's text, so what the box says is all that applies, and clearing the box
clears the filter.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

_TOKEN = re.compile(r'(!)?(?:([A-Za-z_][\w-]*):)?(/(?:\\.|[^/\\])*/|/\S*|"[^"]*"?|\S*)')
_GLOB = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Field:
    """A field rows can be filtered on: its name, other names typed for it, and the values it
    takes when they are few (`None`: any value). `synonyms` maps a typed value to the value."""

    name: str
    aliases: tuple[str, ...] = ()
    values: frozenset[str] | None = None
    synonyms: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Term:
    """One term of the box: `field` None for free text; `values` either of which matches."""

    source: str
    field: str | None
    values: tuple[str, ...] = ()
    pattern: re.Pattern[str] | None = None
    negated: bool = False

    def matches(self, row: Mapping[str, str], text: str) -> bool:
        subject = text if self.field is None else row.get(self.field, "").lower()
        if self.pattern is not None:
            hit = self.pattern.search(subject) is not None
        elif self.field is None:
            hit = self.values[0] in subject
        else:
            hit = any(fnmatch.fnmatchcase(subject, v) if _GLOB.search(v) else subject == v for v in self.values)
        return hit != self.negated


@dataclass(frozen=True)
class Query:
    """The box's text parsed: the terms that apply and what is wrong with the others."""

    text: str = ""
    terms: tuple[Term, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return bool(self.terms)

    def describe(self) -> str:
        """The terms that apply, as typed."""
        return " ".join(t.source for t in self.terms)

    def matches(self, row: Mapping[str, str], text: str) -> bool:
        """`row`: the row's fields (values lower-cased); `text`: all of it, lower-cased, one field a
        line (so `^` and `$` anchor to a field)."""
        return all(t.matches(row, text) for t in self.terms)

    def values_of(self, name: str) -> set[str]:
        """The values a field is asked to equal (by its positive terms)."""
        return {v for t in self.terms if t.field == name and not t.negated for v in t.values}


def parse(text: str, fields: Sequence[Field] = ()) -> Query:
    names = {alias.lower(): f for f in fields for alias in (f.name, *f.aliases)}
    terms: list[Term] = []
    problems: list[str] = []
    for match in _TOKEN.finditer(text):
        source = match.group(0)
        if not source:
            continue
        negated, key, value = bool(match.group(1)), match.group(2), match.group(3)
        spec = names.get(key.lower()) if key else None
        if key and spec is None:
            known = ", ".join(sorted(f.name for f in fields)) or "none"
            problems.append(f'unknown field "{key}" (fields: {known})')
            continue
        if value.startswith("/"):
            term, problem = _regex_term(source, spec, value, negated)
        elif spec is not None:
            term, problem = _field_term(source, spec, value, negated)
        else:
            word = value.strip('"').lower()
            term, problem = (Term(source, None, (word,), negated=negated), None) if word else (None, None)
        if problem:
            problems.append(problem)
        elif term is not None:
            terms.append(term)
    return Query(text, tuple(terms), tuple(problems))


def _regex_term(source: str, spec: Field | None, value: str, negated: bool) -> tuple[Term | None, str | None]:
    body = value[1:-1] if len(value) > 1 and value.endswith("/") else value[1:]
    if not body:
        return None, None  # `/` alone: the expression is still being typed
    try:
        pattern = re.compile(body, re.IGNORECASE | re.MULTILINE)
    except re.error as exc:
        return None, f"bad expression /{body}/: {exc}"
    return Term(source, spec.name if spec else None, pattern=pattern, negated=negated), None


def _field_term(source: str, spec: Field, value: str, negated: bool) -> tuple[Term | None, str | None]:
    typed = [v.strip('"').lower() for v in value.split(",") if v.strip('"')]
    if not typed:
        return None, f"{spec.name}: needs a value"
    values = [spec.synonyms.get(v, v) for v in typed]
    if spec.values is not None:
        unknown = [t for t, v in zip(typed, values, strict=True) if not _GLOB.search(v) and v not in spec.values]
        if unknown:
            return None, f'unknown {spec.name} "{unknown[0]}" ({", ".join(sorted(spec.values))})'
    return Term(source, spec.name, tuple(values), negated=negated), None


def with_field(text: str, name: str, values: Iterable[str], fields: Sequence[Field] = ()) -> str:
    """The box's text with the positive terms on `name` replaced by one asking for `values`
    (none: dropped); a key that filters edits the box through this."""
    names = {alias.lower() for f in fields if f.name == name for alias in (f.name, *f.aliases)} | {name}
    kept = []
    for match in _TOKEN.finditer(text):
        source = match.group(0)
        if source and not (not match.group(1) and (match.group(2) or "").lower() in names):
            kept.append(source)
    chosen = sorted(set(values))
    if chosen:
        kept.append(f"{name}:{','.join(chosen)}")
    return " ".join(kept)
