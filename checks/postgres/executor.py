"""Applying SQL fix steps: one read-write session under lock_timeout and statement_timeout.

Consecutive transactional steps run in one transaction, so they apply together or not at all.
A step marked `transactional=False` (CREATE/DROP INDEX CONCURRENTLY) runs alone, outside any
transaction. A concurrent build that fails leaves an INVALID index behind that still slows
every write: it is dropped (concurrently) and the cleanup is reported either way. A build whose
process was killed leaves one too: the next run of the same fix drops it first, but only when
the journal says an earlier run of dbvitals was building exactly that index.

Undo guards: after the steps ran, `record_state` notes each index they created (OID and
definition); `guard_undo` compares what the server has now and refuses an inverse that would
drop an index dbvitals did not leave there, or recreate one over a name taken since.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from checks.actions.pipeline import raise_if_stopping
from checks.fixes.execution import CLEANUP_TIMEOUT_S, Execution, StepFailed, UndoCheck
from checks.model import FixStep
from checks.secrets import mask_text

# checks.postgres.connector imports asyncpg: the functions that open a client import it, so loading this
# module (the adapter does, to render and inspect steps) loads no driver.

_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*)'
_CREATE_CONCURRENTLY = re.compile(
    rf"^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+(?:IF\s+NOT\s+EXISTS\s+)?"
    rf"(?:(?P<name>(?!ON\b){_IDENT})\s+)?ON\s+(?:ONLY\s+)?(?P<table>{_IDENT}(?:\.{_IDENT})?)",
    re.IGNORECASE,
)
_DROP_CONCURRENTLY = re.compile(r"^\s*DROP\s+INDEX\s+CONCURRENTLY\b", re.IGNORECASE)
_CREATE_INDEX = re.compile(
    rf"^\s*CREATE\s+(?P<unique>UNIQUE\s+)?INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?"
    rf"(?P<name>(?!ON\b){_IDENT})\s+ON\s+(?P<only>ONLY\s+)?(?P<table>{_IDENT}(?:\.{_IDENT})?)\s*(?P<rest>.*?)[\s;]*$",
    re.IGNORECASE | re.DOTALL,
)
_DROP_INDEX = re.compile(
    rf"^\s*DROP\s+INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+EXISTS\s+)?(?P<index>{_IDENT}(?:\.{_IDENT})?)"
    rf"\s*(?:CASCADE|RESTRICT)?[\s;]*$",
    re.IGNORECASE,
)
_PART = re.compile(_IDENT)

INVALID_INDEXES = """
SELECT c.oid::int8 AS oid, n.nspname AS schema, c.relname AS name,
       quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS qualified
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT i.indisvalid AND i.indrelid = to_regclass($1)
"""


@dataclass(frozen=True)
class ConcurrentBuild:
    name: str | None  # as the server stores it (unquoted names fold to lower case)
    table: str


# An index (or what else has its name) as the server stores it; the WHERE clause picks it.
_INDEX_SELECT = """
SELECT c.oid::int8 AS oid, n.nspname AS schema, c.relname AS name, c.relkind::text AS kind,
       quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS qualified,
       i.indrelid::int8 AS table_oid, i.indisvalid AS valid,
       CASE WHEN i.indexrelid IS NOT NULL THEN pg_get_indexdef(c.oid) END AS definition
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_index i ON i.indexrelid = c.oid
"""
# The index with this name in the schema of this table (the name as the server stores it).
INDEX_ON_TABLE = _INDEX_SELECT + """\
WHERE c.relname = $1 AND c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = to_regclass($2))
"""
INDEX_BY_NAME = _INDEX_SELECT + """\
WHERE c.oid = to_regclass($1)
"""

def _unquote(ident: str) -> str:
    return ident[1:-1].replace('""', '"') if ident.startswith('"') else ident.lower()


def name_parts(qualified_name: str) -> tuple[str | None, str]:
    """(schema or None, name) of a possibly qualified identifier, as the server stores them."""
    parts = [_unquote(p) for p in _PART.findall(qualified_name)]
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[-1])


@dataclass(frozen=True)
class IndexCreate:
    """A CREATE INDEX statement, taken apart to compare it with pg_get_indexdef's output."""

    name: str  # as stored
    table: str  # as written
    unique: bool
    only: bool
    body: str  # USING method (columns) [INCLUDE ...] [WITH ...] [WHERE ...], normalised


