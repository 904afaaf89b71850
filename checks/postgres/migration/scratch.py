"""The schema after the migration: copy the part of the target's schema it needs into a scratch
database (no data), replay the migration there statement by statement, and run dbvitals's own
schema checks before it and after each group of statements that reach disjoint tables (_Replay). A
finding present at the end and not at the start was added by the migration; the statement it is
attributed to is the one after which it last appeared, read from the scratch, not guessed.

The target is only read (copy.read_copy, through the read-only session). The scratch is written in
one transaction that is rolled back; dbvitals marks it as its own once (a schema with a comment)
and refuses one that is the target itself or holds objects it did not put there."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any

from pglast import ast
from pglast.enums import AlterTableType, ObjectType
from pglast.stream import RawStream

from checks.contract import Check, FactStore, Scope
from checks.model import Finding, TargetState, TargetStatus
from checks.postgres.duplicate_fk import DuplicateFk
from checks.postgres.duplicate_index import DuplicateIndex
from checks.postgres.fk_missing_index import FkMissingIndex
from checks.postgres.fk_type_mismatch import FkTypeMismatch
from checks.postgres.intersected_fk import IntersectedFk
from checks.postgres.lint.indexes import BooleanIndex, BtreeOnArray, TimestampInTheMiddle, UnnecessaryWhere
from checks.postgres.lint.keys import IntegerKey, Serial
from checks.postgres.lint.tables import AllNullable, NameOverflow
from checks.postgres.lint.types import CharLength, Json, Money, TimestampWithoutTimeZone, VarcharLength
from checks.postgres.migration.catalog import quote_ident
from checks.postgres.migration.copy import SchemaCopy
from checks.postgres.migration.parse import Statement, walk
from checks.postgres.no_primary_key import NoPrimaryKey
from checks.postgres.not_valid_constraint import NotValidConstraintCheck
from checks.postgres.redundant_index import RedundantIndex

# The checks that judge the schema alone: no statistics, activity or data (lint-index-nulls
# reads pg_stats, unused-index the scan counters: an empty copy would say nothing true).
SCHEMA_CHECKS: tuple[type[Check], ...] = (
    FkTypeMismatch, FkMissingIndex, DuplicateFk, IntersectedFk, NotValidConstraintCheck, DuplicateIndex,
    RedundantIndex, NoPrimaryKey, IntegerKey, Serial, TimestampWithoutTimeZone, VarcharLength, CharLength, Money,
    Json, BtreeOnArray, BooleanIndex, UnnecessaryWhere, TimestampInTheMiddle, AllNullable, NameOverflow,
)

MARKER_SCHEMA = "dbvitals_scratch"
SAVEPOINT = "dbvitals_statement"
GROUP_SAVEPOINT = "dbvitals_group"
MARKER_COMMENT = "dbvitals migration scratch copy: dbvitals empties this database before each use"

# Who a database is: the server (its start time) and the database's oid and name.
IDENTITY_QUERY = ("SELECT pg_postmaster_start_time()::text || '/' || d.oid || '/' || d.datname "
                  "FROM pg_database d WHERE d.datname = current_database()")

# What the scratch holds besides the system's objects (its marker schema counts one), and
# whether dbvitals marked it.
FOREIGN_OBJECTS_QUERY = """
SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg_%'
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                            AND d.deptype = 'e'))
     + (SELECT count(*) FROM pg_namespace n WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'public')
         AND n.nspname NOT LIKE 'pg_%')
     + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND NOT EXISTS (
           SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'))
     AS objects,
     EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1
               AND obj_description(oid, 'pg_namespace') = $2) AS marked
