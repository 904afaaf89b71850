"""postgres.bloat: tables and btree indexes much larger than their rows need.

The size is estimated from the statistics, as the well-known estimation queries do: rows
(`reltuples`) × the width of a row or index entry (`pg_stats.avg_width`, null fractions, tuple
headers, alignment, line pointers) ÷ the room a page offers at its fillfactor, against the pages the
relation has. That is an estimate — it is labelled so — and where pgstattuple is installed the
relations flagged are measured (`pgstattuple_approx` for tables, `pgstatindex` for indexes, a few
and not too large ones) and kept only if the measure agrees.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import Field

from checks.contract import Check, CheckOptions, Scope
from checks.model import Finding, Fix, FixAvailability, FixSafety, Severity
from checks.postgres._catalog import qualified, quote_ident
from checks.postgres._fixes import sql
from checks.units import human_bytes

# Widths from pg_stats (analysed columns only); a relation whose columns were never analysed is skipped.
TABLES_QUERY = """
SELECT c.oid, n.nspname AS schema, c.relname AS name, c.relpages::bigint AS pages, c.reltuples::float8 AS tuples,
       current_setting('block_size')::int AS block_size,
       coalesce((SELECT option_value::int FROM pg_options_to_table(c.reloptions) WHERE option_name = 'fillfactor'), 100)
           AS fillfactor,
       st.width, st.nullable, st.analysed, a.columns
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL (SELECT count(*) AS columns FROM pg_attribute a
                    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) a
CROSS JOIN LATERAL (SELECT sum((1 - s.null_frac) * s.avg_width)::float8 AS width,
                           bool_or(s.null_frac > 0) AS nullable, count(*) AS analysed
                    FROM pg_stats s
                    WHERE s.schemaname = n.nspname AND s.tablename = c.relname AND NOT s.inherited) st