def index_create(sql_text: str) -> IndexCreate | None:
    match = _CREATE_INDEX.match(sql_text)
    if not match:
        return None
    body = " ".join(match["rest"].split())
    if not re.match(r"USING\b", body, re.IGNORECASE):
        body = "USING btree " + body  # the default, which pg_get_indexdef spells out
    body = re.sub(r"^USING\s+(\w+)", lambda m: f"USING {m[1].lower()}", body, flags=re.IGNORECASE)
    body = re.sub(r"\s*([(),])\s*", r"\1", body)
    return IndexCreate(name=_unquote(match["name"]), table=match["table"], unique=bool(match["unique"]),
                       only=bool(match["only"]), body=body)


def index_drop(sql_text: str) -> tuple[str | None, str] | None:
    match = _DROP_INDEX.match(sql_text)
    return name_parts(match["index"]) if match else None


def _same_index(row: Any, wanted: IndexCreate, table_oid: int | None) -> bool:
    """Whether the index on the server is the one this CREATE INDEX statement builds."""
    have = index_create(row["definition"] or "")
    return (have is not None and table_oid is not None and row["table_oid"] == table_oid
            and (have.name, have.unique, have.only, have.body) == (wanted.name, wanted.unique, wanted.only, wanted.body))


def concurrent_build(sql: str) -> ConcurrentBuild | None:
    match = _CREATE_CONCURRENTLY.match(sql)
    if not match:
        return None
    name = match["name"]
    if name is not None:
        name = name[1:-1].replace('""', '"') if name.startswith('"') else name.lower()
    return ConcurrentBuild(name=name, table=match["table"])


def groups(steps: Sequence[FixStep]) -> list[list[tuple[int, FixStep]]]:
    """Consecutive transactional steps together; each non-transactional step on its own."""
    result: list[list[tuple[int, FixStep]]] = []
    for index, step in enumerate(steps):
        if step.transactional and result and result[-1][0][1].transactional:
            result[-1].append((index, step))
        else:
            result.append([(index, step)])
    return result


async def execute(run: Execution, steps: Sequence[FixStep]) -> None:
    from checks.postgres.connector import open_pool

    try:
        pool = await open_pool(run.target, read_only=False, max_size=1)
    except Exception as exc:
        raise StepFailed(f"cannot open a session: {_describe(exc, run)}") from exc
    try:
        async with pool.acquire() as conn:
            await _prepare(conn, run)
            for group in groups(steps):
                raise_if_stopping()
                await _run_group(conn, run, group, len(steps))
    finally:
        pool.terminate()


async def _prepare(conn: Any, run: Execution) -> None:
    limits = run.limits
    # Named after the journal entry, so a DBA watching pg_stat_activity knows what this is.
    await conn.execute(f"SET application_name = 'dbvitals fix {run.entry_id}'")
    await conn.execute(f"SET lock_timeout = {int(limits.lock_timeout_s * 1000)}")
    await conn.execute(f"SET statement_timeout = {int(limits.statement_timeout_s * 1000)}")
    await conn.execute("SET idle_in_transaction_session_timeout = 60000")
    if await conn.fetchval("SELECT pg_is_in_recovery()"):
        raise StepFailed("the server is a read-only replica: apply the fix on the primary")


