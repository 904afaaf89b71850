"""Judge each statement of a migration against the live database: the lock it takes on each table,
whether it rewrites or scans the table while holding it, how long that may take on this table,
who it would queue behind now, and findings with the safer way. Nothing is executed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pglast import ast
from pglast.enums import AlterTableType, ConstrType, ObjectType, ReindexObjectType, TransactionStmtKind
from pglast.enums import VariableSetKind

from checks.postgres.migration import locks as L
from checks.postgres.migration import statement_rules as rules
from checks.postgres.migration.catalog import PRECONDITION_LIMIT, Catalog, Preconditions, Table
from checks.postgres.migration.parse import Statement, walk

SCHEMA = "dbvitals.migration/1"
SEVERITY_ORDER = ("info", "low", "medium", "high", "critical")

# Throughputs for the estimate (MB/s): a conservative guess for a busy server's disks, stated
# with every estimate; the real figure depends on I/O, CPU, indexes and concurrent load.
SCAN_MBPS = 200.0
REWRITE_MBPS = 50.0  # the heap copied and every index rebuilt: applied to the total size
INDEX_BUILD_MBPS = 40.0
UPDATE_MBPS = 25.0
MB = 1024 * 1024

# Severity by the table's weight: a rewrite of an empty table is not high.
BIG_ROWS = 100_000
MEDIUM_ROWS = 10_000
BIG_BYTES = 1024 * MB
MEDIUM_BYTES = 64 * MB

# LockStmt.mode: the lock manager's numbers, 1 (AccessShareLock) to 8 (AccessExclusiveLock).
LOCK_STMT_MODES = {i + 1: mode for i, mode in enumerate(L.MODES)}


def _max_severity(a: str, b: str) -> str:
    return a if SEVERITY_ORDER.index(a) >= SEVERITY_ORDER.index(b) else b


def _names(items: Any) -> list[str]:
    return [getattr(i, "sval", str(i)) for i in items or ()]


def _rv(rv: Any) -> tuple[str | None, str]:
    return (rv.schemaname or None, rv.relname)


def _written(ref: tuple[str | None, str]) -> str:
    return f"{ref[0]}.{ref[1]}" if ref[0] else ref[1]


@dataclass
class Touch:
    """One table a statement locks, and what it does to it under that lock."""

    ref: tuple[str | None, str]
    mode: str
    rewrites: list[str] = field(default_factory=list)
    scans: list[str] = field(default_factory=list)
    builds: list[str] = field(default_factory=list)  # index builds (a read of the whole heap)
    updates_all: bool = False
    # Data preconditions to count on the live table: ("nulls", [col]), ("duplicates", cols),
    # ("orphans", cols, parent ref, parent keys), ("validate", constraint name).
    preconditions: list[tuple[Any, ...]] = field(default_factory=list)
    table: Table | None = None
    created_here: bool = False
    dropped_here: bool = False


@dataclass
class Result:
    statement: Statement
    touches: list[Touch] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    waits: list[dict[str, Any]] = field(default_factory=list)
    estimate: float | None = None
    basis: str = ""

    def touch(self, ref: tuple[str | None, str], mode: str) -> Touch:
        for t in self.touches:
            if t.ref == ref:
                t.mode = L.strongest([t.mode, mode])
                return t
        t = Touch(ref, mode)
        self.touches.append(t)
        return t

    def to_dict(self) -> dict[str, Any]:
        s = self.statement
        modes = [t.mode for t in self.touches]
        lock = L.strongest(modes) if modes else None
        return {
            "file": s.file,
            "line": s.line,
            "sql": s.sql,
            "tables": [t.table.name if t.table else _written(t.ref) for t in self.touches],
            "lock": lock,
            "locks": [{"table": t.table.name if t.table else _written(t.ref), "mode": t.mode} for t in self.touches],
            "blocks": L.blocks(lock) if lock else None,
            "rewrites": any(t.rewrites for t in self.touches),
            "scans": any(t.scans or t.builds or t.rewrites or t.updates_all for t in self.touches),
            "why": [w for t in self.touches for w in t.rewrites + t.scans + t.builds],
            "estimate_seconds": self.estimate,
            "estimate_basis": self.basis,
            "waits_behind": self.waits,
            "findings": self.findings,
            "notes": self.notes,
        }


class Analyzer:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.data = Preconditions(catalog.session)
        self.lock_timeout = False  # a non-zero lock_timeout set earlier in the migration
        self.lock_timeout_local = False
        self.statement_timeout = False  # the same for statement_timeout
        self.statement_timeout_local = False
        self.in_transaction = False
        self.created: set[str] = set()  # tables created earlier in the migration (relname)
        # Renamed earlier in the migration: the name now → the table's name on the target; and
        # columns: (table on the target, name now) → the column's name on the target.
        self.renamed: dict[tuple[str | None, str], tuple[str | None, str]] = {}
        self.renamed_columns: dict[tuple[tuple[str | None, str], str], str] = {}
        self.dropped: set[tuple[str | None, str]] = set()  # tables dropped earlier in the migration
        # Indexes created earlier in the migration: their table.
        self.created_indexes: dict[tuple[str | None, str], tuple[str | None, str]] = {}
        # Strong locks taken earlier in the open transaction block: held until it ends.
        self.held: dict[str, tuple[str, int]] = {}

    async def run(self, statements: list[Statement]) -> list[dict[str, Any]]:
        await self.catalog.prefetch([(node.schemaname, node.relname) for statement in statements
                                     for node in walk(statement.node)
                                     if isinstance(node, ast.RangeVar) and node.relname])
        out = []
        for statement in statements:
            result = Result(statement)
            self._statement_rules(result, statement.node)
            await self._classify(result, statement.node)
            await self._measure(result)
            self._judge(result)
            self._held_in_transaction(result)
            out.append(result.to_dict())
        return out

    # --- what the statement does, from the manual ---------------------------------------------

    async def _classify(self, r: Result, node: Any) -> None:
        if isinstance(node, ast.TransactionStmt):
            kind = node.kind
            if kind in (TransactionStmtKind.TRANS_STMT_BEGIN, TransactionStmtKind.TRANS_STMT_START):
                self.in_transaction = True
            elif kind in (TransactionStmtKind.TRANS_STMT_COMMIT, TransactionStmtKind.TRANS_STMT_ROLLBACK,
                          TransactionStmtKind.TRANS_STMT_PREPARE):
                self.in_transaction = False
                if self.lock_timeout_local:
                    self.lock_timeout = self.lock_timeout_local = False
                if self.statement_timeout_local:
                    self.statement_timeout = self.statement_timeout_local = False
        elif isinstance(node, ast.VariableSetStmt):
            if node.name in ("lock_timeout", "statement_timeout"):
                set_to_value = node.kind == VariableSetKind.VAR_SET_VALUE
                value = node.args[0].val if set_to_value and node.args else None
                zero = getattr(value, "ival", None) == 0 or getattr(value, "sval", None) in ("0", "0ms", "0s")
                active = set_to_value and not zero
                setattr(self, node.name, active)
                setattr(self, f"{node.name}_local", active and bool(node.is_local))
        elif isinstance(node, ast.CreateStmt):
            if node.relation is not None and node.relation.relname:
                self.created.add(node.relation.relname)
                self.dropped.discard(_rv(node.relation))
            for element in node.tableElts or ():
                for c in (getattr(element, "constraints", None) or ()) if isinstance(element, ast.ColumnDef) else (element,):
                    if isinstance(c, ast.Constraint) and c.contype == ConstrType.CONSTR_FOREIGN and c.pktable:
                        r.touch(_rv(c.pktable), L.SHARE_ROW_EXCLUSIVE)
        elif isinstance(node, ast.IndexStmt):
            if node.idxname and node.relation is not None:
                self.created_indexes[(node.relation.schemaname or None, node.idxname)] = _rv(node.relation)
            t = r.touch(_rv(node.relation), L.SHARE_UPDATE_EXCLUSIVE if node.concurrent else L.SHARE)
            t.builds.append("builds the index: reads the whole table" + ("" if node.concurrent else " while blocking writes"))
            self._index_findings(r, node, t)
        elif isinstance(node, ast.AlterTableStmt):
            await self._alter_table(r, node)
        elif isinstance(node, ast.RenameStmt):
            await self._rename(r, node)
        elif isinstance(node, ast.DropStmt):
            await self._drop(r, node)
        elif isinstance(node, ast.ReindexStmt):
            await self._reindex(r, node)
        elif isinstance(node, ast.VacuumStmt):
            options = {o.defname for o in node.options or ()}
            full = "full" in options and node.is_vacuumcmd
            for rel in node.rels or ():
                t = r.touch(_rv(rel.relation), L.ACCESS_EXCLUSIVE if full else L.SHARE_UPDATE_EXCLUSIVE)
                if full:
                    t.rewrites.append("VACUUM FULL rewrites the table and its indexes")
                    r.findings.append(self._finding("migration.table-rewrite", "weight", (
                        "VACUUM FULL rewrites the whole table under ACCESS EXCLUSIVE: no reads or writes meanwhile."),
                        "Use pg_repack (or pg_squeeze) to compact online; or run it in a maintenance window.", t))
                else:
                    t.scans.append("VACUUM/ANALYZE reads the table (does not block reads or writes)")
        elif isinstance(node, ast.ClusterStmt):
            if node.relation is not None:
                t = r.touch(_rv(node.relation), L.ACCESS_EXCLUSIVE)
                t.rewrites.append("CLUSTER rewrites the table in index order and rebuilds its indexes")
                r.findings.append(self._finding("migration.table-rewrite", "weight", (
                    "CLUSTER rewrites the whole table under ACCESS EXCLUSIVE: no reads or writes meanwhile."),
                    "Use pg_repack --order-by to reorder online; or run it in a maintenance window.", t))
        elif isinstance(node, (ast.UpdateStmt, ast.DeleteStmt)):
            t = r.touch(_rv(node.relation), L.ROW_EXCLUSIVE)
            if node.whereClause is None:
                verb = "UPDATE" if isinstance(node, ast.UpdateStmt) else "DELETE"
                t.updates_all = True
                t.scans.append(f"{verb} without WHERE: every row written and row-locked in one transaction")
                r.findings.append(self._finding(
                    f"migration.unbatched-{verb.lower()}", "weight",
                    f"{verb} of every row in one statement: each row stays locked until it commits, the table "
                    "bloats by its own size, and replicas lag.",
                    f"{verb} in batches by key range (e.g. WHERE id >= $1 AND id < $1 + 10000), one "
                    "transaction per batch, outside the migration's transaction.", t))
        elif isinstance(node, ast.InsertStmt):
            r.touch(_rv(node.relation), L.ROW_EXCLUSIVE)
        elif isinstance(node, ast.TruncateStmt):
            for rel in node.relations or ():
                r.touch(_rv(rel), L.ACCESS_EXCLUSIVE)
        elif isinstance(node, ast.LockStmt):
            for rel in node.relations or ():
                r.touch(_rv(rel), LOCK_STMT_MODES.get(node.mode or 8, L.ACCESS_EXCLUSIVE))
        elif isinstance(node, ast.CreateTrigStmt):
            r.touch(_rv(node.relation), L.SHARE_ROW_EXCLUSIVE)
        elif isinstance(node, ast.RefreshMatViewStmt):
            t = r.touch(_rv(node.relation), L.EXCLUSIVE if node.concurrent else L.ACCESS_EXCLUSIVE)
            t.rewrites.append("REFRESH MATERIALIZED VIEW recomputes the view")
        elif isinstance(node, ast.SelectStmt):
            pass  # reads take ACCESS SHARE; not judged
        else:
            r.notes.append(f"{type(node).__name__}: no lock analysis for this kind of statement")

    def _statement_rules(self, r: Result, node: Any) -> None:
        """The rules the statement breaks by its text alone (statement_rules), judged before the
        statement changes the migration's state (an inner BEGIN is judged inside the outer one)."""
        found = [rules.drop_database(node), rules.transaction_nesting(node, self.in_transaction)]
        if not self.in_transaction:
            found.append(rules.not_robust(node))
        r.findings += [f for f in found if f is not None]
        for column, table in rules.declared_columns(node):
            r.findings += rules.column_type_findings(column, table)

    def _index_findings(self, r: Result, node: Any, t: Touch) -> None:
        columns = [e.name for e in node.indexParams or () if isinstance(e, ast.IndexElem) and e.name]
        if node.unique and not node.whereClause and columns and len(columns) == len(node.indexParams or ()):
            t.preconditions.append(("duplicates", columns))
        if node.concurrent:
            if self.in_transaction:
                r.findings.append(self._finding(
                    "migration.concurrently-in-transaction", "high",
                    "CREATE INDEX CONCURRENTLY cannot run inside a transaction block: this statement fails.",
                    "Run it outside BEGIN ... COMMIT (and tell the migration tool not to wrap it).", t, fixed="high"))
            return
        r.findings.append(self._finding(
            "migration.create-index-blocking", "weight",
            "CREATE INDEX takes SHARE on the table: every INSERT, UPDATE and DELETE waits for the whole build.",
            "CREATE " + ("UNIQUE " if node.unique else "") + "INDEX CONCURRENTLY ... (outside a transaction "
            "block; on failure, DROP INDEX CONCURRENTLY the INVALID index and retry).", t))

    async def _alter_table(self, r: Result, node: Any) -> None:
        ref = _rv(node.relation)
        if node.objtype not in (ObjectType.OBJECT_TABLE, None):
            kind = ObjectType(node.objtype).name.removeprefix("OBJECT_")
            r.touch(ref, L.ACCESS_EXCLUSIVE)
            r.notes.append(f"ALTER {kind}: taken as ACCESS EXCLUSIVE")
            return
        for cmd in node.cmds or ():
            sub = AlterTableType(cmd.subtype).name
            mode = L.ALTER_TABLE_LOCKS.get(sub, L.ACCESS_EXCLUSIVE)
            if sub in ("AT_SetRelOptions", "AT_ResetRelOptions"):
                names = [d.defname for d in cmd.def_ or ()]
                weak = all(n in L.WEAK_RELOPTIONS or n.startswith(L.WEAK_RELOPTION_PREFIXES) for n in names)
                mode = L.SHARE_UPDATE_EXCLUSIVE if weak else L.ACCESS_EXCLUSIVE
            if sub == "AT_AddConstraint" and cmd.def_.contype == ConstrType.CONSTR_FOREIGN:
                mode = L.FOREIGN_KEY_LOCK
            t = r.touch(ref, mode)
            if sub == "AT_AddColumn":
                await self._add_column(r, t, cmd.def_)
            elif sub == "AT_AlterColumnType":
                await self._column_type(r, t, cmd.name, cmd.def_)
            elif sub == "AT_SetNotNull":
                await self._set_not_null(r, t, cmd.name)
            elif sub == "AT_AddConstraint":
                self._add_constraint(r, t, cmd.def_)
            elif sub == "AT_ValidateConstraint":
                t.preconditions.append(("validate", cmd.name))
            elif sub == "AT_AddIndexConstraint":
                r.notes.append("ADD ... USING INDEX: the index exists already; the lock is brief")
            elif sub == "AT_DropColumn":
                r.findings.append(self._finding(
                    "migration.drop-column", "medium",
                    f"Dropping column {cmd.name} breaks every running version of the application that still reads "
                    "or writes it.",
                    "Deploy code that no longer uses the column first; drop it in a later release.", t))
                live = self.renamed.get(ref, ref)
                column = self.renamed_columns.get((live, cmd.name), cmd.name)
                await self._breaking(r, t, live, column, f"column {column} of {_written(live)}")
            elif sub in ("AT_SetTableSpace", "AT_SetLogged", "AT_SetUnLogged", "AT_SetAccessMethod"):
                t.rewrites.append(f"{sub.removeprefix('AT_')} copies the whole table")
                r.findings.append(self._finding(
                    "migration.table-rewrite", "weight",
                    f"{sub.removeprefix('AT_')} rewrites the whole table under ACCESS EXCLUSIVE.",
                    "Run it in a maintenance window, or build the copy online (logical replication, pg_repack).", t))
            elif sub == "AT_AddIdentity":
                pass  # on an existing column: catalog only

    async def _add_column(self, r: Result, t: Touch, col: Any) -> None:
        default = None
        generated_stored = False
        for c in col.constraints or ():
            if c.contype == ConstrType.CONSTR_DEFAULT:
                default = c.raw_expr
            elif c.contype == ConstrType.CONSTR_GENERATED:
                generated_stored = True
            elif c.contype == ConstrType.CONSTR_IDENTITY:
                t.rewrites.append(f"ADD COLUMN {col.colname} GENERATED AS IDENTITY fills every row from a sequence")
        type_name = _names(col.typeName.names)[-1] if col.typeName else ""
        serial = type_name in ("serial", "serial4", "bigserial", "serial8", "smallserial", "serial2")
        identity = any(c.contype == ConstrType.CONSTR_IDENTITY for c in col.constraints or ())
        not_null = any(c.contype in (ConstrType.CONSTR_NOTNULL, ConstrType.CONSTR_PRIMARY) for c in col.constraints or ())
        if not_null and default is None and not (generated_stored or serial or identity):
            t.preconditions.append(("rows", col.colname))
        for c in col.constraints or ():
            if c.contype in (ConstrType.CONSTR_UNIQUE, ConstrType.CONSTR_PRIMARY):
                label = "PRIMARY KEY" if c.contype == ConstrType.CONSTR_PRIMARY else "UNIQUE"
                t.builds.append(f"ADD COLUMN {col.colname} {label} builds its index under ACCESS EXCLUSIVE")
        if serial:
            t.rewrites.append(f"ADD COLUMN {col.colname} {type_name}: nextval() default is volatile")
            keys = {c.contype for c in col.constraints or ()} & {ConstrType.CONSTR_PRIMARY, ConstrType.CONSTR_UNIQUE}
            if keys:
                label = "PRIMARY KEY" if ConstrType.CONSTR_PRIMARY in keys else "UNIQUE"
                r.findings.append(self._finding(
                    "migration.serial-primary-key", "weight",
                    f"ADD COLUMN {col.colname} {type_name} {label} fills every row from the sequence and builds "
                    "the unique index, all under ACCESS EXCLUSIVE: no reads or writes meanwhile.",
                    f"ADD COLUMN {col.colname} bigint (no default); set a DEFAULT from a new sequence; backfill in "
                    f"batches; CREATE UNIQUE INDEX CONCURRENTLY; then ADD CONSTRAINT ... {label} USING INDEX.",
                    t))
        if generated_stored:
            t.rewrites.append(f"ADD COLUMN {col.colname} GENERATED ... STORED computes every row")
        if default is not None:
            volatile = await self._volatile_functions(default)
            if volatile:
                t.rewrites.append(
                    f"ADD COLUMN {col.colname} DEFAULT {', '.join(volatile)}: a volatile default is evaluated "
                    "for every row (pg_proc.provolatile = 'v')")
            else:
                r.notes.append(f"ADD COLUMN {col.colname}: non-volatile default, stored in the catalog "
                               "(no rewrite since PostgreSQL 11)")
        if t.rewrites:
            r.findings.append(self._finding(
                "migration.volatile-default-rewrite", "weight",
                f"ADD COLUMN {col.colname} rewrites the whole table under ACCESS EXCLUSIVE.",
                f"ADD COLUMN {col.colname} without the default (or with a constant one); backfill it in batches; "
                f"then ALTER COLUMN {col.colname} SET DEFAULT ... for new rows.", t))

    async def _volatile_functions(self, expr: Any) -> list[str]:
        """The functions in a default expression that are volatile on the live server (or unknown
        there: assumed volatile)."""
        found: list[str] = []
        for node in walk(expr):
            if isinstance(node, ast.FuncCall):
                parts = _names(node.funcname)
                schema, name = (parts[0], parts[-1]) if len(parts) > 1 else (None, parts[-1])
                volatility = await self.catalog.volatility(schema, name)
                if volatility in ("v", None):
                    found.append(f"{name}()" + ("" if volatility else " (not found on the target: assumed volatile)"))
        return found

    async def _column_type(self, r: Result, t: Touch, column: str, col: Any) -> None:
        reason = await self._type_change_rewrites(t, column, col)
        if reason is None:
            r.notes.append(f"ALTER COLUMN {column} TYPE: binary-coercible, no rewrite (indexes on it may be rebuilt)")
            r.findings.append(self._finding(
                "migration.column-type-change", "info",
                f"ALTER COLUMN {column} TYPE: no rewrite here, but ACCESS EXCLUSIVE while the catalog changes, "
                "and every running version of the application reads the new type.",
                "Check the application handles the new type before deploying; set lock_timeout before it.", t))
            return
        t.rewrites.append(f"ALTER COLUMN {column} TYPE: {reason}")
        r.findings.append(self._finding(
            "migration.column-type-rewrite", "weight",
            f"ALTER COLUMN {column} TYPE rewrites the table and rebuilds its indexes under ACCESS EXCLUSIVE.",
            "Add a new column of the new type, backfill it in batches (keep it in step with a trigger), then "
            "swap the columns in one short transaction.", t))

    async def _type_change_rewrites(self, t: Touch, column: str, col: Any) -> str | None:
        if col.raw_default is not None:
            return "a USING expression is evaluated for every row"
        table = await self._table(t)
        if table is None:
            return None if t.created_here else "current type unknown (table not on the target): assumed to rewrite"
        current = await self.catalog.column(table, self._live_column(t, column))
        if current is None:
            return f"column {column} not found on the target: assumed to rewrite"
        names = _names(col.typeName.names)
        new_name = ".".join(names) + ("[]" if col.typeName.arrayBounds else "")
        new_oid = await self.catalog.type_oid(new_name)
        if new_oid is None:
            return f"type {new_name} unknown on the target: assumed to rewrite"
        mods = [getattr(m.val, "ival", None) for m in col.typeName.typmods or () if isinstance(m, ast.A_Const)]
        base = names[-1]
        old_mod = current["typmod"]
        same = new_oid == current["typid"]
        if not same:
            method = await self.catalog.cast_method(current["typid"], new_oid)
            if method != "b":
                return f"{current['type']} to {new_name} is not binary-coercible"
            if not mods:
                return None
            if base in ("varchar", "bpchar", "varbit") and old_mod != -1:
                pass  # fall through to the length comparison below
            else:
                return f"{current['type']} to {new_name}({', '.join(map(str, mods))}) checks or converts every value"
        if not mods:
            if base in ("varchar", "numeric", "varbit") or old_mod == -1:
                return None
            return f"{current['type']}: typmod changed"
        if base in ("varchar", "varbit") and old_mod != -1 and mods[0] is not None:
            old_len = old_mod - 4 if base == "varchar" else old_mod
            if mods[0] >= old_len:
                return None
            return f"{current['type']} narrowed to length {mods[0]}: every value checked"
        if base == "numeric" and old_mod != -1 and mods[0] is not None:
            old_precision, old_scale = ((old_mod - 4) >> 16) & 0xFFFF, (old_mod - 4) & 0xFFFF
            scale = mods[1] if len(mods) > 1 and mods[1] is not None else 0
            if scale == old_scale and mods[0] >= old_precision:
                return None
            return f"{current['type']} to numeric({mods[0]},{scale}): every value converted"
        if same and old_mod == -1 and base in ("varchar", "numeric", "varbit"):
            return f"{current['type']} gains a limit: every value checked"
        return f"{current['type']} to {new_name}: assumed to rewrite"

    async def _set_not_null(self, r: Result, t: Touch, column: str) -> None:
        table = await self._table(t)
        live = self._live_column(t, column)
        if table is not None:
            check = await self.catalog.not_null_check(table, live)
            if check:
                r.notes.append(f"SET NOT NULL {column}: the valid CHECK constraint {check} proves it, no scan")
                return
        t.scans.append(f"SET NOT NULL {column}: scans the whole table under ACCESS EXCLUSIVE")
        t.preconditions.append(("nulls", [live]))
        r.findings.append(self._finding(
            "migration.set-not-null-scan", "weight",
            f"SET NOT NULL on {column} scans the whole table while holding ACCESS EXCLUSIVE.",
            f"ADD CONSTRAINT {column}_not_null CHECK ({column} IS NOT NULL) NOT VALID; then VALIDATE CONSTRAINT "
            f"{column}_not_null (SHARE UPDATE EXCLUSIVE); then SET NOT NULL (no scan, PostgreSQL 12+); then drop "
            "the CHECK.", t))

    def _add_constraint(self, r: Result, t: Touch, c: Any) -> None:
        kind = c.contype
        if kind in (ConstrType.CONSTR_FOREIGN, ConstrType.CONSTR_CHECK):
            label = "FOREIGN KEY" if kind == ConstrType.CONSTR_FOREIGN else "CHECK"
            if kind == ConstrType.CONSTR_FOREIGN and c.pktable is not None:
                r.touch(_rv(c.pktable), L.SHARE_ROW_EXCLUSIVE)
            if c.skip_validation:
                r.notes.append(f"{label} ... NOT VALID: checked for new rows only, no scan")
                return
            t.scans.append(f"ADD {label}: validates every existing row while holding {t.mode}")
            if kind == ConstrType.CONSTR_FOREIGN and c.pktable is not None:
                t.preconditions.append(("orphans", _names(c.fk_attrs), _rv(c.pktable), _names(c.pk_attrs)))
            name = c.conname or "the_constraint"
            r.findings.append(self._finding(
                "migration.constraint-validation", "weight",
                f"ADD CONSTRAINT {label} validates every row while holding {t.mode} "
                f"(it blocks {L.blocks(t.mode)}).",
                f"ADD CONSTRAINT {name} {label} (...) NOT VALID; then, in its own transaction, "
                f"VALIDATE CONSTRAINT {name} (SHARE UPDATE EXCLUSIVE: reads and writes go on).", t))
        elif kind in (ConstrType.CONSTR_UNIQUE, ConstrType.CONSTR_PRIMARY, ConstrType.CONSTR_EXCLUSION):
            if c.indexname:
                r.notes.append("USING INDEX: the index exists already; the lock is brief")
                return
            label = {ConstrType.CONSTR_UNIQUE: "UNIQUE", ConstrType.CONSTR_PRIMARY: "PRIMARY KEY"}.get(kind, "EXCLUDE")
            keys = _names(c.keys)
            if keys and kind != ConstrType.CONSTR_EXCLUSION:
                t.preconditions.append(("duplicates", keys))
                if kind == ConstrType.CONSTR_PRIMARY:
                    t.preconditions += [("nulls", [k]) for k in keys]
            t.builds.append(f"ADD {label} builds its index under ACCESS EXCLUSIVE")
            r.findings.append(self._finding(
                "migration.constraint-builds-index", "weight",
                f"ADD {label} builds a unique index while holding ACCESS EXCLUSIVE: no reads or writes meanwhile.",
                f"CREATE UNIQUE INDEX CONCURRENTLY the_index ON ... (...); then ALTER TABLE ... ADD CONSTRAINT "
                f"... {label} USING INDEX the_index.", t))

    async def _rename(self, r: Result, node: Any) -> None:
        if node.relation is None:
            return
        kind = ObjectType(node.renameType).name.removeprefix("OBJECT_")
        ref = _rv(node.relation)
        if kind == "INDEX":
            on = await self._index_table(ref)
            if on:
                r.touch(on, L.SHARE_UPDATE_EXCLUSIVE)
            return
        t = r.touch(ref, L.ACCESS_EXCLUSIVE)
        await self._table(t)  # resolved under the names before this rename
        live = self.renamed.get(ref, ref)
        if kind == "COLUMN":
            old = self.renamed_columns.pop((live, node.subname), node.subname)
            self.renamed_columns[(live, node.newname)] = old
            r.findings.append(self._finding(
                "migration.rename-column", "medium",
                f"Renaming column {node.subname} to {node.newname} breaks every running version of the "
                "application that uses the old name.",
                "Add the new column, write both, backfill, move reads, then drop the old one in a later release "
                "(or expose the old name through a view during the change).", t))
            await self._breaking(r, t, live, old, f"column {old} of {_written(live)}")
        elif kind in ("TABLE", "VIEW", "MATVIEW"):
            new = (ref[0], node.newname)
            if ref[0] is None and ref[1] in self.created:
                self.created.add(node.newname)
            else:
                self.renamed.pop(ref, None)
                self.renamed[new] = live
            r.findings.append(self._finding(
                "migration.rename-table", "medium",
                f"Renaming {_written(ref)} to {node.newname} breaks every running version of the application that "
                "uses the old name.",
                "Rename, then create a view with the old name until no deployed code uses it.", t))
            await self._breaking(r, t, live, None, _written(live))

    async def _breaking(self, r: Result, t: Touch, live: tuple[str | None, str], column: str | None,
                        what: str) -> None:
        """Renaming or dropping what the running application still uses, as far as
        pg_stat_statements shows: breaking, whatever the lock."""
        if live[0] is None and live[1] in self.created:
            return  # created in this migration: nothing uses it yet
        usage = await self.catalog.usage([live[1]] + ([column] if column else []))
        if usage is None:
            r.notes.append(f"pg_stat_statements cannot be read: whether the application still uses {what} "
                           "is not known")
        elif usage.statements:
            r.findings.append(self._finding(
                "migration.breaking-change", "high",
                f"The application still uses {what}: {usage.statements} statement(s) recorded by "
                f"pg_stat_statements ({usage.calls:,} calls) name it, e.g. {' '.join(usage.example.split())[:160]}",
                "Deploy the code that stops using it first (check pg_stat_statements after a reset), then rename "
                "or drop it in a later release.", t, fixed="high"))

    async def _drop(self, r: Result, node: Any) -> None:
        kind = ObjectType(node.removeType).name.removeprefix("OBJECT_")
        for obj in node.objects or ():
            parts = _names(obj)
            ref: tuple[str | None, str] = (parts[-2] if len(parts) > 1 else None, parts[-1])
            if kind == "INDEX":
                on = await self._index_table(ref)
                if on is None:
                    r.notes.append(f"index {_written(ref)} not found on the target")
                    continue
                t = r.touch(on, L.SHARE_UPDATE_EXCLUSIVE if node.concurrent else L.ACCESS_EXCLUSIVE)
                if node.concurrent and self.in_transaction:
                    r.findings.append(self._finding(
                        "migration.concurrently-in-transaction", "high",
                        "DROP INDEX CONCURRENTLY cannot run inside a transaction block: this statement fails.",
                        "Run it outside BEGIN ... COMMIT.", t, fixed="high"))
                elif not node.concurrent:
                    r.findings.append(self._finding(
                        "migration.drop-index-blocking", "medium",
                        "DROP INDEX takes ACCESS EXCLUSIVE on its table: reads and writes wait, and it waits for "
                        "every open transaction that touched the table.",
                        f"DROP INDEX CONCURRENTLY {_written(ref)} (outside a transaction block).", t))
            elif kind in ("TABLE", "MATVIEW", "VIEW"):
                t = r.touch(ref, L.ACCESS_EXCLUSIVE)
                await self._table(t)  # resolved before it is gone
                live = self.renamed.pop(ref, ref)
                r.findings.append(self._finding(
                    "migration.drop-table", "medium",
                    f"Dropping {_written(ref)} breaks every running version of the application that uses it, "
                    "and loses its data.",
                    "Deploy code that no longer uses it first; drop it in a later release (rename it aside first "
                    "if you want a way back).", t))
                await self._breaking(r, t, live, None, _written(live))
                if ref[0] is None and ref[1] in self.created:
                    self.created.discard(ref[1])
                else:
                    self.dropped.add(ref)

    async def _reindex(self, r: Result, node: Any) -> None:
        concurrent = any(p.defname == "concurrently" for p in node.params or ())
        if node.relation is None:
            r.notes.append("REINDEX SCHEMA/DATABASE/SYSTEM: every table's indexes; not analysed per table")
            return
        ref = _rv(node.relation)
        if node.kind == ReindexObjectType.REINDEX_OBJECT_INDEX:
            on = await self._index_table(ref)
            if on is None:
                r.notes.append(f"index {_written(ref)} not found on the target")
                return
            ref = on
        t = r.touch(ref, L.SHARE_UPDATE_EXCLUSIVE if concurrent else L.SHARE)
        t.builds.append("REINDEX rebuilds the index" + ("" if concurrent else
                        " (ACCESS EXCLUSIVE on the index: reads that would use it wait too)"))
        if concurrent and self.in_transaction:
            r.findings.append(self._finding(
                "migration.concurrently-in-transaction", "high",
                "REINDEX CONCURRENTLY cannot run inside a transaction block: this statement fails.",
                "Run it outside BEGIN ... COMMIT.", t, fixed="high"))
        elif not concurrent:
            r.findings.append(self._finding(
                "migration.reindex-blocking", "weight",
                "REINDEX blocks writes to the table (and reads that use the index) for the whole rebuild.",
                "REINDEX ... CONCURRENTLY (PostgreSQL 12+, outside a transaction block).", t))

    # --- the live table ------------------------------------------------------------------------

    async def _table(self, t: Touch) -> Table | None:
        """The live table a touch means: none for a table created or dropped earlier in the
        migration; the target's table under its old name for one renamed earlier."""
        if t.table is None and not t.created_here and not t.dropped_here:
            if t.ref[1] in self.created and t.ref[0] is None:
                t.created_here = True
                return None
            if t.ref in self.dropped:
                t.dropped_here = True
                return None
            t.table = await self.catalog.table(*self.renamed.get(t.ref, t.ref))
        return t.table

    async def _index_table(self, ref: tuple[str | None, str]) -> tuple[str | None, str] | None:
        """The table of an index: one created earlier in the migration, or on the target."""
        if ref in self.created_indexes:
            return self.created_indexes[ref]
        return await self.catalog.index_table(*ref)

    def _live_column(self, t: Touch, column: str) -> str:
        """The column's name on the target (it may be renamed earlier in the migration)."""
        return self.renamed_columns.get((self.renamed.get(t.ref, t.ref), column), column)

    async def _measure(self, r: Result) -> None:
        total = 0.0
        basis: list[str] = []
        for t in r.touches:
            table = await self._table(t)
            if table is None:
                if t.created_here:
                    r.notes.append(f"{_written(t.ref)} is created earlier in this migration: empty, nobody waits")
                elif t.dropped_here:
                    r.notes.append(f"{_written(t.ref)} is dropped earlier in this migration: this statement fails")
                else:
                    r.notes.append(f"{_written(t.ref)} not found on the target")
                continue
            mb = table.heap_bytes / MB
            seconds = 0.0
            if t.rewrites:
                seconds += table.total_bytes / MB / REWRITE_MBPS
            if t.scans and not t.rewrites:
                seconds += mb / (UPDATE_MBPS if t.updates_all else SCAN_MBPS)
            if t.builds:
                seconds += mb / INDEX_BUILD_MBPS
            if t.rewrites or t.scans or t.builds:
                total += seconds
                rows = "unknown rows (never analysed)" if table.reltuples < 0 else f"~{int(table.reltuples):,} rows"
                basis.append(f"{table.name}: {_size(table.heap_bytes)} heap, {_size(table.total_bytes)} with "
                             f"indexes, {rows} (pg_relation_size, reltuples)")
            for pre in t.preconditions:
                await self._precondition(r, t, table, pre)
            for holder in await self.catalog.holders(table, t.mode):
                holder["table"] = table.name
                r.waits.append(holder)
        if basis:
            r.estimate = round(total, 1)
            r.basis = ("estimate, assuming " + _throughputs(r) + "; " + "; ".join(basis))
        elif r.touches:
            r.estimate = 0.0
            r.basis = "catalog change only: instant once the lock is granted"

    async def _precondition(self, r: Result, t: Touch, table: Table, pre: tuple[Any, ...]) -> None:
        kind = pre[0]
        try:
            if kind == "validate":
                fk = await self.catalog.foreign_key(table, pre[1])
                if fk is None:
                    return
                kind, pre = "orphans", ("orphans", fk[0], fk[1], fk[2])
            if kind == "rows":
                found = await self.data.rows(table)
                what = f"row(s), and ADD COLUMN {pre[1]} NOT NULL without a DEFAULT has no value for them,"
                fix = (f"ADD COLUMN {pre[1]} without NOT NULL; backfill it in batches; then add NOT NULL the safe "
                       "way (CHECK ... NOT VALID, VALIDATE, SET NOT NULL); or give it a constant DEFAULT.")
            elif kind == "nulls":
                found = await self.data.nulls(table, pre[1][0])
                what = f"NULL in {pre[1][0]}"
                fix = f"Backfill the NULLs of {pre[1][0]} (in batches) before this statement."
            elif kind == "duplicates":
                found = await self.data.duplicates(table, pre[1])
                what = f"duplicate value(s) of ({', '.join(pre[1])})"
                fix = "Remove or merge the duplicates first (and stop the application writing new ones)."
            else:
                parent = await self.catalog.table(*pre[2]) if isinstance(pre[2], tuple) else pre[2]
                if parent is None:
                    return
                keys = pre[3] or await self.data.primary_key(parent)
                if len(keys) != len(pre[1]):
                    return
                found = await self.data.orphans(table, pre[1], parent, keys)
                what = f"row(s) whose ({', '.join(pre[1])}) has no match in {parent.name}"
                fix = "Delete or repair the orphaned rows first; then validate."
        except Exception as exc:  # a statement timeout on a big table: not known, never zero
            r.notes.append(f"data precondition ({kind}) not checked: {type(exc).__name__}: {exc}")
            return
        if found:
            count = f"at least {found}" if found >= PRECONDITION_LIMIT else str(found)
            r.findings.append({
                "rule": f"migration.precondition-{kind}",
                "severity": "high",
                "message": f"This statement would fail on the data now: {count} {what} in {table.name}.",
                "fix": fix,
            })

    # --- findings --------------------------------------------------------------------------------

    def _finding(self, rule: str, severity: str, message: str, fix: str, t: Touch, *,
                 fixed: str | None = None) -> dict[str, Any]:
        return {"rule": rule, "severity": severity, "message": message, "fix": fix, "_touch": t,
                "_fixed": fixed}

    def _judge(self, r: Result) -> None:
        strong = [t for t in r.touches if L.strong(t.mode)]
        waiting = bool(r.waits)
        for f in r.findings:
            t: Touch | None = f.pop("_touch", None)
            fixed = f.pop("_fixed", None)
            if fixed or t is None:
                continue
            weight = self._weight(t)
            severity = weight if f["severity"] == "weight" else f["severity"]
            if t.created_here:
                severity = "info"
            if waiting and L.strong(t.mode) and f["severity"] == "weight" and severity != "info":
                severity = _max_severity(severity, "high")
            f["severity"] = severity
        existing = [t for t in strong if t.table is not None]
        if existing and not self.lock_timeout:
            t = existing[0]
            mode = L.strongest([x.mode for x in existing])
            r.findings.append({
                "rule": "migration.missing-lock-timeout",
                "severity": "high" if waiting else "medium",
                "message": f"{mode} on {', '.join(x.table.name for x in existing if x.table)} with no lock_timeout set "
                "earlier: while it waits for the lock, every later query on the table queues behind it.",
                "fix": "SET lock_timeout = '2s'; before it (and retry the migration on a timeout).",
            })
        long_under_lock = [t for t in existing if t.rewrites or t.scans or t.builds]
        if long_under_lock and not self.statement_timeout:
            r.findings.append({
                "rule": "migration.missing-statement-timeout",
                "severity": "low",
                "message": f"It rewrites, scans or builds while holding {long_under_lock[0].mode} on "
                f"{', '.join(x.table.name for x in long_under_lock if x.table)}, with no statement_timeout set "
                "earlier: if it runs far longer than the estimate, nothing stops it and the lock stays.",
                "fix": "SET statement_timeout = '...'; before it, at a few times the estimate (and plan the "
                "retry).",
            })
        if waiting and strong:
            pids = ", ".join(str(w["pid"]) for w in r.waits[:5])
            ages = [w["xact_age_seconds"] for w in r.waits if w["xact_age_seconds"] is not None]
            r.findings.append({
                "rule": "migration.queues-behind-sessions",
                "severity": "high",
                "message": f"{len(r.waits)} session(s) hold or wait for a conflicting lock now (pid {pids}"
                + (f"; oldest transaction {max(ages):.0f}s" if ages else "") + "): this statement would wait for "
                "them" + ("" if self.lock_timeout else ", and every later query on the table would queue behind it")
                + ".",
                "fix": "Set lock_timeout before it, deploy when those transactions have ended, and look at why "
                "they are long (dbvitals activity).",
            })

    def _held_in_transaction(self, r: Result) -> None:
        """A lock is held until the transaction ends: a strong lock taken earlier in the same
        BEGIN ... COMMIT stays held through this statement's rewrite, scan or build."""
        if not self.in_transaction:
            self.held.clear()
            return
        heavy = any(t.rewrites or t.scans or t.builds for t in r.touches)
        earlier = {name: held for name, held in self.held.items()}
        if heavy and earlier:
            names = ", ".join(f"{mode} on {name} (line {line})" for name, (mode, line) in earlier.items())
            reads = any(L.conflicts(mode, L.ACCESS_SHARE) for mode, _ in earlier.values())
            r.findings.append({
                "rule": "migration.lock-held-in-transaction",
                "severity": "high" if reads and (r.estimate or 0) >= 1 else "medium",
                "message": f"Inside one transaction: {names} stays held until COMMIT, through this statement "
                f"(estimate {r.estimate}s), blocking {'reads and writes' if reads else 'writes'} meanwhile.",
                "fix": "Commit after the statement that takes the strong lock; run the long statement in its own "
                "transaction (or CONCURRENTLY, outside any).",
            })
        for t in r.touches:
            if t.table is not None and L.strong(t.mode):
                mode, line = self.held.get(t.table.name, (t.mode, r.statement.line))
                self.held[t.table.name] = (L.strongest([mode, t.mode]), line)

    def _weight(self, t: Touch) -> str:
        table = t.table
        if table is None:
            return "medium" if not t.created_here else "info"
        rows = table.reltuples
        if rows >= BIG_ROWS or table.total_bytes >= BIG_BYTES:
            return "high"
        if rows >= MEDIUM_ROWS or table.total_bytes >= MEDIUM_BYTES:
            return "medium"
        if rows < 0 and table.heap_bytes >= 8 * MB:
            return "medium"  # never analysed: judged by size
        return "low"


def _throughputs(r: Result) -> str:
    parts = []
    if any(t.rewrites for t in r.touches):
        parts.append(f"{REWRITE_MBPS:.0f} MB/s to rewrite")
    if any(t.scans and not t.rewrites for t in r.touches):
        parts.append(f"{SCAN_MBPS:.0f} MB/s to scan" if not any(t.updates_all for t in r.touches)
                     else f"{UPDATE_MBPS:.0f} MB/s to update")
    if any(t.builds for t in r.touches):
        parts.append(f"{INDEX_BUILD_MBPS:.0f} MB/s to build an index")
    return ", ".join(parts) + " on an idle server"


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def gate_severity(statements: list[dict[str, Any]], after: Sequence[dict[str, Any]] = ()) -> str | None:
    """The worst severity among the statements' findings and the schema-after findings."""
    worst = None
    for f in [f for s in statements for f in s["findings"]] + list(after):
        worst = f["severity"] if worst is None else _max_severity(worst, f["severity"])
    return worst
