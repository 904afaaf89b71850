"""Fix steps as text a human reviews: SQL for PostgreSQL, mongosh JavaScript for MongoDB,
redis-cli commands for Redis. Used to preview a fix and to write a migration script for
teams that ship changes through their own migration tools."""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from typing import Any

from checks.fixes.execution import DEFAULT_LOCK_TIMEOUT_S, DEFAULT_STATEMENT_TIMEOUT_S
from checks.fixes.redis import EXPIRE_OP, PERSIST_OP
from checks.model import Finding, FixSafety, FixStep

COMMENT = {"postgres": "--", "mongodb": "//", "redis": "#"}


def step_text(step: FixStep) -> str:
    """One step as it would be typed into psql, mongosh or redis-cli."""
    if step.language == "sql":
        text = str(step.command).strip()
        return text if text.endswith(";") else text + ";"
    if step.language == "mongodb":
        database = json.dumps(step.database) if step.database else "db.getName()"
        command = json.dumps(step.command, default=str)
        return f"db.getSiblingDB({database}).runCommand({command});"
    if isinstance(step.command, dict):
        return _redis_op_text(step.command)
    prefix = f"SELECT {step.database}\n" if step.database not in (None, "") else ""
    return prefix + " ".join(redis_quote(str(arg)) for arg in step.command)


def redis_quote(arg: str) -> str:
    """redis-cli's quoting: double quotes with backslash escapes when the argument needs it."""
    if arg and all(c.isprintable() and c not in ' "\'\\' for c in arg):
        return arg
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f'"{escaped}"'


def _redis_op_text(op: dict[str, Any]) -> str:
    kind = op.get("op")
    db = op.get("db", 0)
    if kind == EXPIRE_OP:
        match, regex, ttl = op.get("match", "*"), op.get("regex", ".*"), op.get("ttl_seconds")
        return (
            f"# {EXPIRE_OP}: every key in db {db} matching {op.get('pattern') or match} (regex ^{regex}$) "
            f"that has no TTL gets EXPIRE {ttl} NX\n"
            f"redis-cli -n {db} --scan --pattern {shlex.quote(match)} | grep -E {shlex.quote('^(' + regex + ')$')} \\\n"
            f"  | while IFS= read -r key; do redis-cli -n {db} EXPIRE \"$key\" {ttl} NX >/dev/null; done"
        )
    if kind == PERSIST_OP:
        keys = op.get("keys")
        if keys is not None:
            return f"SELECT {db}\n" + "\n".join(f"PERSIST {redis_quote(k if isinstance(k, str) else k['hex'])}" for k in keys)
        return f"# {PERSIST_OP}: PERSIST the keys recorded in {op.get('keys_file', 'the journal')} (db {db})"
    return f"# unknown Redis operation: {json.dumps(op)}"


def migration_script(
    engine: str, target: str, url: str, check: str, findings: Sequence[Finding], *, generated_at: str, version: str
) -> str:
    """A reviewable script of every fix the check proposes on the target, inverse included as comments."""
    c = COMMENT[engine]
    with_fix = [f for f in findings if f.fix is not None]
    lines = [
        f"{c} dbvitals {version}: fixes proposed by {check} on target {target} ({url})",
        f"{c} generated {generated_at}; {len(with_fix)} finding(s) with a fix. Review before running.",
    ]
    lines += _preamble(engine)
    if not with_fix:
        lines += [f"{c} nothing to do: {check} proposes no fix on {target} right now."]
    for finding in with_fix:
        fix = finding.fix
        assert fix is not None
        lines += [
            "",
            f"{c} --- finding {finding.id} [{finding.severity.value}] {finding.object}: {finding.title}",
            f"{c} fix: {fix.summary}",
            f"{c} safety: {fix.safety.value}" + (f"; lock/impact: {fix.lock}" if fix.lock else ""),
        ]
        if fix.notes:
            lines.append(f"{c} notes: {fix.notes}")
        manual = fix.safety is FixSafety.MANUAL
        if manual:
            lines.append(f"{c} MANUAL: adapt this to your schema and run it yourself; left commented out.")
        body = _steps_text(engine, fix.steps)
        lines += [f"{c} {line}" for line in body] if manual else body
        if fix.inverse:
            lines.append(f"{c} to undo:")
            lines += [f"{c}   {line}" for line in _steps_text(engine, fix.inverse)]
    return "\n".join(lines) + "\n"


def _preamble(engine: str) -> list[str]:
    lock_ms = int(DEFAULT_LOCK_TIMEOUT_S * 1000)
    statement_ms = int(DEFAULT_STATEMENT_TIMEOUT_S * 1000)
    if engine == "postgres":
        return [
            "-- Run with psql in autocommit mode (psql -v ON_ERROR_STOP=1 -f FILE): CREATE/DROP INDEX",
            "-- CONCURRENTLY cannot run inside a transaction block; other steps are grouped in BEGIN/COMMIT.",
            "-- A failed CONCURRENTLY build leaves an INVALID index: drop it with DROP INDEX CONCURRENTLY IF EXISTS.",
            f"SET lock_timeout = {lock_ms};",
            f"SET statement_timeout = {statement_ms};",
        ]
    if engine == "mongodb":
        return [
            "// Run with mongosh against the target: mongosh \"$MONGODB_URI\" FILE",
            "// Each command carries maxTimeMS; a failed command stops the script.",
            "function run(database, command) {",
            "  const result = db.getSiblingDB(database).runCommand(command);",
            "  printjson(result);",
            "  if (!result.ok) { throw new Error(`${Object.keys(command)[0]} failed: ${result.errmsg}`); }",
            "}",
        ]
    return [
        "# redis-cli commands: pipe the command lines to redis-cli -h HOST -p PORT (lines starting with #",
        "# are comments; the scan loops are shell, run them in a shell).",
    ]


def _steps_text(engine: str, steps: Sequence[FixStep]) -> list[str]:
    lines: list[str] = []
    if engine == "postgres":
        in_transaction = False
        for step in steps:
            if step.transactional and not in_transaction:
                lines.append("BEGIN;")
                in_transaction = True
            elif not step.transactional and in_transaction:
                lines.append("COMMIT;")
                in_transaction = False
            lines += step_text(step).splitlines()
        if in_transaction:
            lines.append("COMMIT;")
        return lines
    if engine == "mongodb":
        statement_ms = int(DEFAULT_STATEMENT_TIMEOUT_S * 1000)
        for step in steps:
            command = dict(step.command) if isinstance(step.command, dict) else step.command
            if isinstance(command, dict):
                command.setdefault("maxTimeMS", statement_ms)
            database = json.dumps(step.database) if step.database else "db.getName()"
            lines.append(f"run({database}, {json.dumps(command, default=str)});")
        return lines
    for step in steps:
        lines += step_text(step).splitlines()
    return lines
