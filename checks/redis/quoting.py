"""redis-cli and shell quoting for Redis fix steps and scripts: keys are data, never code.

redis-cli arguments use its "\\xHH" escapes; shell arguments are single-quoted or $'...'
with \\xHH escapes.
"""

from __future__ import annotations

import json
import shlex
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from checks.display import terminal_safe
from checks.fixes.quoting import comment
from checks.model import FixStep
from checks.redis.executor import EXPIRE_OP, PERSIST_OP, decode_key

# In a Redis script, `rcli` is the shell function the script defines to reach the target.
SCRIPT_CLI = "rcli"


def _printable(char: str) -> bool:
    return terminal_safe(char) == char


def _as_bytes(arg: Any) -> bytes:
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, dict):
        return decode_key(arg)
    return str(arg).encode("utf-8", "surrogateescape")


def redis_quote(arg: Any) -> str:
    """redis-cli's quoting: double quotes with backslash and \\xHH escapes when needed."""
    raw = _as_bytes(arg)
    text = raw.decode("utf-8", "replace")
    if raw and text.encode("utf-8") == raw and all(c.isprintable() and c not in ' "\'\\' for c in text):
        return text
    named = {0x5C: "\\\\", 0x22: '\\"', 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}
    escaped = "".join(named.get(b) or (chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02x}") for b in raw)
    return f'"{escaped}"'


def shell_quote(arg: Any) -> str:
    """One shell word for the argument: plain or '...' when printable, else $'...' with \\xHH
    escapes (bytes exactly; a NUL cannot be an argument and is refused)."""
    raw = _as_bytes(arg)
    if b"\x00" in raw:
        raise ValueError("a NUL byte cannot be passed as a command-line argument")
    text = raw.decode("utf-8", "replace")
    if text.encode("utf-8") == raw and all(_printable(c) for c in text):
        return shlex.quote(text)
    parts = []
    for b in raw:
        if b in (0x5C, 0x27):
            parts.append("\\" + chr(b))
        elif 0x20 <= b < 0x7F:
            parts.append(chr(b))
        else:
            parts.append(f"\\x{b:02x}")
    return "$'" + "".join(parts) + "'"


def redis_cli_args(url: str) -> list[str]:
    """redis-cli's options for the target (host, port, TLS, user, database), never its
    password: the script reads that from REDISCLI_AUTH."""
    parts = urlsplit(url)
    params = {k.lower(): v for k, v in parse_qsl(parts.query)}
    if parts.scheme == "unix":
        args = ["-s", unquote(parts.path)]
    else:
        args = ["-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 6379)]
    if parts.scheme == "rediss":
        args.append("--tls")
        if params.get("ssl_cert_reqs") == "none":
            args.append("--insecure")
        for key, option in (("ssl_ca_certs", "--cacert"), ("ssl_certfile", "--cert"), ("ssl_keyfile", "--key")):
            if params.get(key):
                args += [option, params[key]]
    if parts.username and (parts.password is not None or parts.scheme == "unix"):
        args += ["--user", unquote(parts.username)]
    return args


def redis_db(url: str) -> int:
    parts = urlsplit(url)
    params = {k.lower(): v for k, v in parse_qsl(parts.query)}
    path = parts.path.strip("/") if parts.scheme != "unix" else ""
    value = params.get("db") or path or "0"
    return int(value) if value.isdigit() else 0


# Reads `redis-cli --scan` output (one key a line) and keeps the keys that match the pattern's
# regex in full, as dbvitals's own executor decides: Python's re on the UTF-8 text of the key.
_FILTER = (
    "import re, sys\n"
    "pattern = re.compile(sys.argv[1])\n"
    "for line in sys.stdin.buffer:\n"
    "    key = line[:-1] if line.endswith(b'\\n') else line\n"
    "    if b'\\0' in key or b'\\r' in key:\n"
    "        sys.stderr.write('skipped a key with a NUL or CR byte: give it a TTL with dbvitals fix\\n')\n"
    "    elif pattern.fullmatch(key.decode('utf-8', 'backslashreplace')):\n"
    "        sys.stdout.buffer.write(key + b'\\n')\n"
)


def redis_op_text(op: dict[str, Any], cli: str = "redis-cli") -> str:
    kind = op.get("op")
    db = int(op.get("db", 0) or 0)
    if kind == EXPIRE_OP:
        match, regex, ttl = op.get("match", "*"), op.get("regex", ".*"), int(op.get("ttl_seconds") or 0)
        return (
            f"# {EXPIRE_OP}: every key in db {db} matching {comment(op.get('pattern') or match)} "
            f"that has no TTL gets EXPIRE {ttl} NX\n"
            # A NUL cannot be an argument: `?` matches it in the glob, the regex then decides exactly.
            f"{cli} -n {db} --scan --pattern {shell_quote(str(match).replace(chr(0), '?'))} \\\n"
            f"  | python3 -c {shlex.quote(_FILTER)} {shell_quote(_regex_printable(regex))} \\\n"
            f"  | while IFS= read -r key; do {cli} -n {db} EXPIRE \"$key\" {ttl} NX >/dev/null; done"
        )
    if kind == PERSIST_OP:
        keys = op.get("keys")
        if keys is not None:
            return "\n".join(_persist_line(cli, db, key) for key in keys)
        return f"# {PERSIST_OP}: PERSIST the keys recorded in {comment(op.get('keys_file', 'the journal'))} (db {db})"
    return f"# unknown Redis operation: {comment(json.dumps(op))}"


def _regex_printable(regex: str) -> str:
    """The same Python regex with each control character written as an escape (\\xHH,
    \\uHHHH), so that it can be a shell argument (no NUL) and shows nothing raw."""
    out: list[str] = []
    i = 0
    while i < len(regex):
        char = regex[i]
        if char == "\\" and i + 1 < len(regex):
            following = regex[i + 1]
            out.append(_regex_escape(following) if not _printable(following) else char + following)
            i += 2
            continue
        out.append(char if _printable(char) else _regex_escape(char))
        i += 1
    return "".join(out)


def _regex_escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _persist_line(cli: str, db: int, key: Any) -> str:
    raw = _as_bytes(key)
    if b"\x00" in raw:
        # The key is the last argument: -x reads it from standard input, NUL bytes included.
        octal = "".join(f"\\{b:03o}" for b in raw)
        return f"printf '{octal}' | {cli} -n {db} -x PERSIST"
    return f"{cli} -n {db} PERSIST {shell_quote(raw)}"


def redis_command_line(step: FixStep) -> str:
    db = int(step.database) if step.database not in (None, "") else None
    where = f" -n {db}" if db is not None else ""
    args = [_as_bytes(a) for a in step.command]
    if any(b"\x00" in a for a in args[:-1]):
        return (f"echo {shlex.quote('a step has a NUL byte in an argument redis-cli cannot take: apply it with dbvitals fix')}"
                " >&2; exit 1")
    if args and b"\x00" in args[-1]:
        octal = "".join(f"\\{b:03o}" for b in args[-1])
        head = " ".join(shell_quote(a) for a in args[:-1])
        return f"printf '{octal}' | {SCRIPT_CLI}{where} -x {head}"
    return f"{SCRIPT_CLI}{where} " + " ".join(shell_quote(a) for a in args)
