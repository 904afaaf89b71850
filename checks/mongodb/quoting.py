"""mongosh JavaScript for MongoDB fix steps: values are JSON with every non-ASCII character
escaped, so no raw line break or U+2028 in a name can end a line."""

from __future__ import annotations

import json
from typing import Any


def js_value(value: Any) -> str:
    """A JavaScript expression for a JSON-like value: ASCII only, so no raw line break or
    U+2028 can end a line, and quotes are escaped by JSON's rules."""
    return json.dumps(value, default=str, ensure_ascii=True)


def js_database(database: Any) -> str:
    return js_value(database) if database else "db.getName()"
