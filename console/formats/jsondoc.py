"""JSON as dbvitals writes it, shared by the JSON and SARIF formats (below console.formats,
which imports both)."""

from __future__ import annotations

import json
import re
from typing import Any

# Bidi controls and line separators, valid in a JSON string but shown by viewers (a code-scanning
# page, a terminal) as reordered or broken text: written as \u escapes. json.dumps puts them
# inside strings only, so replacing them in its output cannot touch the structure.
_INVISIBLE = re.compile("[\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def json_text(document: Any) -> str:
    """A JSON document as dbvitals writes it: UTF-8 kept readable, invisible controls escaped."""
    text = json.dumps(document, indent=2, default=str, ensure_ascii=False)
    return _INVISIBLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n"