async def _run_group(conn: Any, run: Execution, group: list[tuple[int, FixStep]], total: int) -> None:
    import asyncpg

    first, step = group[0]
    label = f"step {first + 1}" if len(group) == 1 else f"steps {first + 1}-{group[-1][0] + 1}"
    build = None if step.transactional else concurrent_build(str(step.command))
    if build and build.name:
        await _drop_stale_invalid(conn, run, build, str(step.command))
    for attempt in range(1, run.limits.lock_attempts + 1):
        before = await _invalid_oids(conn, build) if build else set()
        await run.progress(f"{label} of {total}: {_first_line(step)}")
        try:
            if step.transactional:
                async with conn.transaction():
                    for _, member in group:
                        await conn.execute(str(member.command), timeout=_client_timeout(run))
            else:
                await conn.execute(str(step.command), timeout=_client_timeout(run))
        except asyncio.CancelledError:
            # A stop signal: the server would go on with the step without dbvitals. Stop it
            # there and undo what it left, then let the cancellation through.
            await _interrupted(run, conn, group, build, before, label)
            raise
        except asyncpg.LockNotAvailableError as exc:
            if build:
                await _drop_left_invalid(run, build, before)
            if attempt == run.limits.lock_attempts:
                raise StepFailed(
                    f"{label} could not take its lock within lock_timeout "
                    f"({run.limits.lock_timeout_s:g}s) in {attempt} attempts: {_describe(exc, run)}"
                ) from exc
            await run.progress(f"{label}: lock not available, trying again ({attempt + 1} of {run.limits.lock_attempts})")
            await asyncio.sleep(run.limits.retry_pause_s * attempt)
            continue
        except Exception as exc:
            if build:
                await _drop_left_invalid(run, build, before)
            elif not step.transactional and _DROP_CONCURRENTLY.match(str(step.command)):
                run.leftovers.append(
                    "a failed DROP INDEX CONCURRENTLY can leave the index INVALID but still in place: "
                    f"run it again: {_first_line(step)}"
                )
            timeout = " (statement_timeout)" if isinstance(exc, asyncpg.QueryCanceledError) else ""
            kept = "" if not step.transactional or len(group) == 1 else " (rolled back together)"
            raise StepFailed(f"{label} failed{timeout}{kept}: {_describe(exc, run)}") from exc
        run.steps_done += len(group)
        return


async def _interrupted(run: Execution, conn: Any, group: list[tuple[int, FixStep]], build: ConcurrentBuild | None,
                       before: set[int], label: str) -> None:
    """The step's session is ended on the server (a transaction with it is rolled back, a
    concurrent build stops) and an INVALID index the build left is dropped, on a fresh session,
    within CLEANUP_TIMEOUT_S. What is done goes to the notes, what is not to the leftovers."""
    step = group[0][1]
    try:
        pid = conn.get_server_pid()
    except Exception:  # the connection is gone already: the server ends its session itself
        pid = None
    try:
        await asyncio.wait_for(_stop_and_clean(run, pid, group, build, before, label), CLEANUP_TIMEOUT_S)
    except Exception as exc:  # TimeoutError, or the server cannot be reached
        why = "in time" if isinstance(exc, TimeoutError) else f"({_describe(exc, run)})"
        what = f"index {build.name}" if build and build.name else f"a new index on {build.table}" if build else None
        if what:
            run.leftovers.append(
                f"{label} was interrupted and its cleanup did not finish {why}: the build may have left {what} "
                "INVALID: look for it with SELECT indexrelid::regclass FROM pg_index WHERE NOT indisvalid; "
                "and drop it with DROP INDEX CONCURRENTLY IF EXISTS")
        else:
            run.leftovers.append(f"{label} was interrupted and its cleanup did not finish {why}: "
                                 f"check what `{_first_line(step)}` left")


