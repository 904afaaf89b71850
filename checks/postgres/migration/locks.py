"""PostgreSQL's table-level lock modes, their conflicts and which statements take which, as data.

From the PostgreSQL manual, "Explicit Locking" (13.3.1, Table 13.2 "Conflicting Lock Modes")
and the lock level of each ALTER TABLE subcommand in the ALTER TABLE reference page. Names are
the manual's; `PG_LOCKS_MODE` maps them to pg_locks.mode."""

from __future__ import annotations

ACCESS_SHARE = "ACCESS SHARE"
ROW_SHARE = "ROW SHARE"
ROW_EXCLUSIVE = "ROW EXCLUSIVE"
SHARE_UPDATE_EXCLUSIVE = "SHARE UPDATE EXCLUSIVE"
SHARE = "SHARE"
SHARE_ROW_EXCLUSIVE = "SHARE ROW EXCLUSIVE"
EXCLUSIVE = "EXCLUSIVE"
ACCESS_EXCLUSIVE = "ACCESS EXCLUSIVE"

# Weakest first: the order the manual lists them in, and the order a statement's strongest lock is
# chosen by.
MODES = (
    ACCESS_SHARE, ROW_SHARE, ROW_EXCLUSIVE, SHARE_UPDATE_EXCLUSIVE,
    SHARE, SHARE_ROW_EXCLUSIVE, EXCLUSIVE, ACCESS_EXCLUSIVE,
)

PG_LOCKS_MODE = {
    ACCESS_SHARE: "AccessShareLock",
    ROW_SHARE: "RowShareLock",
    ROW_EXCLUSIVE: "RowExclusiveLock",
    SHARE_UPDATE_EXCLUSIVE: "ShareUpdateExclusiveLock",
    SHARE: "ShareLock",
    SHARE_ROW_EXCLUSIVE: "ShareRowExclusiveLock",
    EXCLUSIVE: "ExclusiveLock",
    ACCESS_EXCLUSIVE: "AccessExclusiveLock",
}
FROM_PG_LOCKS = {v: k for k, v in PG_LOCKS_MODE.items()}

# Table 13.2: the modes each mode conflicts with (the relation is symmetric).
CONFLICTS: dict[str, frozenset[str]] = {
    ACCESS_SHARE: frozenset({ACCESS_EXCLUSIVE}),
    ROW_SHARE: frozenset({EXCLUSIVE, ACCESS_EXCLUSIVE}),
    ROW_EXCLUSIVE: frozenset({SHARE, SHARE_ROW_EXCLUSIVE, EXCLUSIVE, ACCESS_EXCLUSIVE}),
    SHARE_UPDATE_EXCLUSIVE: frozenset(
        {SHARE_UPDATE_EXCLUSIVE, SHARE, SHARE_ROW_EXCLUSIVE, EXCLUSIVE, ACCESS_EXCLUSIVE}
    ),
    SHARE: frozenset({ROW_EXCLUSIVE, SHARE_UPDATE_EXCLUSIVE, SHARE_ROW_EXCLUSIVE, EXCLUSIVE, ACCESS_EXCLUSIVE}),
    SHARE_ROW_EXCLUSIVE: frozenset(
        {ROW_EXCLUSIVE, SHARE_UPDATE_EXCLUSIVE, SHARE, SHARE_ROW_EXCLUSIVE, EXCLUSIVE, ACCESS_EXCLUSIVE}
    ),
    EXCLUSIVE: frozenset(
        {ROW_SHARE, ROW_EXCLUSIVE, SHARE_UPDATE_EXCLUSIVE, SHARE, SHARE_ROW_EXCLUSIVE, EXCLUSIVE, ACCESS_EXCLUSIVE}
    ),
    ACCESS_EXCLUSIVE: frozenset(MODES),
}


def conflicts(a: str, b: str) -> bool:
    return b in CONFLICTS[a]


def strongest(modes: list[str]) -> str:
    return max(modes, key=MODES.index)


def blocks(mode: str) -> str:
    """What ordinary traffic a lock held in `mode` stops: SELECT takes ACCESS SHARE, INSERT,
    UPDATE and DELETE take ROW EXCLUSIVE (SELECT ... FOR UPDATE takes ROW SHARE)."""
    reads = conflicts(mode, ACCESS_SHARE)
    writes = conflicts(mode, ROW_EXCLUSIVE)
    if reads and writes:
        return "reads and writes"
    if writes:
        return "writes"
    if mode == SHARE_UPDATE_EXCLUSIVE:
        return "other DDL, VACUUM and ANALYZE (not reads or writes)"
    if mode == ROW_SHARE or mode == ROW_EXCLUSIVE:
        return "table DDL and explicit SHARE/EXCLUSIVE locks (not reads or writes)"
    return "ACCESS EXCLUSIVE only (DDL that rewrites or drops)"


def strong(mode: str) -> bool:
    """A lock ordinary reads or writes queue behind."""
    return conflicts(mode, ROW_EXCLUSIVE)


# The ALTER TABLE reference page: every subcommand takes ACCESS EXCLUSIVE unless listed here.
ALTER_TABLE_LOCKS: dict[str, str] = {
    "AT_SetStatistics": SHARE_UPDATE_EXCLUSIVE,
    "AT_SetOptions": SHARE_UPDATE_EXCLUSIVE,          # ALTER COLUMN SET (attribute_option)
    "AT_ResetOptions": SHARE_UPDATE_EXCLUSIVE,
    "AT_ClusterOn": SHARE_UPDATE_EXCLUSIVE,
    "AT_DropCluster": SHARE_UPDATE_EXCLUSIVE,
    "AT_ValidateConstraint": SHARE_UPDATE_EXCLUSIVE,
    "AT_AttachPartition": SHARE_UPDATE_EXCLUSIVE,     # on the parent (ACCESS EXCLUSIVE on the partition)
    "AT_DetachPartitionFinalize": SHARE_UPDATE_EXCLUSIVE,
    "AT_EnableTrig": SHARE_ROW_EXCLUSIVE,
    "AT_EnableAlwaysTrig": SHARE_ROW_EXCLUSIVE,
    "AT_EnableReplicaTrig": SHARE_ROW_EXCLUSIVE,
    "AT_DisableTrig": SHARE_ROW_EXCLUSIVE,
    "AT_EnableTrigAll": SHARE_ROW_EXCLUSIVE,
    "AT_DisableTrigAll": SHARE_ROW_EXCLUSIVE,
    "AT_EnableTrigUser": SHARE_ROW_EXCLUSIVE,
    "AT_DisableTrigUser": SHARE_ROW_EXCLUSIVE,
    "AT_AlterConstraint": SHARE_ROW_EXCLUSIVE,
}
# ADD CONSTRAINT ... FOREIGN KEY takes SHARE ROW EXCLUSIVE on the table and on the referenced
# table; other ADD CONSTRAINTs take ACCESS EXCLUSIVE.
FOREIGN_KEY_LOCK = SHARE_ROW_EXCLUSIVE
# SET (storage_parameter): SHARE UPDATE EXCLUSIVE for these, ACCESS EXCLUSIVE for the others.
WEAK_RELOPTIONS = frozenset({
    "fillfactor", "toast_tuple_target", "parallel_workers", "vacuum_truncate", "vacuum_index_cleanup",
    "log_autovacuum_min_duration",
})
WEAK_RELOPTION_PREFIXES = ("autovacuum_", "toast.autovacuum_")