WHERE c.relkind IN ('r', 'm') AND c.relpages >= $1 AND c.reltuples >= 0
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'
"""

INDEXES_QUERY = """
SELECT i.indexrelid AS oid, n.nspname AS schema, ic.relname AS name, t.relname AS table_name,
       ic.relpages::bigint AS pages, ic.reltuples::float8 AS tuples, current_setting('block_size')::int AS block_size,
       coalesce((SELECT option_value::int FROM pg_options_to_table(ic.reloptions) WHERE option_name = 'fillfactor'), 90)
           AS fillfactor,
       (SELECT sum(s.avg_width)::float8 FROM pg_attribute a
        JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = t.relname AND s.attname = a.attname AND NOT s.inherited
        WHERE a.attrelid = t.oid AND a.attnum = ANY (i.indkey::int2[])) AS width,
       (SELECT count(*) FROM pg_attribute a JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = t.relname
            AND s.attname = a.attname AND NOT s.inherited
        WHERE a.attrelid = t.oid AND a.attnum = ANY (i.indkey::int2[])) = i.indnatts AS analysed
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = ic.relnamespace
JOIN pg_am am ON am.oid = ic.relam
WHERE am.amname = 'btree' AND ic.relkind = 'i' AND i.indexprs IS NULL AND i.indisvalid AND ic.relpages >= $1
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'
"""

PGSTATTUPLE_QUERY = "SELECT extnamespace::regnamespace::text AS schema FROM pg_extension WHERE extname = 'pgstattuple'"

PAGE_HEADER = 24
BTREE_SPECIAL = 16
TUPLE_HEADER = 23
LINE_POINTER = 4
INDEX_TUPLE_HEADER = 8
ALIGN = 8


class Options(CheckOptions):
    min_bytes: int = Field(default=100 * 1024**2, ge=0, description="Report only when the bloat is at least this many bytes.")
    min_ratio: float = Field(default=0.5, gt=0, lt=1, description="Report only when at least this share of the relation is bloat.")
    confirm: int = Field(default=5, ge=0, description="Measure at most this many flagged relations with pgstattuple.")
    confirm_max_bytes: int = Field(
        default=1024**3, ge=0, description="Measure only relations up to this size (pgstatindex reads the whole index).")


def _align(size: float) -> float:
    return -(-size // ALIGN) * ALIGN


@dataclass(frozen=True)
class Relation:
    oid: int
    schema: str
    name: str
    kind: str  # "table" or "index"
    pages: int
    tuples: float
    block_size: int
    fillfactor: int
    width: float | None
    analysed: bool
    table_name: str | None = None
    nullable: bool = False
    columns: int = 0

    @property
    def qualified(self) -> str:
        return qualified(self.schema, self.name)

    @property
    def bytes(self) -> int:
        return self.pages * self.block_size

    def expected_pages(self) -> float:
        if self.kind == "table":
            header = _align(TUPLE_HEADER + (-(-self.columns // 8) if self.nullable else 0))
            entry = header + _align(self.width or 0) + LINE_POINTER
            room = (self.block_size - PAGE_HEADER) * self.fillfactor / 100
            return -(-(self.tuples * entry) // room)
        entry = _align(INDEX_TUPLE_HEADER + (self.width or 0)) + LINE_POINTER
        room = (self.block_size - PAGE_HEADER - BTREE_SPECIAL) * self.fillfactor / 100
        return -(-(self.tuples * entry) // room) + 1  # the metapage

    def bloat(self) -> tuple[int, float]:
        """(bytes, share) beyond what the rows need."""
        extra = max(0.0, self.pages - self.expected_pages())
        return int(extra * self.block_size), (extra / self.pages if self.pages else 0.0)


@dataclass(frozen=True)
class Facts:
    relations: tuple[Relation, ...]
    pgstattuple: str | None  # its schema, when installed
    measured: dict[int, float] = field(default_factory=dict)  # oid → share measured as free or dead


def flagged(relations: tuple[Relation, ...], options: Options) -> list[Relation]:
    out = []
    for rel in relations:
        if not rel.analysed or rel.width is None:
            continue
        size, share = rel.bloat()
        if size >= options.min_bytes and share >= options.min_ratio:
            out.append(rel)
    return sorted(out, key=lambda r: -r.bloat()[0])


class Bloat(Check):
    id = "postgres.bloat"
    engine = "postgres"
    title = "Table or index bloat"
    severity = Severity.LOW
    fix_availability = FixAvailability.ALWAYS
    Options = Options
    rationale = (
        "Space freed by updates and deletes is reused but rarely returned: a bloated table or index is read, "
        "cached and backed up at its full size. Indexes rebuild online (REINDEX CONCURRENTLY); tables need "
        "VACUUM FULL (an exclusive lock) or pg_repack."
    )

    async def gather(self, session, scope: Scope) -> Facts:
        options = scope.options
        min_pages = max(1, options.min_bytes // 8192)
        relations = [Relation(r["oid"], r["schema"], r["name"], "table", r["pages"], r["tuples"], r["block_size"],
                              r["fillfactor"], r["width"], bool(r["analysed"]), nullable=bool(r["nullable"]),
                              columns=r["columns"])
                     for r in await session.fetch(TABLES_QUERY, min_pages)]
        relations += [Relation(r["oid"], r["schema"], r["name"], "index", r["pages"], r["tuples"], r["block_size"],
                               r["fillfactor"], r["width"], bool(r["analysed"]), table_name=r["table_name"])
                      for r in await session.fetch(INDEXES_QUERY, min_pages)]
        ext = await session.fetchval(PGSTATTUPLE_QUERY)
        measured: dict[int, float] = {}
        if ext:
            schema = quote_ident(ext)
            for rel in [r for r in flagged(tuple(relations), options) if r.bytes <= options.confirm_max_bytes][:options.confirm]:
                if rel.kind == "table":
                    row = await session.fetchrow(
                        f"SELECT approx_free_percent + dead_tuple_percent AS waste FROM {schema}.pgstattuple_approx($1::oid::regclass)",
                        rel.oid)
                    measured[rel.oid] = float(row["waste"]) / 100
                else:
                    row = await session.fetchrow(
                        f"SELECT avg_leaf_density FROM {schema}.pgstatindex($1::oid::regclass)", rel.oid)
                    density = float(row["avg_leaf_density"])  # NaN for an empty index
                    measured[rel.oid] = max(0.0, 1 - density / rel.fillfactor) if density == density else 1.0
        return Facts(tuple(relations), ext, measured)

    def evaluate(self, facts: Facts, scope: Scope) -> list[Finding]:
        options = scope.options
        findings = []
        for rel in flagged(facts.relations, options):
            size, share = rel.bloat()
            measured = facts.measured.get(rel.oid)
            if measured is not None and measured < options.min_ratio:
                continue  # pgstattuple measured less than the estimate: trust the measure
            evidence = {
                "bytes": rel.bytes, "size": human_bytes(rel.bytes), "estimated_bloat_bytes": size,
                "estimated_bloat": human_bytes(size), "estimated_share": round(share, 3),
                "rows_estimate": int(rel.tuples), "fillfactor": rel.fillfactor,
                "method": ("measured with pgstattuple (" + ("pgstattuple_approx: free + dead space"
                           if rel.kind == "table" else "pgstatindex: 1 − leaf density / fillfactor") + ")"
                           if measured is not None else
                           "estimate from the statistics (reltuples, pg_stats.avg_width)"
                           + ("" if facts.pgstattuple else "; install pgstattuple to measure it")),
            }
            if measured is not None:
                evidence["measured_share"] = round(measured, 3)
            label = "measured" if measured is not None else "estimate"
            what = f"{rel.kind} {rel.qualified}" + (f" on {rel.table_name}" if rel.table_name else "")
            findings.append(self.finding(
                scope, object=rel.qualified, key=rel.kind,
                severity=Severity.MEDIUM if measured is not None else Severity.LOW,
                title=f"{rel.name} is about {share:.0%} bloat ({human_bytes(size)}, {label})",
                message=(f"The {what} takes {human_bytes(rel.bytes)}; its {int(rel.tuples):,} rows need about "
                         f"{human_bytes(rel.bytes - size)} ({label}"
                         + (f", pgstattuple measures {measured:.0%} free or dead" if measured is not None else "")
                         + ")."),
                evidence=evidence,
                fix=_fix(rel),
            ))
        return findings


def _fix(rel: Relation) -> Fix:
    if rel.kind == "index":
        return Fix(summary=f"Rebuild {rel.name} online",
                   steps=(sql(f"REINDEX INDEX CONCURRENTLY {rel.qualified};", transactional=False),),
                   safety=FixSafety.SAFE,
                   lock="SHARE UPDATE EXCLUSIVE on the table: reads and writes go on; needs room for a second copy "
                        "of the index while it builds; a failed build leaves an INVALID index (…_ccnew) to drop")
    return Fix(summary=f"Compact {rel.name} (pg_repack, or VACUUM FULL in a maintenance window)",
               steps=(sql(f"VACUUM (FULL, ANALYZE, VERBOSE) {rel.qualified};", transactional=False),),
               safety=FixSafety.MANUAL,
               lock=f"VACUUM FULL holds ACCESS EXCLUSIVE on {rel.qualified} while it rewrites it (reads wait too) and "
                    "needs room for a full copy",
               notes="pg_repack does the same online (brief locks only): pg_repack --table "
                     f"'{rel.schema}.{rel.name}' --dbname <database>.")