"""

USER_SCHEMAS_QUERY = """
SELECT nspname FROM pg_namespace
WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname NOT LIKE 'pg_%'
"""


class ScratchRefused(Exception):
    """The scratch URL names a database dbvitals must not empty."""


@dataclass
class ScratchResult:
    after: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class BoundSession:
    """The checks' session interface over one held connection (the replay's)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def fetch(self, query: str, *args: Any) -> Any:
        return await self.conn.fetch(query, *args)

    async def fetchrow(self, query: str, *args: Any) -> Any:
        return await self.conn.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self.conn.fetchval(query, *args)

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[Any]:
        yield self.conn


async def prepare(conn: Any, target_identity: str) -> None:
    """Refuse the target itself and a database holding what dbvitals did not put there; then
    empty it and mark it as dbvitals's."""
    if await conn.fetchval(IDENTITY_QUERY) == target_identity:
        raise ScratchRefused("the scratch database is the target itself: give a database dbvitals may empty")
    row = await conn.fetchrow(FOREIGN_OBJECTS_QUERY, MARKER_SCHEMA, MARKER_COMMENT)
    if row["objects"] and not row["marked"]:
        raise ScratchRefused(
            f"the scratch database holds {row['objects']} object(s) dbvitals did not create (no {MARKER_SCHEMA} "
            "schema): give an empty database, which dbvitals will mark as its scratch")
    if row["marked"] and row["objects"] == 1:
        return  # only the marker: the last run's replay was rolled back, nothing to empty
    schemas = [r["nspname"] for r in await conn.fetch(USER_SCHEMAS_QUERY)]
    script = [f"DROP SCHEMA {quote_ident(s)} CASCADE;" for s in schemas]
    script += ["CREATE SCHEMA public;", f"CREATE SCHEMA {quote_ident(MARKER_SCHEMA)};",
               f"COMMENT ON SCHEMA {quote_ident(MARKER_SCHEMA)} IS '{MARKER_COMMENT}';"]
    await conn.execute("BEGIN;\n" + "\n".join(script) + "\nCOMMIT;")


async def apply_copy(conn: Any, copy: SchemaCopy, notes: list[str], timeout_s: float) -> None:
    """The copy in one round trip, inside the replay's transaction, under the check's time limit
    rather than a single query's; when a piece fails (an object the target has and this server
    lacks), piece by piece, noting what could not be copied."""
    for name, schema in copy.extensions:
        try:
            async with conn.transaction():  # a savepoint
                await conn.execute(
                    f"CREATE EXTENSION IF NOT EXISTS {quote_ident(name)} WITH SCHEMA {quote_ident(schema)}")
        except Exception as exc:  # not available on the scratch's server: statements needing it fail there
            notes.append(f"scratch: extension {name} not created: {exc}")
    await conn.execute(f"SET LOCAL check_function_bodies = off; SET LOCAL statement_timeout = {int(timeout_s * 1000)}")
    try:
        async with conn.transaction():
            await conn.execute("\n".join(copy.ddl))
        return
    except Exception:  # one piece failed and its savepoint rolled back: piece by piece
        pass
    for ddl in copy.ddl:
        try:
            async with conn.transaction():
                await conn.execute(ddl)
        except Exception as exc:
            notes.append(f"scratch: not copied: {' '.join(ddl.split())[:120]}: {exc}")


# Not replayed: data statements (the copy has no data), maintenance (no schema change),
# transaction control (the replay is one transaction, a savepoint per statement), privileges
# (no schema check reads them, and the roles may not exist where the scratch is), and what acts
# beyond the scratch database: databases, roles, tablespaces, server settings.
NOT_REPLAYED = (
    ast.GrantStmt, ast.AlterOwnerStmt, ast.AlterDefaultPrivilegesStmt, ast.SecLabelStmt, ast.TransactionStmt, ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.SelectStmt, ast.CopyStmt,
    ast.VacuumStmt, ast.ClusterStmt, ast.ReindexStmt, ast.LockStmt, ast.RefreshMatViewStmt, ast.ExplainStmt,
    ast.CreatedbStmt, ast.DropdbStmt, ast.AlterDatabaseStmt, ast.AlterDatabaseSetStmt, ast.CreateRoleStmt,
    ast.AlterRoleStmt, ast.AlterRoleSetStmt, ast.DropRoleStmt, ast.GrantRoleStmt, ast.CreateTableSpaceStmt,
    ast.DropTableSpaceStmt, ast.AlterSystemStmt, ast.CheckPointStmt, ast.LoadStmt, ast.DoStmt, ast.CallStmt,
    ast.NotifyStmt, ast.ListenStmt, ast.DiscardStmt,
)


