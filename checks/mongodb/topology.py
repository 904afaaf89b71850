"""A MongoDB server's place in its topology, from its `hello` reply: pure, so that checks can
judge it without importing the driver."""

from __future__ import annotations

from typing import Any


def topology_role(hello: dict[str, Any]) -> str:
    if hello.get("msg") == "isdbgrid":
        return "mongos"
    if not hello.get("setName"):
        return "standalone"
    if hello.get("isWritablePrimary") or hello.get("ismaster"):
        return f"primary of {hello['setName']}"
    if hello.get("secondary"):
        return f"secondary of {hello['setName']}"
    return f"member of {hello['setName']}"
