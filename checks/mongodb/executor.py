"""Applying MongoDB fix steps: command documents (createIndexes, dropIndexes, collMod, ...)
run one by one against their database, each bounded on the server by maxTimeMS.

Undo guards: `record_state` notes each index the applied steps created or changed (key and
options, as listIndexes reports them); `guard_undo` refuses to drop an index, or to set its TTL
back, when it is no longer what dbvitals left, and to recreate one over a name taken since."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from checks.fixes import OWN_UNDO
from checks.actions.pipeline import raise_if_stopping
from checks.fixes.execution import CLEANUP_TIMEOUT_S, Execution, StepFailed, UndoCheck
from checks.model import FixStep
from checks.mongodb.profiler_action import PROFILER_CHECK, undo_action
from checks.secrets import mask_text

# checks.mongodb.connector imports pymongo: the functions that open a client import it, so loading this
# module (the adapter does, to render and inspect steps) loads no driver.

# `dbvitals undo` of a profiler setting: put back what it found, verified by reading it back.
OWN_UNDO[PROFILER_CHECK] = undo_action


def command_document(step: FixStep, run: Execution) -> dict[str, Any]:
    command = step.command
    if not isinstance(command, dict) or not command:
        raise StepFailed(f"a MongoDB step must be a command document, got {type(command).__name__}")
    document = dict(command)  # the first key names the command; dict order keeps it first
    document.setdefault("maxTimeMS", int(run.limits.statement_timeout_s * 1000))
    return document


async def execute(run: Execution, steps: Sequence[FixStep]) -> None:
    from checks.mongodb.connector import close_client, make_client

    timeout_ms = int(run.limits.statement_timeout_s * 1000)
    # No client-side operation timeout: maxTimeMS in each command bounds it on the server,
    # and an index build must not be cut off by the check session's short timeout.
    client = make_client(run.target, timeoutMS=None, socketTimeoutMS=timeout_ms + 30_000, maxPoolSize=1)
    try:
        default_db = client._default_database_name
        for index, step in enumerate(steps):
            raise_if_stopping()
            database = step.database or default_db
            if not database:
                raise StepFailed(f"step {index + 1} names no database and the target URL names none")
            document = command_document(step, run)
            name = next(iter(document))
            await run.progress(f"step {index + 1} of {len(steps)}: {name} on {database}.{document[name]}")
            new: list[str] = []
            try:
                new = await _new_index_names(client, database, document)
                await client[database].command(document)
            except asyncio.CancelledError:
                # A stop signal: since 4.4 the server goes on building after the client is
                # gone, so the build is stopped (dropIndexes aborts one in progress) and the
                # index dropped, then the cancellation goes on.
                await _take_back_build(run, database, document[name], new, f"step {index + 1}")
                raise
            except Exception as exc:
                await _report_partial(client, database, document, run)
                raise StepFailed(f"step {index + 1} ({name}) failed: {_describe(exc, run)}") from exc
            run.steps_done += 1
    finally:
        await close_client(client)


async def _new_index_names(client: Any, database: str, document: dict[str, Any]) -> list[str]:
    """The indexes a createIndexes step would add: those of its names not there before it."""
    if next(iter(document)) != "createIndexes":
        return []
    wanted = [spec["name"] for spec in document.get("indexes", []) if isinstance(spec, dict) and spec.get("name")]
    present = await _indexes(client, database, document["createIndexes"])
    return [name for name in wanted if name not in present]


async def _take_back_build(run: Execution, database: str, collection: str, names: list[str], label: str) -> None:
    """Drop the indexes an interrupted createIndexes was adding, on a fresh client, within
    CLEANUP_TIMEOUT_S. What is done goes to the notes, what is not to the leftovers."""
    if not names:
        return
    from checks.mongodb.connector import close_client, make_client

    async def drop() -> list[str]:
        client = make_client(run.target, timeoutMS=int(CLEANUP_TIMEOUT_S * 1000), maxPoolSize=1)
        try:
            for name in names:
                try:
                    await client[database].command({"dropIndexes": collection, "index": name})
                except Exception as exc:
                    if getattr(exc, "code", None) not in (26, 27):  # no such collection / index: never built
                        raise
            return [n for n in names if n in await _indexes(client, database, collection)]
        finally:
            await close_client(client)

    listed = ", ".join(names)
    try:
        remaining = await asyncio.wait_for(drop(), CLEANUP_TIMEOUT_S)
    except Exception as exc:  # TimeoutError, or the server cannot be reached
        why = "in time" if isinstance(exc, TimeoutError) else f"({_describe(exc, run)})"
        run.leftovers.append(f"{label} was interrupted and dropping the index it was building did not finish {why}: "
                             f"check {database}.{collection} for {listed} and drop it")
        return
    if remaining:
        run.leftovers.append(f"{label} was interrupted; {', '.join(remaining)} on {database}.{collection} "
                             "is still there after dropIndexes")
    else:
        run.notes.append(f"{label} was interrupted: the build of {listed} on {database}.{collection} "
                         "was stopped and the index dropped")


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


# --- undo guards ---------------------------------------------------------------------------------

_NOT_OPTIONS = {"v", "key", "name", "ns"}


def _plain(value: Any) -> Any:
    """JSON-comparable: what the journal stores equals what the server reports (1.0 is 1)."""
    def number(v: Any) -> Any:
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, dict):
            return {k: number(x) for k, x in v.items()}
        if isinstance(v, list):
            return [number(x) for x in v]
        return v
    return number(json.loads(json.dumps(value, default=str)))


def _shape(spec: dict[str, Any]) -> dict[str, Any]:
    """An index as compared: its key in order, and its options."""
    return {"key": [[k, v] for k, v in _plain(dict(spec.get("key", {}))).items()],
            "options": _plain({k: v for k, v in spec.items() if k not in _NOT_OPTIONS})}


def _touched(step: FixStep, default_db: str | None) -> list[tuple[str | None, str, str]]:
    """(database, collection, index name) each createIndexes or collMod step creates or changes."""
    command = step.command if isinstance(step.command, dict) else {}
    database = step.database or default_db
    if "createIndexes" in command:
        return [(database, command["createIndexes"], spec["name"]) for spec in command.get("indexes", [])
                if isinstance(spec, dict) and spec.get("name")]
    if "collMod" in command and isinstance(command.get("index"), dict) and command["index"].get("name"):
        return [(database, command["collMod"], command["index"]["name"])]
    return []


async def _indexes(client: Any, database: str, collection: str) -> dict[str, dict[str, Any]]:
    try:
        return {ix["name"]: dict(ix) async for ix in await client[database][collection].list_indexes()}
    except Exception as exc:
        if "NamespaceNotFound" in type(exc).__name__ or "ns does not exist" in str(exc) or getattr(exc, "code", None) == 26:
            return {}
        raise


async def record_state(run: Execution, steps: Sequence[FixStep]) -> list[dict[str, Any]]:
    from checks.mongodb.connector import close_client, make_client

    client = make_client(run.target, maxPoolSize=1)
    try:
        default_db = client._default_database_name
        touched = [t for step in steps[: run.steps_done] for t in _touched(step, default_db)]
        recorded = []
        for database, collection, name in touched:
            if not database:
                continue
            spec = (await _indexes(client, database, collection)).get(name)
            if spec is not None:
                recorded.append({"kind": "mongo-index", "database": database, "collection": collection, "name": name,
                                 **_shape(spec)})
        return recorded
    finally:
        await close_client(client)


def inspects(steps: Sequence[FixStep]) -> bool:
    return any(isinstance(s.command, dict) and ({"dropIndexes", "createIndexes", "collMod"} & set(s.command))
               for s in steps)


async def guard_undo(target: Any, entry: Any, inverse: Sequence[FixStep]) -> UndoCheck:
    from checks.mongodb.connector import close_client, make_client

    finished = entry.outcome in ("fixed", "not_fixed")
    partial = not finished and entry.steps_done == 0
    check = UndoCheck(steps=[])
    client = make_client(target, maxPoolSize=1)
    try:
        default_db = client._default_database_name
        forward = [FixStep.from_dict(s) for s in entry.steps]
        recorded = {(e["database"], e["collection"], e["name"]): e for e in entry.expect if e.get("kind") == "mongo-index"}
        for step in inverse:
            if await _guard_step(client, step, default_db, forward, recorded, finished, partial, check):
                check.steps.append(step)
    finally:
        await close_client(client)
    return check


async def _guard_step(client: Any, step: FixStep, default_db: str | None, forward: list[FixStep],
                      recorded: dict[tuple[Any, ...], dict[str, Any]], finished: bool, partial: bool,
                      check: UndoCheck) -> bool:
    command = step.command if isinstance(step.command, dict) else {}
    database = step.database or default_db
    if not database or not ({"dropIndexes", "createIndexes", "collMod"} & set(command)):
        if partial:
            check.notes.append("skipped a step the unfinished fix did not apply")
            return False
        return True
    if "createIndexes" in command:  # the inverse of a drop: the name must still be free
        present = await _indexes(client, database, command["createIndexes"])
        for spec in command.get("indexes", []):
            if isinstance(spec, dict) and spec.get("name") in present:
                where = f"{database}.{command['createIndexes']}"
                check.not_as_left(finished, f"index {spec['name']} on {where} exists again (created after the fix dropped "
                                  "it): dbvitals will not replace it",
                                  f"index {spec['name']} on {where} still exists: the unfinished fix did not drop it")
                return False
        return True
    collection: Any = command.get("dropIndexes") or command.get("collMod")  # one of them: see above
    name = command.get("index") if "dropIndexes" in command else (command.get("index") or {}).get("name")
    if not isinstance(name, str):
        return not partial  # dropIndexes by key pattern: nothing to compare by name
    where = f"{name} on {database}.{collection}"
    current = (await _indexes(client, database, collection)).get(name)
    if current is None:
        check.not_as_left(finished, f"index {where} no longer exists: nothing of this fix is left to undo",
                          f"index {where} does not exist: the unfinished fix did not create it")
        return False
    have = _shape(current)
    record = recorded.get((database, collection, name))
    if record is not None:
        expected = {"key": record["key"], "options": record["options"]}
        if have != expected:
            check.refusals.append(f"index {where} is not what this fix left: it left {_describe_shape(expected)}, "
                                  f"the server now has {_describe_shape(have)}; dbvitals will not touch it")
            return False
        return True
    built = _built_by(forward, database, collection, name, default_db)
    if built is None:
        return not partial
    wanted = _shape(built)
    same_key = not wanted["key"] or have["key"] == wanted["key"]
    if not same_key or any(have["options"].get(k) != v for k, v in wanted["options"].items()):
        if not finished and "collMod" in command and have["key"] and _old_ttl(command) == have["options"].get("expireAfterSeconds"):
            check.notes.append(f"index {where} still has its old TTL: the unfinished fix did not change it")
            return False
        check.refusals.append(f"index {where} is not what this fix builds: the server has {_describe_shape(have)}, "
                              f"the fix made {_describe_shape(wanted)}; dbvitals will not touch it")
        return False
    if not finished:
        check.notes.append(f"found index {where} as the unfinished fix left it")
    return True


def _built_by(forward: list[FixStep], database: str, collection: str, name: str, default_db: str | None) -> dict[str, Any] | None:
    """The index spec (key and options) the fix's steps give this index."""
    for step in forward:
        command = step.command if isinstance(step.command, dict) else {}
        if (step.database or default_db) != database:
            continue
        if command.get("createIndexes") == collection:
            for spec in command.get("indexes", []):
                if isinstance(spec, dict) and spec.get("name") == name:
                    return spec
        if command.get("collMod") == collection and isinstance(command.get("index"), dict) and command["index"].get("name") == name:
            return {k: v for k, v in command["index"].items() if k != "name"}
    return None


def _old_ttl(command: dict[str, Any]) -> Any:
    return (command.get("index") or {}).get("expireAfterSeconds")


def _describe_shape(shape: dict[str, Any]) -> str:
    key = ", ".join(f"{k}: {v}" for k, v in shape["key"])
    options = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(shape["options"].items()))
    return f"{{{key}}}" + (f" ({options})" if options else "")
