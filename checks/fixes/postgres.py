"""Applying SQL fix steps: one read-write session under lock_timeout and statement_timeout.

Consecutive transactional steps run in one transaction, so they apply together or not at all.
A step marked `transactional=False` (CREATE/DROP INDEX CONCURRENTLY) runs alone, outside any
transaction. A concurrent build that fails leaves an INVALID index behind that still slows
every write: it is dropped (concurrently) and the cleanup is reported either way.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from checks.fixes.execution import Execution, StepFailed
from checks.model import FixStep
from checks.secrets import mask_text

_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*)'
_CREATE_CONCURRENTLY = re.compile(
    rf"^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+(?:IF\s+NOT\s+EXISTS\s+)?"
    rf"(?:(?P<name>(?!ON\b){_IDENT})\s+)?ON\s+(?:ONLY\s+)?(?P<table>{_IDENT}(?:\.{_IDENT})?)",
    re.IGNORECASE,
)
_DROP_CONCURRENTLY = re.compile(r"^\s*DROP\s+INDEX\s+CONCURRENTLY\b", re.IGNORECASE)

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
    from checks.connectors.postgres import open_pool

    try:
        pool = await open_pool(run.target, read_only=False, max_size=1)
    except Exception as exc:
        raise StepFailed(f"cannot open a session: {_describe(exc, run)}") from exc
    try:
        async with pool.acquire() as conn:
            await _prepare(conn, run)
            for group in groups(steps):
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
        await _drop_stale_invalid(conn, run, build)
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


def _client_timeout(run: Execution) -> float:
    # The server's statement_timeout decides; the client only guards against a dead socket.
    return run.limits.statement_timeout_s + 30


async def _invalid_oids(conn: Any, build: ConcurrentBuild) -> set[int]:
    return {row["oid"] for row in await conn.fetch(INVALID_INDEXES, build.table)}


async def _drop_stale_invalid(conn: Any, run: Execution, build: ConcurrentBuild) -> None:
    """An earlier build of this very index that was interrupted left it INVALID under the same
    name, which would make this build fail (or, with IF NOT EXISTS, silently keep it)."""
    for row in await conn.fetch(INVALID_INDEXES, build.table):
        if row["name"] == build.name:
            drop = f"DROP INDEX CONCURRENTLY IF EXISTS {row['qualified']}"
            await run.progress(f"dropping INVALID index {row['qualified']} left by an interrupted build")
            await conn.execute(drop, timeout=_client_timeout(run))
            run.notes.append(f"dropped INVALID index {row['qualified']} left by an earlier, interrupted build ({drop})")


async def _drop_left_invalid(run: Execution, build: ConcurrentBuild, before: set[int]) -> None:
    """Drop the INVALID index a failed concurrent build left, on a fresh session: the build's
    own session may be the one that was terminated."""
    from checks.connectors.postgres import open_pool

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


def _first_line(step: FixStep) -> str:
    text = " ".join(str(step.command).split())
    return text if len(text) <= 160 else text[:157] + "..."


def _describe(exc: BaseException, run: Execution) -> str:
    text = str(exc).strip() or type(exc).__name__
    return mask_text(f"{type(exc).__name__}: {text}", run.target.secret_values())[:500]
