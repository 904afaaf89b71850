"""Pick the PostgreSQL target and run the analysis in the usual read-only session."""

from __future__ import annotations

from typing import Any

from checks.budget import server_key
from checks.postgres.migration.analyze import SCHEMA, Analyzer
from checks.postgres.migration.catalog import Catalog
from checks.postgres.migration.parse import Statement

KIND = "postgres"


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


async def analyse(target: Any, name: str, files: list[str], statements: list[Statement]) -> dict[str, Any]:
    """The `dbvitals.migration/1` document. A connection or catalog failure is in `errors`."""
    from checks.postgres.connector import PostgresSession, open_pool  # imports asyncpg: only when it runs

    doc: dict[str, Any] = {"schema": SCHEMA, "target": name, "files": list(files), "statements": [], "errors": []}
    try:
        pool = await open_pool(target)  # read-only, statement and lock timeouts, the marker
    except Exception as exc:  # any driver failure: reported, exit 1
        doc["errors"].append(f"cannot connect to {name}: {type(exc).__name__}: {exc}")
        return doc
    session = PostgresSession(pool, "", server_key(target))
    try:
        doc["statements"] = await Analyzer(Catalog(session)).run(statements)
    except Exception as exc:  # a catalog read failed or timed out: the analysis is incomplete
        doc["errors"].append(f"analysis did not complete: {type(exc).__name__}: {exc}")
    finally:
        await session.close()
    return doc
