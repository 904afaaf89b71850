"""PostgreSQL figures for snapshots: index and table usage counters, sizes from the catalog
(relpages, so no lock is taken on a table a migration holds), pg_stat_statements totals, and the
WAL each inactive replication slot retains (its growth between two snapshots)."""

from __future__ import annotations

from typing import Any

from checks.snapshots import Figure
from checks.snapshots.diff import MIN_GROWTH, FigureChange, FigureKind, growth, usage_stopped

MIN_CALLS = 5  # a statement needs this many calls in the window before its mean time is judged
STATEMENT_CHARS = 120  # a statement's text as diff shows it (the snapshot keeps 300)

INDEXES_SQL = """/* dbvitals */
SELECT format('%I.%I', s.schemaname, s.indexrelname) AS name, format('%I.%I', s.schemaname, s.relname) AS tbl,
       s.idx_scan, c.relpages::bigint * current_setting('block_size')::bigint AS bytes
FROM pg_stat_user_indexes s JOIN pg_class c ON c.oid = s.indexrelid
"""

TABLES_SQL = """/* dbvitals */
SELECT format('%I.%I', s.schemaname, s.relname) AS name, s.seq_scan, s.seq_tup_read, s.idx_scan,
       s.n_tup_ins, s.n_tup_upd, s.n_tup_del, s.n_live_tup, s.n_dead_tup,
       c.relpages::bigint * current_setting('block_size')::bigint AS bytes
FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
"""

SLOTS_SQL = """/* dbvitals */
SELECT slot_name AS name,
       pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END,
                       restart_lsn)::bigint AS retained_bytes
FROM pg_replication_slots WHERE NOT active
"""

# total_exec_time from PostgreSQL 13 on, total_time before.
STATEMENTS_SQL = """/* dbvitals */
SELECT queryid::text AS id, left(query, 300) AS query, calls, {total} AS total_ms, rows
FROM {schema}.pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND query NOT LIKE '%/* dbvitals */%' AND queryid IS NOT NULL
ORDER BY {total} DESC
LIMIT 500
"""


async def gather(session: Any) -> list[Figure]:
    figures: list[Figure] = []
    for r in await session.fetch(INDEXES_SQL):
        figures.append(("pg.index", r["name"], {"table": r["tbl"], "scans": r["idx_scan"], "bytes": r["bytes"]}))
    for r in await session.fetch(TABLES_SQL):
        figures.append(("pg.table", r["name"], {k: r[k] for k in (
            "seq_scan", "seq_tup_read", "idx_scan", "n_tup_ins", "n_tup_upd", "n_tup_del", "n_live_tup",
            "n_dead_tup", "bytes")}))
    for r in await session.fetch(SLOTS_SQL):
        figures.append(("pg.slot", r["name"], {"retained_bytes": r["retained_bytes"]}))
    schema = await session.fetchval(
        "/* dbvitals */ SELECT quote_ident(n.nspname) FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'pg_stat_statements'"
    )
    if schema:
        version = int(await session.fetchval("/* dbvitals */ SELECT current_setting('server_version_num')"))
        total = "total_exec_time" if version >= 130000 else "total_time"
        try:
            rows = await session.fetch(STATEMENTS_SQL.format(schema=schema, total=total))
        except Exception:  # pg_stat_statements installed but not preloaded: nothing to read
            rows = []
        for r in rows:
            figures.append(("pg.statement", r["id"], {"query": r["query"], "calls": r["calls"],
                                                      "total_ms": round(float(r["total_ms"]), 3), "rows": r["rows"]}))
    return figures


def statement_label(query: str | None, queryid: str) -> str:
    """A statement as a person knows it: its normalized text, shortened; the queryid only when
    the snapshot holds no text (`-4966738708809000546` means nothing to anyone)."""
    text = " ".join((query or "").split())
    if not text:
        return f"queryid {queryid}"
    return text if len(text) <= STATEMENT_CHARS else text[: STATEMENT_CHARS - 1] + "…"


def _statement(target: str, kind: str, name: str, then: dict[str, Any] | None, now: dict[str, Any]) -> FigureChange | None:
    label = statement_label(now.get("query"), name)
    if then is None:
        if (now.get("calls") or 0) >= MIN_CALLS:
            mean = now["total_ms"] / now["calls"]
            return FigureChange(target, kind, label, f"new statement: {now['calls']} calls, {mean:.2f} ms per call",
                                after=round(mean, 3), score=now["total_ms"], ref=name)
        return None
    calls = (now.get("calls") or 0) - (then.get("calls") or 0)
    if calls < MIN_CALLS or not then.get("calls"):
        return None
    window_mean = ((now.get("total_ms") or 0) - (then.get("total_ms") or 0)) / calls
    mean_before = (then.get("total_ms") or 0) / then["calls"]
    if mean_before <= 0 or window_mean < mean_before * MIN_GROWTH:
        return None
    return FigureChange(target, kind, label,
                        f"mean time per call grew {window_mean / mean_before:.1f}x ({mean_before:.2f} → "
                        f"{window_mean:.2f} ms over {calls} calls)",
                        before=round(mean_before, 3), after=round(window_mean, 3),
                        score=(window_mean - mean_before) * calls, ref=name)




def _seq_scans(target: str, kind: str, name: str, then: dict[str, Any] | None, now: dict[str, Any]) -> FigureChange | None:
    if then is None:
        return None
    scans = (now.get("seq_scan") or 0) - (then.get("seq_scan") or 0)
    rows = (now.get("seq_tup_read") or 0) - (then.get("seq_tup_read") or 0)
    if scans <= 0 or rows < 10_000:
        return None
    return FigureChange(target, kind, name, f"{scans:,} sequential scans reading {rows:,} rows since the earlier snapshot",
                        before=then.get("seq_scan"), after=now.get("seq_scan"), score=float(rows))


# How `dbvitals diff` reads these figures (checks.snapshots.diff).
KINDS = {
    "pg.statement": FigureKind(_statement),
    "pg.index": FigureKind(usage_stopped("scans"), gone="index dropped", headline="scans"),
    "pg.table": FigureKind(_seq_scans, gone="table dropped", headline="seq_scan"),
    "pg.slot": FigureKind(growth("retained_bytes", "bytes of WAL retained"),
                          gone="inactive slot dropped or its consumer back", headline="retained_bytes"),
}