def replayed_sql(statement: Statement) -> str | None:
    """The statement as the scratch runs it (its own text), or None when it is not replayed
    (NOT_REPLAYED). CONCURRENTLY cannot run in the replay's transaction: such a statement is
    deparsed without it, which on an empty copy leaves the same schema."""
    node = statement.node
    if isinstance(node, NOT_REPLAYED):
        return None
    if isinstance(node, (ast.IndexStmt, ast.DropStmt)) and node.concurrent:
        node = deepcopy(node)
        node.concurrent = False
        return RawStream()(node)
    if isinstance(node, ast.AlterTableStmt) and any(
            isinstance(c.def_, ast.PartitionCmd) and c.def_.concurrent for c in node.cmds or ()):
        node = deepcopy(node)
        for c in node.cmds or ():
            if isinstance(c.def_, ast.PartitionCmd):
                c.def_.concurrent = False
        return RawStream()(node)
    return statement.sql


async def schema_findings(conn: Any, name: str, config: Any) -> dict[str, Finding]:
    """The schema checks' findings on the scratch now, by finding id: one catalog snapshot shared."""
    session = BoundSession(conn)
    facts = FactStore()
    status = TargetStatus(name, "postgres", TargetState.CONNECTED)
    found: dict[str, Finding] = {}
    for check_class in SCHEMA_CHECKS:
        check = check_class()
        scope = Scope(target=name, config=config, options=_options(check_class), status=status, facts=facts)
        # Judged here, not in a thread as Check.run does: the copy is small, and a thread hop per
        # check per statement costs more than the judgement.
        for finding in check.evaluate(await check.gather(session, scope), scope):
            found[finding.id] = finding
    facts.close()
    return found


def _options(check: type[Check]) -> Any:
    """Each check's defaults (a target's thresholds such as min_rows mean nothing on empty
    tables), except references implied by column names: they need the whole schema, and the copy
    holds the part the migration reaches (declared foreign keys are all there)."""
    return check.Options(implied=False) if check is FkTypeMismatch else check.Options()


# Statements after which no schema check can judge differently (none reads triggers, comments,
# grants, storage or statistics settings): no checkpoint after them.
NO_SCHEMA_EFFECT = (ast.VariableSetStmt, ast.CreateTrigStmt, ast.CommentStmt)
NO_SCHEMA_EFFECT_ALTER = frozenset({
    AlterTableType.AT_SetRelOptions, AlterTableType.AT_ResetRelOptions, AlterTableType.AT_SetLogged,
    AlterTableType.AT_SetUnLogged, AlterTableType.AT_SetStatistics, AlterTableType.AT_SetStorage,
    AlterTableType.AT_SetOptions, AlterTableType.AT_ResetOptions, AlterTableType.AT_ClusterOn,
    AlterTableType.AT_DropCluster, AlterTableType.AT_EnableTrig, AlterTableType.AT_DisableTrig,
    AlterTableType.AT_EnableTrigAll, AlterTableType.AT_DisableTrigAll, AlterTableType.AT_EnableTrigUser,
    AlterTableType.AT_DisableTrigUser, AlterTableType.AT_EnableAlwaysTrig, AlterTableType.AT_EnableReplicaTrig,
})


