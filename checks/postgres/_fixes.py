"""Fix builders several PostgreSQL checks share: creating and dropping indexes without blocking
writes, and changing a column's type (which does block)."""

from __future__ import annotations

import re

from checks.model import Fix, FixSafety, FixStep
from checks.postgres._catalog import (
    Catalog,
    Index,
    Table,
    TakenNames,
    concurrent_definition,
    new_index_name,
    quote_ident,
)

CONCURRENT_BUILD_LOCK = (
    "SHARE UPDATE EXCLUSIVE on {table}: reads and writes go on; the build scans the table twice "
    "and waits for transactions already running. If it fails it leaves an INVALID index to drop."
)
CONCURRENT_DROP_LOCK = (
    "SHARE UPDATE EXCLUSIVE on {table}: reads and writes go on; waits for transactions using the index."
)


def sql(command: str, description: str = "", *, transactional: bool = True) -> FixStep:
    return FixStep(language="sql", command=command, description=description, transactional=transactional)


def create_index_steps(catalog: Catalog, table: Table, name: str, columns_sql: str) -> tuple[FixStep, ...]:
    """CREATE INDEX CONCURRENTLY, or for a partitioned table (where CONCURRENTLY is refused) the
    documented route: an index ON ONLY the parent, one built concurrently per partition, attached."""
    if not table.partitioned:
        return (sql(f"CREATE INDEX CONCURRENTLY {quote_ident(name)} ON {table.qualified} ({columns_sql});",
                    transactional=False),)
    steps = [sql(f"CREATE INDEX {quote_ident(name)} ON ONLY {table.qualified} ({columns_sql});",
                 "the parent's index, invalid until every partition has one attached")]
    steps.extend(_partition_steps(catalog, table, name, columns_sql))
    return tuple(steps)


def _partition_steps(catalog: Catalog, parent: Table, parent_index: str, columns_sql: str) -> list[FixStep]:
    steps: list[FixStep] = []
    taken = TakenNames(catalog.relation_names())
    for oid in catalog.partitions.get(parent.oid, ()):
        part = catalog.tables[oid]
        name = _free_name(f"{part.name}_{parent_index}", taken)
        taken.add(name)
        index = f"{quote_ident(part.schema)}.{quote_ident(name)}"
        if part.partitioned:
            steps.append(sql(f"CREATE INDEX {quote_ident(name)} ON ONLY {part.qualified} ({columns_sql});"))
            steps.extend(_partition_steps(catalog, part, name, columns_sql))
        else:
            steps.append(sql(f"CREATE INDEX CONCURRENTLY {quote_ident(name)} ON {part.qualified} ({columns_sql});",
                             transactional=False))
        steps.append(sql(
            f"ALTER INDEX {quote_ident(parent.schema)}.{quote_ident(parent_index)} ATTACH PARTITION {index};"))
    return steps


def interrupted_build_names(catalog: Catalog, table: Table, columns: tuple[int, ...]) -> set[str]:
    """Names of INVALID plain indexes on `table` with exactly these key columns: what an
    interrupted CREATE INDEX CONCURRENTLY of this very index leaves. Not counted as taken, so a
    rerun of the fix chooses the same name (and drops the leftover first when the journal says
    dbvitals left it), instead of building a second index beside the INVALID one."""
    return {i.name for i in catalog.indexes_of(table.oid)
            if not i.valid and i.kind == "i" and i.method == "btree" and i.key_columns == columns
            and i.key_count == len(i.keys) and i.predicate is None and i.expressions is None
            and not (i.is_unique or i.is_primary or i.is_exclusion)}


def name_for_new_index(catalog: Catalog, table: Table, columns: tuple[str, ...], taken: set[str] | TakenNames) -> str:
    """A free name for an index on these columns of `table` (plain column names), the same one
    an interrupted build of it chose (see interrupted_build_names). Added to `taken`."""
    by_name = {c.name: c.num for c in catalog.columns.get(table.oid, {}).values()}
    nums = tuple(by_name.get(c, 0) for c in columns)
    leftovers = interrupted_build_names(catalog, table, nums) if 0 not in nums else set()
    name = new_index_name(table.name, columns, taken, reusable=leftovers)  # looked into, not copied
    taken.add(name)
    return name


def _free_name(base: str, taken: TakenNames) -> str:
    return new_index_name(base.removesuffix("_idx"), (), taken)


def drop_index_steps(index: Index) -> tuple[FixStep, ...]:
    if index.kind == "I":  # DROP INDEX CONCURRENTLY does not support partitioned indexes
        return (sql(f"DROP INDEX {index.qualified};"),)
    return (sql(f"DROP INDEX CONCURRENTLY {index.qualified};", transactional=False),)


def recreate_index_steps(index: Index) -> tuple[FixStep, ...]:
    """The inverse of dropping `index`: its own definition, built without blocking where possible."""
    if index.kind == "I":
        # pg_get_indexdef names the parent ONLY; without ONLY the build recurses into partitions.
        return (sql(re.sub(r" ON ONLY ", " ON ", index.definition, count=1) + ";"),)
    return (sql(concurrent_definition(index.definition) + ";", transactional=False),)


def drop_index_fix(index: Index, table: Table, summary: str) -> Fix:
    partitioned = index.kind == "I"
    return Fix(
        summary=summary,
        steps=drop_index_steps(index),
        safety=FixSafety.UNSAFE if partitioned else FixSafety.SAFE,
        lock=(f"ACCESS EXCLUSIVE on {table.qualified} and its partitions, briefly (a partitioned index "
              "cannot be dropped CONCURRENTLY)") if partitioned else CONCURRENT_DROP_LOCK.format(table=table.qualified),
        inverse=recreate_index_steps(index),
    )


def alter_type_lock(table: Table, exact_rows: int | None = None) -> str:
    if exact_rows is not None:
        affected = f"{exact_rows:,} rows"
    elif table.rows is not None:
        affected = f"about {table.rows:,} row{'' if table.rows == 1 else 's'} by the planner's estimate"
    else:
        affected = "row count unknown: never analysed"
    return (f"ACCESS EXCLUSIVE on {table.qualified} for the whole table rewrite ({affected}); "
            "its indexes are rebuilt and foreign keys re-checked while reads and writes wait")
