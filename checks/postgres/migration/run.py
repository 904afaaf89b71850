"""Pick the PostgreSQL target and run the analysis in the usual read-only session; with a scratch
database, the schema after the migration too."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from checks.budget import server_key
from checks.config import valid_url
from checks.postgres.migration.analyze import SCHEMA, Analyzer
from checks.postgres.migration.catalog import Catalog
from checks.postgres.migration.copy import read_copy
from checks.postgres.migration.parse import Statement
from checks.postgres.migration.scratch import IDENTITY_QUERY, ScratchRefused, prepare, replay
from checks.postgres.target import URL_SCHEMES
from checks.secrets import mask_url, remember_secrets, url_secrets

KIND = "postgres"
SCRATCH_SKIPPED = "schema after the migration: skipped (no scratch database: --scratch URL or migration_scratch)"


class TargetChoiceError(ValueError):
    """No, or no single, PostgreSQL target to judge the migration against."""


def choose_target(settings: Any, wanted: str | None) -> str:
    postgres = [n for n, t in settings.targets.items() if getattr(t, "kind", None) == KIND]
    if wanted:
        if wanted not in settings.targets:
            raise TargetChoiceError(f"unknown target {wanted} (configured: {', '.join(settings.targets) or 'none'})")
        if wanted not in postgres:
            raise TargetChoiceError(f"target {wanted} is not PostgreSQL")
        return wanted
    if len(postgres) == 1:
        return postgres[0]
    raise TargetChoiceError("--target NAME: which PostgreSQL target"
                            + (f" ({', '.join(postgres)})" if postgres else " (none configured)"))


def scratch_url(value: str) -> str:
    """A --scratch URL checked like a target's (ValueError), its password masked from now on."""
    valid_url(value, URL_SCHEMES, 'expected a URL starting with "postgresql://"')
    remember_secrets(url_secrets(value))
    return value


async def analyse(target: Any, name: str, files: list[str], statements: list[Statement],
                  scratch: str | None = None) -> dict[str, Any]:
    """The `dbvitals.migration/1` document. A connection or catalog failure is in `errors`."""
    from checks.postgres.connector import PostgresSession, open_pool  # imports asyncpg: only when it runs

    doc: dict[str, Any] = {"schema": SCHEMA, "target": name, "files": list(files), "statements": [],
                           "after": [], "after_notes": [], "errors": []}
    try:
        pool = await open_pool(target)  # read-only, statement and lock timeouts, the marker
    except Exception as exc:  # any driver failure: reported, exit 1
        doc["errors"].append(f"cannot connect to {name}: {type(exc).__name__}: {exc}")
        return doc
    session = PostgresSession(pool, "", server_key(target))
    try:
        analysis = Analyzer(Catalog(session)).run(statements)
        if scratch is None:
            doc["after_notes"].append(SCRATCH_SKIPPED)
            outcomes = [await _outcome(analysis)]
        else:
            # Side by side: the statements are judged on the target while the scratch replays them
            # (the scratch's work is mostly waiting for its server, the judgement for the target's).
            outcomes = list(await asyncio.gather(_outcome(analysis), _outcome(
                _after(doc, session, target, name, statements, scratch))))
    finally:
        await session.close()
    if isinstance(outcomes[0], list):
        doc["statements"] = outcomes[0]
    for outcome in outcomes:
        if isinstance(outcome, Exception):  # a catalog read failed or timed out: the analysis is incomplete
            doc["errors"].append(f"analysis did not complete: {type(outcome).__name__}: {outcome}")
    return doc


async def _outcome(work: Awaitable[Any]) -> Any:
    """The result, or the exception it raised (reported, never a traceback)."""
    try:
        return await work
    except Exception as exc:
        return exc


async def _after(doc: dict[str, Any], session: Any, target: Any, name: str, statements: list[Statement],
                 scratch: str) -> None:
    from checks.postgres.connector import open_pool

    copy = await read_copy(session, statements)
    identity = await session.fetchval(IDENTITY_QUERY)
    scratch_target = type(target)(kind=KIND, url=scratch, timeout=target.timeout, check_timeout=target.check_timeout)
    try:
        pool = await open_pool(scratch_target, read_only=False)
    except Exception as exc:
        doc["errors"].append(f"cannot connect to the scratch database {mask_url(scratch)}: {type(exc).__name__}: {exc}")
        return
    try:
        async with pool.acquire() as conn:
            try:
                await prepare(conn, identity)
            except ScratchRefused as exc:
                doc["errors"].append(f"scratch database {mask_url(scratch)} refused: {exc}")
                return
            notes: list[str] = []
            result = await replay(conn, name, target, copy, statements, notes)
    finally:
        await pool.close()
    doc["after"] = result.after
    doc["after_notes"] += [f"schema after the migration: {len(copy.tables)} table(s) copied to the scratch "
                           "(the ones the migration names and their foreign-key neighbours), no data"] + notes
    doc["after_notes"] += result.notes
    doc["errors"] += result.errors