def changes_what_checks_read(node: Any) -> bool:
    if isinstance(node, NO_SCHEMA_EFFECT):
        return False
    if isinstance(node, ast.AlterTableStmt):
        return not all(cmd.subtype in NO_SCHEMA_EFFECT_ALTER for cmd in node.cmds or ())
    return True


async def replay(conn: Any, name: str, config: Any, copy: SchemaCopy, statements: list[Statement],
                 notes: list[str]) -> ScratchResult:
    """Copy the schema into the prepared scratch, apply the migration and attribute each added
    finding, all in one transaction rolled back at the end: nothing the migration does outlives
    the run, and the scratch is left empty (nothing to drop next time)."""
    transaction = conn.transaction(isolation="repeatable_read")  # the catalog snapshot nests in it
    await transaction.start()
    try:
        await apply_copy(conn, copy, notes, config.check_timeout)
        return await _replay(conn, name, config, statements)
    finally:
        await transaction.rollback()


async def _replay(conn: Any, name: str, config: Any, statements: list[Statement]) -> ScratchResult:
    before = await schema_findings(conn, name, config)
    relations = RelationMap.from_rows(await conn.fetch(RELATION_MAP_QUERY))
    replay = _Replay(conn, name, config, relations, before)
    await replay.run(statements)
    result = replay.result
    current, appeared = replay.current, replay.appeared
    for finding_id in sorted(current.keys() - before.keys(), key=lambda i: (appeared[i].file, appeared[i].line, i)):
        statement = appeared[finding_id]
        entry = current[finding_id].to_dict()
        entry["statement"] = {"file": statement.file, "line": statement.line, "sql": statement.sql}
        result.after.append(entry)
    return result


# The relations that own others (an index's or an owned sequence's table) and the tables joined
# by a foreign key or by inheritance, on the scratch after the copy, by bare name.
RELATION_MAP_QUERY = """
SELECT 'owner' AS kind, c.relname AS name, t.relname AS other
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
UNION ALL
SELECT 'owner', s.relname, t.relname FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
JOIN pg_class t ON t.oid = d.refobjid
WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
UNION ALL
SELECT 'neighbour', a.relname, b.relname FROM pg_constraint c JOIN pg_class a ON a.oid = c.conrelid
JOIN pg_class b ON b.oid = c.confrelid WHERE c.contype = 'f'
UNION ALL
SELECT 'neighbour', a.relname, b.relname FROM pg_inherits h JOIN pg_class a ON a.oid = h.inhrelid
JOIN pg_class b ON b.oid = h.inhparent
"""

RELATION_KINDS = frozenset({ObjectType.OBJECT_TABLE, ObjectType.OBJECT_INDEX, ObjectType.OBJECT_VIEW,
                            ObjectType.OBJECT_MATVIEW, ObjectType.OBJECT_SEQUENCE, ObjectType.OBJECT_FOREIGN_TABLE})


def relation_names(node: Any) -> set[str] | None:
    """The relations a statement names (bare: namesakes in two schemas only make a group smaller),
    with the indexes and constraints it names and a renamed relation's new name; None for a
    statement whose effect on the checks may reach beyond the relations it names (a type, a
    function, a schema...): it is checked on its own."""
    names: set[str] = set()
    if isinstance(node, ast.DropStmt):
        if node.removeType not in RELATION_KINDS:
            return None
        for obj in node.objects or ():
            parts = [getattr(p, "sval", None) for p in obj] if isinstance(obj, (list, tuple)) else []
            if not parts or not isinstance(parts[-1], str):
                return None
            names.add(parts[-1])
        return names
    if isinstance(node, ast.RenameStmt):
        if node.relation is None:
            return None
        if node.renameType in RELATION_KINDS and node.newname:
            names.add(node.newname)
    elif isinstance(node, ast.AlterTableStmt):
        if node.objtype not in RELATION_KINDS:
            return None
    elif not isinstance(node, (ast.IndexStmt, ast.CreateStmt)):
        return None
    for part in walk(node):
        if isinstance(part, ast.RangeVar) and part.relname:
            names.add(part.relname)
        elif isinstance(part, ast.IndexStmt) and part.idxname:
            names.add(part.idxname)
        elif isinstance(part, ast.Constraint) and part.conname:
            names.add(part.conname)
    return names


