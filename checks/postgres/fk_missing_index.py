"""postgres.fk-missing-index: foreign keys with no index whose leading columns cover them."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field

from checks.contract import Check, CheckOptions, Scope
from checks.model import Finding, Fix, FixAvailability, FixSafety, Severity
from checks.postgres._catalog import Catalog, CatalogSnapshot, Constraint, Index, TakenNames, quote_ident
from checks.postgres._fixes import CONCURRENT_BUILD_LOCK, create_index_steps, name_for_new_index, sql


class Options(CheckOptions):
    min_rows: int = Field(default=0, ge=0, description="Ignore referencing tables with fewer estimated rows than this.")


@dataclass(frozen=True)
class Facts:
    catalog: Catalog


def covering_index(snapshot: Catalog, fk: Constraint) -> Index | None:
    """A valid, non-partial index whose leading key columns are exactly the FK's columns (any order)."""
    wanted = set(fk.columns)
    for index in snapshot.indexes_of(fk.table_oid):
        if not index.valid or index.predicate is not None or index.attached:
            continue
        leading = index.key_columns[: len(wanted)]
        if 0 not in leading and set(leading) == wanted:
            return index
    return None


class FkMissingIndex(Check):
    id = "postgres.fk-missing-index"
    needs = (CatalogSnapshot,)
    engine = "postgres"
    title = "Foreign key without an index on its columns"
    severity = Severity.MEDIUM
    fix_availability = FixAvailability.ALWAYS
    Options = Options
    rationale = (
        "Deleting or updating a referenced row makes PostgreSQL look up the referencing rows: without an index "
        "that is a sequential scan of the referencing table per row, under a lock, and joins along the key "
        "have no index either."
    )

    async def gather(self, session, scope: Scope) -> Facts:
        return Facts(await self.fact(CatalogSnapshot, session, scope))

    def evaluate(self, facts: Facts, scope: Scope) -> list[Finding]:
        snapshot = facts.catalog
        findings = []
        # Per schema: its names, and those given to this run's suggestions (built once, not per key).
        taken_by_schema: dict[str, TakenNames] = {}
        # One index serves every foreign key on the same columns (duplicated, or in another order).
        sharing: dict[tuple[int, frozenset[int]], list[Constraint]] = {}
        for fk in sorted(snapshot.foreign_keys, key=lambda c: c.oid):
            table = snapshot.tables.get(fk.table_oid)
            if fk.inherited or table is None or table.is_partition:
                continue  # a partition's copy is judged at its parent
            sharing.setdefault((fk.table_oid, frozenset(fk.columns)), []).append(fk)
        for fk, *others in sharing.values():
            table = snapshot.tables[fk.table_oid]
            if (table.rows or 0) < scope.options.min_rows or covering_index(snapshot, fk) is not None:
                continue
            ref_table = snapshot.tables[fk.ref_table_oid]
            columns = snapshot.column_names(table.oid, fk.columns)
            taken = taken_by_schema.get(table.schema)
            if taken is None:  # once per schema, and never copied: names are taken per schema
                taken = taken_by_schema[table.schema] = TakenNames(snapshot.names_in_schema(table.schema))
            name = name_for_new_index(snapshot, table, columns, taken)
            columns_sql = ", ".join(quote_ident(c) for c in columns)
            partial = [i.name for i in snapshot.indexes_of(table.oid)
                       if i.predicate is not None and set(i.key_columns[: len(fk.columns)]) == set(fk.columns)]
            evidence = {
                "constraint": fk.name,
                "columns": list(columns),
                "references": f"{ref_table.qualified}({', '.join(snapshot.column_names(ref_table.oid, fk.ref_columns))})",
                "rows_estimate": table.rows,
                "table_bytes": table.bytes,
                "existing_indexes": [i.definition for i in snapshot.indexes_of(table.oid) if not i.attached],
            }
            if partial:
                evidence["partial_indexes_not_counted"] = partial
            if others:
                evidence["also_serves"] = [o.name for o in others]
            findings.append(self.finding(
                scope, object=f"{table.qualified}({columns_sql})", key=fk.name,
                title=f"{table.name}({', '.join(columns)}) has no index for its foreign key",
                message=(f"Foreign key {quote_ident(fk.name)} on {table.qualified}({columns_sql}) → {ref_table.qualified} "
                         "has no index whose leading columns cover it: each delete or key update on "
                         f"{ref_table.qualified} scans {table.qualified}."
                         + (f" The same index serves {', '.join(quote_ident(o.name) for o in others)} on these columns."
                            if others else "")),
                evidence=evidence,
                fix=Fix(
                    summary=f"Create index {name}",
                    steps=create_index_steps(snapshot, table, name, columns_sql),
                    safety=FixSafety.SAFE,
                    lock=CONCURRENT_BUILD_LOCK.format(table=table.qualified) + (
                        " On a partitioned table each partition's index is built concurrently and attached; the "
                        "parent's ON ONLY index takes a brief SHARE lock on the parent alone." if table.partitioned else ""),
                    inverse=_drop_new_index(table.schema, name, table.partitioned),
                ),
            ))
        return findings


def _drop_new_index(schema: str, name: str, partitioned: bool) -> tuple:
    if partitioned:  # dropping the parent index drops the attached partition indexes with it
        return (sql(f"DROP INDEX {quote_ident(schema)}.{quote_ident(name)};"),)
    return (sql(f"DROP INDEX CONCURRENTLY {quote_ident(schema)}.{quote_ident(name)};", transactional=False),)


