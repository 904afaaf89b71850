"""A minimal TOML writer for the demo's generated config (tables, arrays of tables, scalars)."""

from __future__ import annotations

import json
from typing import Any


def dumps(data: dict[str, Any]) -> str:
    lines: list[str] = []
    _table(lines, [], data)
    return "\n".join(lines).strip() + "\n"


def _key(part: str) -> str:
    return part if part.replace("_", "").replace("-", "").isalnum() else json.dumps(part)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_scalar(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _table(lines: list[str], path: list[str], data: dict[str, Any]) -> None:
    scalars = {k: v for k, v in data.items() if not _is_table(v) and not _is_table_array(v)}
    if path and scalars:
        lines.append(f"[{'.'.join(_key(p) for p in path)}]")
    for key, value in scalars.items():
        lines.append(f"{_key(key)} = {_scalar(value)}")
    if scalars:
        lines.append("")
    for key, value in data.items():
        if _is_table(value):
            _table(lines, [*path, key], value)
        elif _is_table_array(value):
            for item in value:
                lines.append(f"[[{'.'.join(_key(p) for p in [*path, key])}]]")
                for k, v in item.items():
                    lines.append(f"{_key(k)} = {_scalar(v)}")
                lines.append("")


def _is_table(value: Any) -> bool:
    return isinstance(value, dict)


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)