@dataclass
class RelationMap:
    """Which relation belongs to which table, and which tables a statement on one can change the
    findings of (its foreign-key and partition neighbours), kept up to date as the replay goes."""

    owners: dict[str, set[str]] = field(default_factory=dict)  # namesakes in two schemas: both tables
    neighbours: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def from_rows(cls, rows: list[Any]) -> RelationMap:
        relations = cls()
        for row in rows:
            if row["kind"] == "owner":
                relations.own(row["name"], row["other"])
            else:
                relations.link({row["name"], row["other"]})
        return relations

    def link(self, tables: set[str]) -> None:
        for table in tables:
            self.neighbours.setdefault(table, set()).update(tables - {table})

    def direct(self, names: set[str]) -> set[str]:
        """The names and the tables they belong to: what a finding the statement adds names."""
        return names | {t for n in names for t in self.owners.get(n, ())}

    def own(self, name: str, table: str) -> None:
        self.owners.setdefault(name, set()).add(table)

    def reach(self, names: set[str]) -> set[str]:
        """Every table whose findings a statement on these names can change."""
        tables = self.direct(names)
        return tables | {n for t in tables for n in self.neighbours.get(t, ())}

    def learn(self, node: Any, names: set[str]) -> None:
        """What a replayed statement adds: the indexes and constraints it names belong to their
        table; the tables it names together (a foreign key) are neighbours from now on, and a
        renamed relation's new name has the old one's."""
        table = getattr(getattr(node, "relation", None), "relname", None)
        for part in walk(node):
            if isinstance(part, ast.IndexStmt) and part.idxname and part.relation is not None and part.relation.relname:
                self.own(part.idxname, part.relation.relname)
            elif isinstance(part, ast.Constraint) and part.conname and table:
                self.own(part.conname, table)
        tables = self.direct(names)
        if len(tables) > 1:
            self.link(tables)
        if isinstance(node, ast.RenameStmt) and node.renameType in RELATION_KINDS and table and node.newname:
            for neighbour in self.neighbours.get(table, set()) - {node.newname}:
                self.link({node.newname, neighbour})
            for owner in self.owners.get(table, set()):
                self.own(node.newname, owner)


@dataclass
class _Replayed:
    statement: Statement
    sql: str
    checked: bool  # changes what the checks read
    names: set[str]


