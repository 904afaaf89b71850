"""postgres.orphaned-references: references no constraint enforces — implied by a column's name
(`user_id` beside `users.id`) or declared in `[[targets.NAME.expect.references]]` — whose values
point at rows that do not exist. Counted over a bounded sample of the referencing table (all of it
when small), so the figure is a share with its sample size, never a full scan of a big table.
References whose types differ are postgres.fk-type-mismatch's, which counts them itself."""

from __future__ import annotations

import time
from dataclasses import dataclass

from pydantic import Field

from checks.contract import Check, CheckOptions, Scope
from checks.model import Finding, Fix, FixAvailability, FixSafety, Severity
from checks.postgres._catalog import CatalogSnapshot, quote_ident
from checks.postgres.fk_type_mismatch import Reference, find_references
from checks.units import counted

# The sample: TABLESAMPLE SYSTEM reads whole pages at random, so a big table costs a few pages.
# NOT EXISTS in a WHERE clause, so that the planner makes it one anti-join (a hash of the keys, or
# an index probe per sampled value when that is cheaper); inside an aggregate's FILTER it stayed a
# subplan run once per sampled row, which read the whole referenced table each time when the
# referenced column (a config-declared reference's) has no index.
SAMPLE_QUERY = """
WITH s AS MATERIALIZED (SELECT c.{column} AS v FROM {table} c {sample} WHERE c.{column} IS NOT NULL LIMIT $1)
SELECT (SELECT count(*) FROM s) AS sampled,
       (SELECT count(*) FROM s WHERE NOT EXISTS (SELECT 1 FROM {ref_table} r WHERE r.{ref_column} = s.v)) AS orphans
"""


class Options(CheckOptions):
    implied: bool = Field(default=True, description="Judge references implied by column names, not only declared ones.")
    sample_rows: int = Field(default=10_000, ge=100, le=10_000_000, description="Rows of a referencing table checked at most.")
    budget_seconds: float = Field(
        default=5.0, gt=0, le=600, description="Time spent counting at most; references left are listed as not counted.")


@dataclass(frozen=True)
class Count:
    sampled: int | None
    orphans: int | None
    sampled_all: bool
    note: str | None = None


@dataclass(frozen=True)
class Facts:
    references: tuple[Reference, ...]
    counts: dict[tuple[int, int], Count]


def unenforced(references: list[Reference]) -> list[Reference]:
    """Single-column references with no constraint and the same type on both sides."""
    return [r for r in references if r.origin != "declared" and len(r.columns) == 1 and not r.mismatched]


class OrphanedReferences(Check):
    id = "postgres.orphaned-references"
    needs = (CatalogSnapshot,)
    engine = "postgres"
    title = "Reference without a constraint pointing at missing rows"
    severity = Severity.MEDIUM
    fix_availability = FixAvailability.SOMETIMES
    Options = Options
    rationale = (
        "A reference kept by convention only (no foreign key) drifts: deletes leave rows pointing at nothing, "
        "joins silently drop them, and a foreign key can no longer be added until they are cleaned up."
    )

    async def gather(self, session, scope: Scope) -> Facts:
        import asyncpg  # the driver only when a check runs: the catalog loads without it

        snapshot = await self.fact(CatalogSnapshot, session, scope)
        references, _ = find_references(snapshot, scope.config.expect.references, scope.options.implied)
        counts: dict[tuple[int, int], Count] = {}
        limit = scope.options.sample_rows
        deadline = time.monotonic() + scope.options.budget_seconds
        for ref in unenforced(references):
            key = (ref.table.oid, ref.columns[0].num)
            if time.monotonic() > deadline:
                counts[key] = Count(None, None, False, "not counted: budget_seconds ran out")
                scope.skipped(f"{ref.table.qualified}.{quote_ident(ref.columns[0].name)} → {ref.ref_table.qualified}",
                              f"budget_seconds = {scope.options.budget_seconds:g} ran out")
                continue
            if not (ref.table.readable and ref.ref_table.readable):
                counts[key] = Count(None, None, False, "not counted: this role may not SELECT from both tables")
                continue
            rows = ref.table.rows or 0
            sample = "" if rows <= limit else f"TABLESAMPLE SYSTEM ({min(100.0, 200.0 * limit / rows):.4f})"
            query = SAMPLE_QUERY.format(ref_table=ref.ref_table.qualified, ref_column=quote_ident(ref.ref_columns[0].name),
                                        column=quote_ident(ref.columns[0].name), table=ref.table.qualified, sample=sample)
            try:
                row = await session.fetchrow(query, limit)
            except (asyncpg.QueryCanceledError, asyncpg.LockNotAvailableError, asyncpg.InsufficientPrivilegeError) as exc:
                counts[key] = Count(None, None, False, f"not counted: {type(exc).__name__}: {exc}")
                continue
            counts[key] = Count(row["sampled"], row["orphans"], not sample and row["sampled"] < limit)
        return Facts(tuple(references), counts)

    def evaluate(self, facts: Facts, scope: Scope) -> list[Finding]:
        findings = []
        for ref in unenforced(list(facts.references)):
            column, ref_column = ref.columns[0], ref.ref_columns[0]
            count = facts.counts.get((ref.table.oid, column.num))
            if count is None or not count.orphans:
                continue
            share = count.orphans / max(count.sampled or 1, 1)
            where = f"{ref.table.qualified}.{quote_ident(column.name)}"
            target = f"{ref.ref_table.qualified}({quote_ident(ref_column.name)})"
            scope_words = "of all its non-null values" if count.sampled_all else f"of a sample of {count.sampled:,} values"
            constraint = quote_ident(f"{ref.table.name}_{column.name}_fkey"[:63])
            findings.append(self.finding(
                scope, object=where, key=target,
                title=f"{where}: {counted(count.orphans, 'value')} {'points' if count.orphans == 1 else 'point'} at no row of "
                      f"{ref.ref_table.name}",
                message=(f"{where} refers to {target} ({ref.origin}: {ref.how}) without a foreign key, and "
                         f"{count.orphans:,} {scope_words} ({share:.1%}) match no row there."),
                evidence={"reference": f"{where} → {target}", "origin": ref.origin, "how": ref.how,
                          "sampled": count.sampled, "orphans": count.orphans, "share": round(share, 4),
                          "whole_table": count.sampled_all},
                fix=Fix(
                    summary=f"Clean up, then enforce {where} → {target}",
                    steps=(),
                    safety=FixSafety.MANUAL,
                    notes=(f"Decide what the orphans mean (delete them, or set them NULL), then: ALTER TABLE "
                           f"{ref.table.qualified} ADD CONSTRAINT {constraint} FOREIGN KEY ({quote_ident(column.name)}) "
                           f"REFERENCES {target} NOT VALID; and VALIDATE CONSTRAINT {constraint} once clean."),
                ),
            ))
        skipped = sorted(f"{r.table.qualified}.{quote_ident(r.columns[0].name)}" for r in unenforced(list(facts.references))
                         if (c := facts.counts.get((r.table.oid, r.columns[0].num))) is not None and c.orphans is None)
        if skipped:
            findings.append(self.finding(
                scope, object="references", key="not counted", severity=Severity.INFO,
                title=f"{counted(len(skipped), 'unenforced reference')} not counted",
                message="These references could not be counted this run (no privilege, a timeout or the time budget): "
                        + ", ".join(skipped[:20]) + (" …" if len(skipped) > 20 else "") + ".",
                evidence={"references": skipped, "why": sorted({facts.counts[k].note for k in facts.counts
                                                                 if facts.counts[k].note})},
            ))
        return findings