async def _stop_and_clean(run: Execution, pid: int | None, group: list[tuple[int, FixStep]],
                          build: ConcurrentBuild | None, before: set[int], label: str) -> None:
    from checks.postgres.connector import open_pool

    step = group[0][1]
    pool = await open_pool(run.target, read_only=False, max_size=1)
    try:
        async with pool.acquire() as fresh:
            await _prepare(fresh, run)
            # A lock wait must not outlast the cleanup's bound.
            await fresh.execute(f"SET lock_timeout = {int(min(run.limits.lock_timeout_s, CLEANUP_TIMEOUT_S / 3) * 1000)}")
            if pid is not None:
                await fresh.execute("SELECT pg_terminate_backend($1)", pid)
                for _ in range(100):
                    if not await fresh.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid):
                        break
                    await asyncio.sleep(0.05)
                run.notes.append(f"{label} was interrupted: ended its session on the server (pid {pid})")
            if step.transactional:
                run.notes.append(f"{label} did not commit: rolled back with the session")
                return
            if build is None:
                if _DROP_CONCURRENTLY.match(str(step.command)):
                    run.leftovers.append("the interrupted DROP INDEX CONCURRENTLY can leave the index INVALID but still "
                                         f"in place: run it again: {_first_line(step)}")
                else:
                    run.leftovers.append(f"{label} was interrupted on the server: check what `{_first_line(step)}` left")
                return
            rows = await fresh.fetch(INVALID_INDEXES, build.table)
            left = [r for r in rows if r["oid"] not in before and (build.name is None or r["name"] == build.name)]
            for row in left:
                drop = f"DROP INDEX CONCURRENTLY IF EXISTS {row['qualified']}"
                await run.progress(f"dropping INVALID index {row['qualified']} the interrupted build left")
                try:
                    await fresh.execute(drop, timeout=CLEANUP_TIMEOUT_S)
                except Exception as exc:
                    run.leftovers.append(f"the interrupted build left INVALID index {row['qualified']} and dropping it "
                                         f"failed ({_describe(exc, run)}): run {drop};")
                else:
                    run.notes.append(f"dropped INVALID index {row['qualified']} the interrupted build left ({drop})")
            if not left and build.name:
                done = await fresh.fetchrow(INDEX_ON_TABLE, build.name, build.table)
                if done is not None and done["valid"]:
                    # The build finished on the server before the signal could stop it: it is done.
                    run.steps_done += 1
                    run.notes.append(f"the build of index {done['qualified']} finished before it could be stopped: "
                                     "it is in place (`dbvitals undo` drops it)")
    finally:
        pool.terminate()


def _client_timeout(run: Execution) -> float:
    # The server's statement_timeout decides; the client only guards against a dead socket.
    return run.limits.statement_timeout_s + 30


async def _invalid_oids(conn: Any, build: ConcurrentBuild) -> set[int]:
    return {row["oid"] for row in await conn.fetch(INVALID_INDEXES, build.table)}


async def _drop_stale_invalid(conn: Any, run: Execution, build: ConcurrentBuild, statement: str) -> None:
    """An earlier build of this very index that was interrupted left it INVALID under the same
    name, which would make this build fail (or, with IF NOT EXISTS, silently keep it). It is
    dropped only when the journal says dbvitals was building it and its definition is this one:
    an INVALID index of someone else's is never touched."""
    wanted = index_create(statement)
    for row in await conn.fetch(INVALID_INDEXES, build.table):
        if row["name"] != build.name:
            continue
        entry = run.earlier_builds.get(row["name"])  # build.name, known here to be a name
        found = await conn.fetchrow(INDEX_BY_NAME, row["qualified"])
        table_oid = await conn.fetchval("SELECT to_regclass($1)::int8", build.table)
        if entry is None or wanted is None or found is None or not _same_index(found, wanted, table_oid):
            why = ("no journal entry of dbvitals was building it" if entry is None
                   else f"its definition ({found['definition'] if found else 'unknown'}) is not the one entry {entry} was building")
            raise StepFailed(
                f"an INVALID index {row['qualified']} is in the way and {why}, so dbvitals leaves it alone: "
                f"rebuild it (REINDEX INDEX CONCURRENTLY {row['qualified']};) or drop it "
                f"(DROP INDEX CONCURRENTLY {row['qualified']};), then run the fix again"
            )
        drop = f"DROP INDEX CONCURRENTLY IF EXISTS {row['qualified']}"
        await run.progress(f"dropping INVALID index {row['qualified']} left by the interrupted journal entry {entry}")
        await conn.execute(drop, timeout=_client_timeout(run))
        run.notes.append(f"dropped INVALID index {row['qualified']} left by an earlier, interrupted build "
                         f"(journal entry {entry}) ({drop})")