class _Replay:
    """The migration on the scratch, checked once per group of statements that reach disjoint
    tables: a finding a group adds is attributed to the one statement of the group whose names its
    object starts with. When none or several do, the group is rolled back and replayed checking
    after each statement, so the attribution is the same as checking after every statement."""

    def __init__(self, conn: Any, name: str, config: Any, relations: RelationMap,
                 before: dict[str, Finding]) -> None:
        self.conn, self.name, self.config, self.relations = conn, name, config, relations
        self.result = ScratchResult()
        self.current = before
        self.appeared: dict[str, Statement] = {}
        self.since: list[_Replayed] = []  # replayed since the group's savepoint
        self.reached: set[str] = set()

    async def run(self, statements: list[Statement]) -> None:
        await self.conn.execute(f"SAVEPOINT {GROUP_SAVEPOINT}")
        for statement in statements:
            sql = replayed_sql(statement)
            if sql is None:
                if isinstance(statement.node, (ast.DoStmt, ast.CallStmt)):
                    self.result.notes.append(
                        f"{statement.file}:{statement.line}: code blocks are not run on the copy: "
                        "what this one would create is missing from the schema after")
                continue
            checked = changes_what_checks_read(statement.node)
            names = relation_names(statement.node)
            reach = self.relations.reach(names) if names is not None else None
            if checked and any(r.checked for r in self.since) and (reach is None or reach & self.reached):
                await self._checkpoint()
            if not await self._apply(statement, sql, record=True):
                continue
            self.since.append(_Replayed(statement, sql, checked, names or set()))
            if names is not None:
                self.relations.learn(statement.node, names)
            if checked:
                if reach is None:
                    await self._checkpoint()
                else:
                    self.reached |= reach
        await self._checkpoint()

    async def _apply(self, statement: Statement, sql: str, *, record: bool) -> bool:
        try:
            # In a savepoint, so a failed statement leaves the others going; one round trip.
            # The semicolon on a line of its own: the statement's text may end in a -- comment.
            await self.conn.execute(f"SAVEPOINT {SAVEPOINT};\n{sql}\n;\nRELEASE SAVEPOINT {SAVEPOINT}")
        except Exception as exc:  # the statement fails on the target's schema: the migration would too
            await self.conn.execute(f"ROLLBACK TO SAVEPOINT {SAVEPOINT}; RELEASE SAVEPOINT {SAVEPOINT}")
            if record:
                self.result.errors.append(
                    f"{statement.file}:{statement.line}: fails on a copy of the schema: {type(exc).__name__}: "
                    f"{exc} ({' '.join(statement.sql.split())[:200]})")
            return False
        return True

    async def _checkpoint(self) -> None:
        checked = [r for r in self.since if r.checked]
        if checked:
            # The checks name objects schema-qualified: a SET search_path in the migration renames none.
            now = await schema_findings(self.conn, self.name, self.config)
            added = [now[i] for i in now.keys() - self.current.keys()]
            causes = self._causes(checked, added)
            if causes is None:
                await self._one_by_one()
            else:
                self.appeared.update(causes)
                self.current = now
        await self.conn.execute(f"RELEASE SAVEPOINT {GROUP_SAVEPOINT}; SAVEPOINT {GROUP_SAVEPOINT}")
        self.since, self.reached = [], set()

    def _causes(self, checked: list[_Replayed], added: list[Finding]) -> dict[str, Statement] | None:
        """Each added finding's statement; None when one cannot be told by the names."""
        if len(checked) == 1:
            return {f.id: checked[0].statement for f in added}
        causes = {}
        for finding in added:
            relation = leading_relation(finding.object)
            names = self.relations.direct({relation})
            candidates = [r for r in checked if names & self.relations.direct(r.names)]
            if len(candidates) != 1:
                return None
            causes[finding.id] = candidates[0].statement
        return causes

    async def _one_by_one(self) -> None:
        await self.conn.execute(f"ROLLBACK TO SAVEPOINT {GROUP_SAVEPOINT}")
        for replayed in self.since:
            # It ran at this point before: its failure was recorded then.
            if await self._apply(replayed.statement, replayed.sql, record=False) and replayed.checked:
                now = await schema_findings(self.conn, self.name, self.config)
                for finding_id in now.keys() - self.current.keys():
                    self.appeared[finding_id] = replayed.statement
                self.current = now


def leading_relation(obj: str) -> str:
    """The relation a finding's object names: `schema.table`, `schema.table.column`,
    `schema.table(columns)`, identifiers quoted where needed."""
    parts: list[str] = []
    at = 0
    while at < len(obj) and len(parts) < 2:
        if obj[at] == '"':
            end = at + 1
            while end < len(obj) and not (obj[end] == '"' and obj[end + 1:end + 2] != '"'):
                end += 2 if obj[end] == '"' else 1
            parts.append(obj[at + 1:end].replace('""', '"'))
            at = end + 1
        else:
            end = at
            while end < len(obj) and obj[end] not in '.("':
                end += 1
            parts.append(obj[at:end])
            at = end
        if at >= len(obj) or obj[at] != ".":
            break
        at += 1
    return parts[1] if len(parts) > 1 else (parts[0] if parts else obj)
