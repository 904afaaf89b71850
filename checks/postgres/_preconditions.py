"""Data preconditions of a fix, counted before the fix is called safe: a VALIDATE CONSTRAINT
fails on the first row that breaks it, a unique build on the first duplicate. Each count is one
set-based statement under its own statement_timeout; a count that runs out of time is "unknown",
and a fix whose preconditions are not known to hold is not offered as safe."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from checks.postgres._catalog import INTEGER_MAX, quote_ident

SAMPLES = 5
SAMPLE_CHARS = 200

# The failing rows once (MATERIALIZED), then their number and the first few in a fixed order,
# so that two runs over unchanged data show the same samples.
_COUNT = """
WITH failing AS MATERIALIZED ({failing})
SELECT (SELECT count(*) FROM failing) AS failing,
       ARRAY(SELECT sample FROM failing ORDER BY sample LIMIT {samples}) AS samples
"""


@dataclass(frozen=True)
class Precondition:
    """What must hold on the data for the fix to succeed, and what the server said about it."""

    requirement: str  # "every row satisfies the constraint"
    failing_what: str  # "rows that break it"
    failing: int | None  # None: not counted (see `unknown`)
    samples: tuple[str, ...] = ()
    unknown: str | None = None
    query: str = ""  # the statement listing the failing rows or keys, for a human to look at them

    @property
    def holds(self) -> bool:
        return self.failing == 0

    def evidence(self) -> dict[str, Any]:
        if self.failing is None:
            return {"requirement": self.requirement, "failing": "unknown", "why": self.unknown}
        return {"requirement": self.requirement, "failing": self.failing, "samples": list(self.samples)}

    def sentence(self) -> str:
        if self.failing is None:
            return f"Whether {self.requirement} is unknown ({self.unknown})."
        if not self.failing:
            return f"Checked: {self.requirement} (0 {self.failing_what})."
        shown = ", ".join(self.samples)
        return (f"{self.failing:,} {self.failing_what}: the fix needs {self.requirement} and would fail on "
                f"them (first {len(self.samples)}: {shown}).")


async def count_failing(session: Any, failing_sql: str, *, requirement: str, failing_what: str,
                        timeout_s: float) -> Precondition:
    """Run `failing_sql` (one text column, `sample`, per failing row or key) under a
    statement_timeout of `timeout_s`, in a read-only transaction."""
    import asyncpg  # the driver only when a check runs

    query = _COUNT.format(failing=failing_sql, samples=SAMPLES)
    try:
        async with session.acquire() as conn:
            async with conn.transaction(readonly=True):
                await conn.execute(f"SET LOCAL statement_timeout = {max(1, int(timeout_s * 1000))}")
                row = await conn.fetchrow(query, timeout=timeout_s + 5)
    except asyncpg.QueryCanceledError:
        return Precondition(requirement, failing_what, None, unknown=f"counting took longer than {timeout_s:g} s",
                            query=failing_sql)
    except (asyncpg.LockNotAvailableError, asyncpg.InsufficientPrivilegeError) as exc:
        return Precondition(requirement, failing_what, None, unknown=f"{type(exc).__name__}: {exc}", query=failing_sql)
    return Precondition(requirement, failing_what, int(row["failing"]), tuple(row["samples"]), query=failing_sql)


def out_of_budget(requirement: str, failing_what: str, budget_s: float) -> Precondition:
    return Precondition(requirement, failing_what, None,
                        unknown=f"the check's precondition budget ({budget_s:g} s) ran out before it was counted")


def _sample(expressions: Sequence[str]) -> str:
    value = expressions[0] + "::text" if len(expressions) == 1 else f"ROW({', '.join(expressions)})::text"
    return f"left({value}, {SAMPLE_CHARS})"


def orphans_sql(table: str, columns: Sequence[str], ref_table: str, ref_columns: Sequence[str]) -> str:
    """Rows of `table` whose key (all of it non-null: MATCH SIMPLE) has no row in `ref_table`."""
    keys = [f"c.{quote_ident(c)}" for c in columns]
    not_null = " AND ".join(f"{k} IS NOT NULL" for k in keys)
    match = " AND ".join(f"r.{quote_ident(r)} = {k}" for r, k in zip(ref_columns, keys, strict=True))
    return (f"SELECT {_sample(keys)} AS sample FROM {table} c "
            f"WHERE {not_null} AND NOT EXISTS (SELECT 1 FROM {ref_table} r WHERE {match})")


def check_violations_sql(table: str, expression: str) -> str:
    """Rows of `table` for which the CHECK expression is false (NULL passes a CHECK)."""
    return f"SELECT left(ROW(c.*)::text, {SAMPLE_CHARS}) AS sample FROM {table} c WHERE ({expression}) IS FALSE"


def duplicates_sql(table: str, keys: Sequence[str], predicate: str | None) -> str:
    """Key values of a would-be unique index held by more than one row (NULLs never collide)."""
    not_null = " AND ".join(f"({k}) IS NOT NULL" for k in keys)
    where = f"{not_null} AND ({predicate})" if predicate else not_null
    group = ", ".join(f"({k})" for k in keys)
    return (f"SELECT {_sample([f'({k})' for k in keys])} || ' ×' || count(*) AS sample FROM {table} "
            f"WHERE {where} GROUP BY {group} HAVING count(*) > 1")


_UUID_TEXT = r"^\{?[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\}?$"
_INTEGER_TEXT = r"^\s*[-+]?[0-9]+\s*$"


def uncastable_sql(table: str, column: str, from_family: str, to_type: str) -> str | None:
    """Rows whose value `ALTER COLUMN ... TYPE to_type USING column::to_type` would fail on (or,
    numeric to an integer, silently round); None when no cast here may fail or it cannot be told."""
    c = f"c.{quote_ident(column)}"
    integer_max = INTEGER_MAX.get(to_type)
    if to_type == "uuid" and from_family == "text":
        bad = f"{c}::text !~* '{_UUID_TEXT}'"
    elif integer_max is not None and from_family == "text":
        bad = (f"CASE WHEN {c}::text ~ '{_INTEGER_TEXT}' THEN {c}::text::numeric NOT BETWEEN {-integer_max - 1} "
               f"AND {integer_max} ELSE true END")
    elif integer_max is not None and from_family == "numeric":
        bad = f"({c} NOT BETWEEN {-integer_max - 1} AND {integer_max} OR {c} <> trunc({c}))"
    else:
        return None
    return f"SELECT {_sample([c])} AS sample FROM {table} c WHERE {c} IS NOT NULL AND {bad}"