async def _drop_left_invalid(run: Execution, build: ConcurrentBuild, before: set[int]) -> None:
    """Drop the INVALID index a failed concurrent build left, on a fresh session: the build's
    own session may be the one that was terminated."""
    from checks.postgres.connector import open_pool

    what = f"index {build.name}" if build.name else f"the new index on {build.table}"
    try:
        pool = await open_pool(run.target, read_only=False, max_size=1)
    except Exception as exc:
        run.leftovers.append(
            f"the failed build may have left {what} INVALID, and the server could not be reached to check "
            f"({_describe(exc, run)}); look for it with: SELECT indexrelid::regclass FROM pg_index "
            f"WHERE NOT indisvalid; and drop it with DROP INDEX CONCURRENTLY IF EXISTS"
        )
        return
    try:
        async with pool.acquire() as fresh:
            await _prepare(fresh, run)
            rows = await fresh.fetch(INVALID_INDEXES, build.table)
            left = [r for r in rows if r["oid"] not in before and (build.name is None or r["name"] == build.name)]
            for row in left:
                drop = f"DROP INDEX CONCURRENTLY IF EXISTS {row['qualified']}"
                try:
                    await fresh.execute(drop, timeout=_client_timeout(run))
                except Exception as exc:
                    run.leftovers.append(
                        f"the failed build left INVALID index {row['qualified']} and dropping it failed "
                        f"({_describe(exc, run)}): run {drop};"
                    )
                else:
                    run.leftovers.append(f"the failed build left INVALID index {row['qualified']}: dropped it ({drop})")
                    await run.progress(f"dropped INVALID index {row['qualified']} left by the failed build")
    except Exception as exc:
        run.leftovers.append(
            f"could not check whether the failed build left {what} INVALID ({_describe(exc, run)}): "
            "look for it with SELECT indexrelid::regclass FROM pg_index WHERE NOT indisvalid;"
        )
    finally:
        pool.terminate()


# --- undo guards ---------------------------------------------------------------------------------

async def record_state(run: Execution, steps: Sequence[FixStep]) -> list[dict[str, Any]]:
    """The indexes the applied steps created, as the server has them now (OID and definition).
    Only steps that ran: an index of the same name a later, unreached step would have built may
    be someone else's."""
    creates = [c for step in steps[: run.steps_done] if (c := index_create(str(step.command)))]
    if not creates:
        return []
    from checks.postgres.connector import open_pool

    pool = await open_pool(run.target, max_size=1)
    try:
        async with pool.acquire() as conn:
            recorded = []
            for create in creates:
                row = await conn.fetchrow(INDEX_ON_TABLE, create.name, create.table)
                if row is not None and row["definition"]:
                    recorded.append({"kind": "pg-index", "index": row["qualified"], "schema": row["schema"],
                                     "name": row["name"], "oid": row["oid"], "definition": row["definition"]})
            return recorded
    finally:
        pool.terminate()


def inspects(steps: Sequence[FixStep]) -> bool:
    """Whether `guard_undo` reads the server for these inverse steps."""
    return any(index_drop(str(s.command)) or index_create(str(s.command)) for s in steps)


