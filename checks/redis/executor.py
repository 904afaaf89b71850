"""Applying Redis fix steps: one command (a list of arguments), or a batch operation.

Batch operations (the Redis pack's contract):
- {"op": "expire-missing-ttl", "db", "match", "pattern", "regex", "ttl_seconds", "batch"}:
  SCAN MATCH in bounded batches, keep the keys the anchored regex matches in full whose TTL
  is -1, and EXPIRE them NX. Every key given a TTL is recorded in a side file *before* the
  EXPIRE (as pending) and after it (as expired), with the SCAN cursor, so an interrupted run
  can be undone exactly and resumed where it stopped.
- {"op": "persist-keys", "db", "keys": [...] | "keys_file": "<side file>"}: PERSIST those keys,
  the inverse of the above. A key that expired in between is gone and is reported as such.

On a Redis Cluster the expire operation runs on every master in turn (a SCAN sees one node's
keys), recording each node's keys in the same side file; PERSIST goes through a cluster client,
which routes each key to its master. An interrupted cluster run starts over instead of resuming:
both passes are idempotent (TTL -1 filter, EXPIRE NX), so that is only slower.

Undo guards: the keys log is the record of an expire step: PERSIST touches only the keys it
lists, and of those only the ones whose expiry is still the one dbvitals set (the log keeps the
server time around each batch's EXPIREs). For CONFIG SET, `record_state` notes the value the server reports once set, and
`guard_undo` refuses to restore the old value over one someone else has set since.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from checks.actions.pipeline import raise_if_stopping
from checks.fixes.execution import CLEANUP_TIMEOUT_S, Execution, StepFailed, UndoCheck
from checks.model import FixStep
from checks.redis._scan import client_for, cluster_masters
from checks.secrets import mask_text

# checks.redis.connector imports redis-py: the functions that open a client import it, so loading this
# module (the adapter does, to render and inspect steps) loads no driver.

EXPIRE_OP = "expire-missing-ttl"
PERSIST_OP = "persist-keys"
DEFAULT_BATCH = 500
MAX_BATCH = 10_000


def encode_key(key: bytes) -> str | dict[str, str]:
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return {"hex": key.hex()}


def decode_key(value: str | dict[str, str]) -> bytes:
    return bytes.fromhex(value["hex"]) if isinstance(value, dict) else value.encode("utf-8")


def keys_file_name(entry_id: str, step_index: int) -> str:
    return f"{entry_id}-step{step_index + 1}.keys.jsonl"


def persist_inverse(op: dict[str, Any], entry_id: str, step_index: int) -> FixStep:
    """The concrete inverse of one expire step: PERSIST exactly the keys it recorded."""
    return FixStep(
        language="redis",
        command={"op": PERSIST_OP, "db": op.get("db", 0), "keys_file": keys_file_name(entry_id, step_index),
                 "pattern": op.get("pattern") or op.get("match")},
        description=f"remove the TTL this fix gave to keys matching {op.get('pattern') or op.get('match')}",
    )


class KeysLog:
    """The side file of one expire step: JSON lines of pending / expired keys and cursors."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, record: dict[str, Any], *, durable: bool = True) -> None:
        """Key records are synced before the EXPIRE they describe; a lost cursor-only record
        merely makes a resumed scan start a little earlier."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (json.dumps(record) + "\n").encode("utf-8"))
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)

    def records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        records = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash: its batch has no "expired" record either
            if isinstance(record, dict):  # a line of another shape is not ours: read past it
                records.append(record)
        return records

    def touched_keys(self) -> list[bytes]:
        """Keys given a TTL, plus those of a batch that was interrupted between its pending and
        expired records (each had no TTL a moment before, so PERSIST restores what was seen)."""
        return list(self.expiry_windows())

    def expiry_windows(self) -> dict[bytes, tuple[int, int] | None]:
        """Each touched key with the span (server time, ms) its expiry was set to fall in, when
        known: a key whose expiry is elsewhere now had its TTL changed by someone since."""
        # Batches are numbered per node on a cluster.
        expired: dict[tuple[str | None, int], dict[str, Any]] = {}
        pending: dict[tuple[str | None, int], list[Any]] = {}
        for record in self.records():
            batch = (record.get("node"), record.get("batch", 0))
            if "expired" in record:
                expired[batch] = record
            elif "pending" in record:
                pending[batch] = record["pending"]
        keys: dict[bytes, tuple[int, int] | None] = {}
        for batch, values in pending.items():
            done = expired.get(batch)
            window = tuple(done["expires_ms"]) if done and done.get("expires_ms") else None
            for value in done["expired"] if done else values:
                keys[decode_key(value)] = window
        return keys

    def resume_point(self) -> tuple[int, str | None] | None:
        """Where an interrupted scan stopped, and on which server process (run_id): a SCAN
        cursor means nothing to a restarted server, whose hash seed differs. None if the scan
        finished or never began."""
        cursor, run_id = 0, None
        for record in self.records():
            # Finished, taken back after a stop signal, or a cluster run (no single cursor).
            if record.get("done") or record.get("taken_back") or record.get("node"):
                return None
            run_id = record.get("run_id", run_id)
            cursor = record.get("cursor", cursor)
        return (cursor, run_id) if cursor else None


async def execute(run: Execution, steps: Sequence[FixStep]) -> None:
    from checks.redis.connector import close_client, make_client

    client = make_client(run.target, socket_timeout=max(run.target.timeout, 30.0))
    try:
        for index, step in enumerate(steps):
            raise_if_stopping()
            command = step.command
            try:
                if isinstance(command, dict):
                    await _run_op(run, index, len(steps), command)
                elif isinstance(command, (list, tuple)) and command:
                    db_client = _for_db(run, int(step.database)) if step.database not in (None, "") else client
                    await run.progress(f"step {index + 1} of {len(steps)}: {' '.join(map(str, command))}")
                    try:
                        await db_client.execute_command(*command)
                    finally:
                        if db_client is not client:
                            await close_client(db_client)
                else:
                    raise StepFailed(f"step {index + 1}: a Redis step is a list of arguments or an op document")
            except StepFailed:
                raise
            except Exception as exc:
                raise StepFailed(f"step {index + 1} failed: {_describe(exc, run)}") from exc
            run.steps_done += 1
    finally:
        await close_client(client)


def _for_db(run: Execution, db: int) -> Any:
    """A client of its own on logical database `db` (a SELECT on a pooled connection would leak)."""
    from checks.redis.connector import make_client

    parts = urlsplit(run.target.url)
    if parts.scheme == "unix":
        query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "db"] + [("db", str(db))])
        url = urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
    else:
        url = urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, ""))
    return make_client(run.target.model_copy(update={"url": url}), socket_timeout=max(run.target.timeout, 30.0))


async def _run_op(run: Execution, index: int, total: int, op: dict[str, Any]) -> None:
    kind = op.get("op")
    if kind not in (EXPIRE_OP, PERSIST_OP):
        raise StepFailed(f"step {index + 1}: unknown Redis operation {kind!r}")
    try:
        await _run_op_once(run, index, total, op)
    except asyncio.CancelledError:
        if kind == EXPIRE_OP:
            await _take_back_expire(run, index, total, op)
        raise


async def _take_back_expire(run: Execution, index: int, total: int, op: dict[str, Any]) -> None:
    """A stop signal interrupted an expire step: PERSIST the keys it gave a TTL (its keys log,
    under the same guard as an undo), within CLEANUP_TIMEOUT_S. The log is then marked taken
    back, so a later run of the fix starts over instead of resuming past keys no longer done."""
    label = f"step {index + 1}"
    log = KeysLog(run.side_dir / keys_file_name(run.entry_id, index))
    undo = persist_inverse(op, run.entry_id, index).command
    try:
        if log.path.exists():
            await asyncio.wait_for(_run_op_once(run, index, total, undo), CLEANUP_TIMEOUT_S)
    except Exception as exc:  # TimeoutError, or the server cannot be reached
        why = "in time" if isinstance(exc, TimeoutError) else f"({_describe(exc, run)})"
        run.leftovers.append(f"{label} was interrupted and taking back the TTLs it gave did not finish {why}: "
                             f"`dbvitals undo {run.entry_id}` removes them")
        return
    log.write({"taken_back": True})
    run.notes.append(f"{label} was interrupted: the TTLs it had given were taken back")


async def _run_op_once(run: Execution, index: int, total: int, op: dict[str, Any]) -> None:
    from checks.redis.connector import close_client

    db_client = _for_db(run, int(op.get("db", 0)))
    try:
        if (await db_client.info("server")).get("redis_mode") == "cluster":
            await _run_op_on_cluster(db_client, run, index, total, op)
        elif op.get("op") == EXPIRE_OP:
            await _expire_missing_ttl(db_client, run, index, total, op)
        else:
            await _persist_keys(db_client, run, index, total, op)
    finally:
        await close_client(db_client)


async def _run_op_on_cluster(client: Any, run: Execution, index: int, total: int, op: dict[str, Any]) -> None:
    from redis.asyncio.cluster import RedisCluster

    if op.get("op") == PERSIST_OP:
        kwargs = client.connection_pool.connection_kwargs
        cluster = RedisCluster(host=kwargs.get("host", "127.0.0.1"), port=int(kwargs.get("port", 6379)),
                               username=kwargs.get("username"), password=kwargs.get("password"),
                               socket_timeout=kwargs.get("socket_timeout"),
                               socket_connect_timeout=kwargs.get("socket_connect_timeout"))
        try:
            await _persist_keys(cluster, run, index, total, op)
        finally:
            await cluster.aclose()
        return
    for host, port in await cluster_masters(client):
        node = client_for(client, host=host, port=port, db=0)
        try:
            await _expire_missing_ttl(node, run, index, total, op, node=f"{host}:{port}")
        finally:
            await node.aclose()


async def _expire_missing_ttl(
    client: Any, run: Execution, index: int, total: int, op: dict[str, Any], *, node: str | None = None
) -> None:
    try:
        regex = re.compile(op["regex"])
        ttl = int(op["ttl_seconds"])
        match = op.get("match") or "*"
    except (KeyError, TypeError, ValueError, re.error) as exc:
        raise StepFailed(f"step {index + 1}: malformed {EXPIRE_OP} operation ({exc})") from exc
    if ttl <= 0:
        raise StepFailed(f"step {index + 1}: ttl_seconds must be positive, got {ttl}")
    batch_size = max(1, min(int(op.get("batch") or DEFAULT_BATCH), MAX_BATCH))
    log = KeysLog(run.side_dir / keys_file_name(run.entry_id, index))
    run_id = (await client.info("server")).get("run_id")
    label = f"step {index + 1} of {total}" + (f" on {node}" if node else "")
    cursor, start = 0, ""
    resume = None if node else run.resume_cursors.get(index)
    if resume and resume[1] == run_id:
        cursor, start = resume[0], f" (resuming at SCAN cursor {resume[0]} where an interrupted run stopped)"
    elif resume:
        start = " (the server restarted since the interrupted run, so its SCAN cursor is void: scanning from the start)"
    await run.progress(f"{label}: EXPIRE {ttl} NX on keys matching {op.get('pattern') or match}{start}")
    log.write({"started": True, "cursor": cursor, "run_id": run_id, "match": match, "regex": op["regex"],
               "ttl_seconds": ttl, **({"node": node} if node else {})})
    scanned = given = batch = 0
    while True:
        cursor, keys = await client.scan(cursor, match=match, count=batch_size)
        candidates = [k for k in keys if regex.fullmatch(k.decode("utf-8", "surrogateescape"))]
        scanned += len(keys)
        cursor_recorded = False
        if candidates:
            pipe = client.pipeline(transaction=False)
            for key in candidates:
                pipe.ttl(key)
            missing = [k for k, t in zip(candidates, await pipe.execute()) if t == -1]
            if missing:
                batch += 1
                tag = {"node": node} if node else {}
                log.write({"batch": batch, **tag, "pending": [encode_key(k) for k in missing]})
                pipe = client.pipeline(transaction=False)
                pipe.time()  # the server's clock around the EXPIREs: when their keys will expire
                for key in missing:
                    pipe.expire(key, ttl, nx=True)
                pipe.time()
                # NX: a key that got a TTL (or vanished) since the TTL read is left alone.
                first, *done_flags, last = await pipe.execute()
                expired = [k for k, done in zip(missing, done_flags) if done]
                window = [_ms(first) + ttl * 1000, _ms(last) + ttl * 1000]
                log.write({"batch": batch, **tag, "expired": [encode_key(k) for k in expired], "cursor": cursor,
                           "expires_ms": window})
                given += len(expired)
                cursor_recorded = True
        if not cursor_recorded:
            log.write({"cursor": cursor}, durable=False)
        await run.progress(f"{label}: {scanned} keys scanned, {given} given a TTL")
        raise_if_stopping()
        if cursor == 0:
            break
    log.write({"done": True, "cursor": 0, "given": given, "scanned": scanned, **({"node": node} if node else {})})
    where = f" on {node}" if node else ""
    run.notes.append(f"gave a TTL of {ttl}s to {given} keys matching {op.get('pattern') or match}{where} ({scanned} scanned)")


# A key's expiry may sit this far outside the span recorded when dbvitals set it and still be
# dbvitals's: TIME and PTTL are read a round trip apart.
EXPIRY_SLACK_MS = 2000


def _ms(server_time: Any) -> int:
    seconds, micros = server_time
    return int(seconds) * 1000 + int(micros) // 1000


async def _persist_keys(client: Any, run: Execution, index: int, total: int, op: dict[str, Any]) -> None:
    """PERSIST the recorded keys whose expiry is still the one dbvitals set; a key whose TTL
    someone changed since keeps it (its TTL is theirs now, not dbvitals's to remove)."""
    windows = _windows_of(op, run)
    keys = list(windows)
    label = f"step {index + 1} of {total}"
    await run.progress(f"{label}: PERSIST {len(keys)} keys")
    restored = gone = kept = changed = 0
    for chunk in _chunks(keys, DEFAULT_BATCH):
        now = _ms(await client.time())
        pipe = client.pipeline(transaction=False)
        for key in chunk:
            pipe.pttl(key)
        ours = []
        for key, left in zip(chunk, await pipe.execute()):
            window = windows[key]
            if left == -2:
                gone += 1
            elif left == -1:
                kept += 1  # already without a TTL
            elif window is not None and not window[0] - EXPIRY_SLACK_MS <= now + left <= window[1] + EXPIRY_SLACK_MS:
                changed += 1
            else:
                ours.append(key)
        if ours:
            pipe = client.pipeline(transaction=False)
            for key in ours:
                pipe.persist(key)
            for persisted in await pipe.execute():  # one reply per key of ours
                if persisted:
                    restored += 1
                else:
                    gone += 1  # expired between the PTTL and the PERSIST
        await run.progress(f"{label}: {restored} of {len(keys)} keys made persistent again")
    note = f"removed the TTL of {restored} of {len(keys)} keys"
    if kept:
        note += f"; {kept} already had none"
    if changed:
        note += (f"; {changed} have a TTL someone set after dbvitals (their expiry is not the one dbvitals "
                 "set), left as they are")
    if gone:
        note += f"; {gone} no longer exist (expired or deleted since) and cannot be restored by dbvitals"
        run.leftovers.append(f"{gone} keys expired or were deleted before the undo: they are gone")
    run.notes.append(note)


def _windows_of(op: dict[str, Any], run: Execution) -> dict[bytes, tuple[int, int] | None]:
    if "keys" in op:
        return {decode_key(k): None for k in op["keys"]}
    if "keys_file" in op:
        path = run.side_dir / op["keys_file"]
        if not path.exists():
            raise StepFailed(f"the recorded keys ({path}) are missing: cannot tell which keys to PERSIST")
        return KeysLog(path).expiry_windows()
    raise StepFailed(f"{PERSIST_OP} needs keys or keys_file")


def _chunks(items: Sequence[bytes], size: int) -> Iterable[Sequence[bytes]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _describe(exc: BaseException, run: Execution) -> str:
    text = str(exc).strip() or type(exc).__name__
    return mask_text(f"{type(exc).__name__}: {text}", run.target.secret_values())[:500]


# --- undo guards ---------------------------------------------------------------------------------

def _config_set(step: FixStep) -> tuple[str, str] | None:
    command = step.command
    if (isinstance(command, (list, tuple)) and len(command) == 4
            and str(command[0]).upper() == "CONFIG" and str(command[1]).upper() == "SET"):
        return str(command[2]).lower(), _text(command[3])
    return None


def _text(value: Any) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)


def _secret_setting(name: str) -> bool:
    return "pass" in name or "auth" in name


def _digest(value: str) -> str:
    import hashlib

    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()


def _shown(name: str, value: str) -> str:
    return "(a secret)" if _secret_setting(name) else repr(value)


async def _config_value(client: Any, name: str) -> str | None:
    reply = await client.config_get(name)
    for key, value in reply.items():
        if _text(key).lower() == name:
            return _text(value)
    return None


async def record_state(run: Execution, steps: Sequence[FixStep]) -> list[dict[str, Any]]:
    """The value each applied CONFIG SET left, as the server reports it (it may normalise it:
    1gb becomes 1073741824). Secret settings are kept as a digest only."""
    settings = [c for step in steps[: run.steps_done] if (c := _config_set(step))]
    if not settings:
        return []
    from checks.redis.connector import close_client, make_client

    client = make_client(run.target)
    try:
        recorded = []
        for name, _ in settings:
            value = await _config_value(client, name)
            if value is not None:
                recorded.append({"kind": "redis-config", "parameter": name, "digest": _digest(value),
                                 **({} if _secret_setting(name) else {"value": value})})
        return recorded
    finally:
        await close_client(client)


def inspects(steps: Sequence[FixStep]) -> bool:
    return any(_config_set(s) for s in steps)


async def guard_undo(target: Any, entry: Any, inverse: Sequence[FixStep]) -> UndoCheck:
    """Restore a setting only while it still has the value dbvitals set."""
    finished = entry.outcome in ("fixed", "not_fixed")
    partial = not finished and entry.steps_done == 0
    check = UndoCheck(steps=[])
    forward = {c[0]: c[1] for s in entry.steps if (c := _config_set(FixStep.from_dict(s)))}
    recorded = {e["parameter"]: e for e in entry.expect if e.get("kind") == "redis-config"}
    client = None
    from checks.redis.connector import close_client, make_client

    try:
        for step in inverse:
            setting = _config_set(step)
            if setting is None:
                # The keys log is an expire step's record; other commands were applied only if a step was.
                if partial and not (isinstance(step.command, dict) and step.command.get("op") == PERSIST_OP):
                    check.notes.append(f"skipped {' '.join(map(_text, step.command))}: the unfinished fix applied no step")
                else:
                    check.steps.append(step)
                continue
            name, old = setting
            if name not in forward and name not in recorded:
                check.steps.append(step)  # not a setting this fix changed: nothing to compare with
                continue
            client = client or make_client(target)
            current = await _config_value(client, name)
            expected = recorded[name]["digest"] if name in recorded else _digest(forward[name])
            shown_expected = _shown(name, recorded[name].get("value", "") if name in recorded else forward[name])
            if current is not None and _digest(current) == expected:
                check.steps.append(step)
                if not finished:
                    check.notes.append(f"{name} has the value the unfinished fix set ({shown_expected})")
            elif not finished and current is not None and current == old:
                check.notes.append(f"{name} still has its old value: the unfinished fix did not change it")
            else:
                check.refusals.append(
                    f"{name} is now {_shown(name, current or '')}, not the {shown_expected} dbvitals set: it was "
                    f"changed since, and dbvitals will not overwrite it with the old {_shown(name, old)}")
    finally:
        if client is not None:
            await close_client(client)
    return check
