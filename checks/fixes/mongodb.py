"""Applying MongoDB fix steps: command documents (createIndexes, dropIndexes, collMod, ...)
run one by one against their database, each bounded on the server by maxTimeMS."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from checks.fixes.execution import Execution, StepFailed
from checks.model import FixStep
from checks.secrets import mask_text


def command_document(step: FixStep, run: Execution) -> dict[str, Any]:
    command = step.command
    if not isinstance(command, dict) or not command:
        raise StepFailed(f"a MongoDB step must be a command document, got {type(command).__name__}")
    document = dict(command)  # the first key names the command; dict order keeps it first
    document.setdefault("maxTimeMS", int(run.limits.statement_timeout_s * 1000))
    return document


async def execute(run: Execution, steps: Sequence[FixStep]) -> None:
    from checks.connectors.mongodb import make_client

    timeout_ms = int(run.limits.statement_timeout_s * 1000)
    # No client-side operation timeout: maxTimeMS in each command bounds it on the server,
    # and an index build must not be cut off by the check session's short timeout.
    client = make_client(run.target, timeoutMS=None, socketTimeoutMS=timeout_ms + 30_000, maxPoolSize=1)
    try:
        default_db = client._default_database_name
        for index, step in enumerate(steps):
            database = step.database or default_db
            if not database:
                raise StepFailed(f"step {index + 1} names no database and the target URL names none")
            document = command_document(step, run)
            name = next(iter(document))
            await run.progress(f"step {index + 1} of {len(steps)}: {name} on {database}.{document[name]}")
            try:
                await client[database].command(document)
            except Exception as exc:
                await _report_partial(client, database, document, run)
                raise StepFailed(f"step {index + 1} ({name}) failed: {_describe(exc, run)}") from exc
            run.steps_done += 1
    finally:
        await client.close()


async def _report_partial(client: Any, database: str, document: dict[str, Any], run: Execution) -> None:
    """After a failed createIndexes, say which of its indexes exist: since 4.4 a build goes on
    on the server after the client is gone, and a killed server resumes it on restart."""
    if next(iter(document)) != "createIndexes":
        return
    wanted = [spec.get("name") for spec in document.get("indexes", []) if isinstance(spec, dict)]
    collection = document["createIndexes"]
    try:
        present = {ix["name"] async for ix in await client[database][collection].list_indexes()}
    except Exception as exc:
        run.leftovers.append(
            f"could not list the indexes of {database}.{collection} after the failure ({_describe(exc, run)}): "
            f"check whether {', '.join(filter(None, wanted)) or 'the index'} exists or is still building "
            "(db.currentOp({'command.createIndexes': {$exists: true}}))"
        )
        return
    for name in filter(None, wanted):
        if name in present:
            run.leftovers.append(f"index {name} on {database}.{collection} exists despite the failure (built or still building)")


def _describe(exc: BaseException, run: Execution) -> str:
    text = str(exc).split(", full error:")[0].split(", Timeout:")[0].strip() or type(exc).__name__
    return mask_text(f"{type(exc).__name__}: {text}", run.target.secret_values())[:500]