async def guard_undo(target: Any, entry: Any, inverse: Sequence[FixStep]) -> UndoCheck:
    """Compare what the inverse would drop or recreate with what the fix left.

    A finished entry's objects must be exactly as recorded (same OID and definition) or as its
    steps built them; for an unfinished entry (its process killed, the server possibly done),
    what is there is undone if it is what the steps build, and what is not there is skipped."""
    finished = entry.outcome in ("fixed", "not_fixed")
    partial = not finished and entry.steps_done == 0
    check = UndoCheck(steps=[])
    if not inspects(inverse):
        if partial:
            check.notes.append(f"entry {entry.id} applied no step: its inverse has nothing to undo")
        else:
            check.steps = list(inverse)
        return check
    from checks.postgres.connector import open_pool

    creates = {c.name: c for s in entry.steps if (c := index_create(str(s.get("command", ""))))}
    recorded = [e for e in entry.expect if e.get("kind") == "pg-index"]
    pool = await open_pool(target, max_size=1)
    try:
        async with pool.acquire() as conn:
            for step in inverse:
                keep = await _guard_step(conn, step, creates, recorded, finished, partial, check)
                if keep:
                    check.steps.append(step)
    finally:
        pool.terminate()
    return check


async def _guard_step(conn: Any, step: FixStep, creates: dict[str, IndexCreate], recorded: list[dict[str, Any]],
                      finished: bool, partial: bool, check: UndoCheck) -> bool:
    text = str(step.command)
    drop = _DROP_INDEX.match(text)
    if drop:
        schema, name = name_parts(drop["index"])
        written = drop["index"]
        row = await conn.fetchrow(INDEX_BY_NAME, written)
        if row is not None and row["kind"] not in ("i", "I"):
            check.refusals.append(f"{row['qualified']} is no longer an index (relkind {row['kind']}): "
                                  "dbvitals will not drop it")
            return False
        if row is None:
            check.not_as_left(finished, f"index {written} no longer exists: this fix's index was dropped since, "
                              "nothing is left to undo",
                              f"index {written} does not exist: the unfinished fix did not create it")
            return False
        record = next((e for e in recorded if e["name"] == name and schema in (None, e["schema"])), None)
        source = creates.get(name)
        if record is not None:
            if (row["oid"], row["definition"]) != (record["oid"], record["definition"]):
                check.refusals.append(
                    f"index {row['qualified']} is not the one this fix created: the fix left OID {record['oid']} "
                    f"`{record['definition']}`, the server now has OID {row['oid']} `{row['definition']}`; "
                    "dbvitals will not drop it")
                return False
            return True
        if source is not None:
            table_oid = await conn.fetchval("SELECT to_regclass($1)::int8", source.table)
            if not _same_index(row, source, table_oid):
                check.refusals.append(
                    f"index {row['qualified']} is not the one this fix builds: the server has `{row['definition']}`; "
                    "dbvitals will not drop it")
                return False
            if not finished:
                state = "valid: the server finished the build" if row["valid"] else "INVALID: its build was interrupted"
                check.notes.append(f"found index {row['qualified']} as the unfinished fix left it ({state})")
            return True
        return not partial  # nothing recorded to compare with: an entry journaled before undo guards
    create = index_create(text)
    if create:
        row = await conn.fetchrow(INDEX_ON_TABLE, create.name, create.table)
        if row is None:
            return True
        check.not_as_left(finished, f"{row['qualified']} exists again (created after the fix dropped it): "
                          "dbvitals will not replace it",
                          f"{row['qualified']} still exists: the unfinished fix did not drop it")
        return False
    if partial:
        check.notes.append(f"skipped `{_first_line(step)}`: the unfinished fix applied no step")
        return False
    return True


def _first_line(step: FixStep) -> str:
    text = " ".join(str(step.command).split())
    return text if len(text) <= 160 else text[:157] + "..."


def _describe(exc: BaseException, run: Execution) -> str:
    text = str(exc).strip() or type(exc).__name__
    return mask_text(f"{type(exc).__name__}: {text}", run.target.secret_values())[:500]
