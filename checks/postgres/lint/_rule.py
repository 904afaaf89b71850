"""What every schema-lint rule shares: the catalog snapshot as facts, a pure `violations` function
per rule, low severity by default, and one finding per violation. A rule is advice for the
pre-deploy gate (pg-index-health's static checks), never a fix applied for you.

Rules judge tables on their own (partitions at their parent, materialized views not at all: their
column types follow their query) and their indexes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from checks.contract import Check, Scope
from checks.model import Finding, Severity
from checks.postgres._catalog import Catalog, CatalogSnapshot, Column, Index, Table, quote_ident


@dataclass(frozen=True)
class Violation:
    object: str
    title: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    key: str = ""


@dataclass(frozen=True)
class LintFacts:
    catalog: Catalog
    extra: Any = None  # what a rule reads beyond the snapshot


class LintRule(Check):
    engine = "postgres"
    severity = Severity.LOW
    needs = (CatalogSnapshot,)

    async def gather(self, session, scope: Scope) -> LintFacts:
        snapshot = await self.fact(CatalogSnapshot, session, scope)
        return LintFacts(snapshot, await self.extra(session, snapshot))

    async def extra(self, session, snapshot: Catalog) -> Any:
        return None

    def violations(self, facts: LintFacts, options: Any) -> Iterable[Violation]:
        raise NotImplementedError

    def evaluate(self, facts: LintFacts, scope: Scope) -> list[Finding]:
        return [self.finding(scope, object=v.object, key=v.key, title=v.title, message=v.message, evidence=v.evidence)
                for v in self.violations(facts, scope.options)]


def lint_tables(snapshot: Catalog) -> list[Table]:
    return snapshot.judged_tables()


def columns(snapshot: Catalog) -> Iterator[tuple[Table, Column]]:
    for table in lint_tables(snapshot):
        for column in sorted(snapshot.columns.get(table.oid, {}).values(), key=lambda c: c.num):
            yield table, column


def column_name(table: Table, column: Column) -> str:
    return f"{table.qualified}.{quote_ident(column.name)}"


def lint_indexes(snapshot: Catalog) -> Iterator[tuple[Table, Index]]:
    judged = {t.oid for t in lint_tables(snapshot)}
    for index in snapshot.judged_indexes():
        if index.table_oid in judged:
            yield snapshot.tables[index.table_oid], index


def column_type_rule(snapshot: Catalog, matches, advice: str) -> Iterator[Violation]:
    """Columns whose (domain-resolved) type `matches`, with `advice` on what to use instead."""
    for table, column in columns(snapshot):
        if matches(column.base_type):
            yield Violation(column_name(table, column), f"{table.name}.{column.name} is {column.type}",
                            f"{column_name(table, column)} is {column.type}: {advice}",
                            {"table": table.qualified, "column": column.name, "type": column.type})
