"""CONFIG GET for checks: names and values as text, None where the server will not say."""

from __future__ import annotations

from typing import Any


def _text(value: Any) -> str:
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else str(value)


async def config_values(client: Any, *names: str) -> dict[str, str | None]:
    """Each parameter's value; None for all of them when CONFIG is denied (ACL, managed Redis)
    and for a parameter this server version does not have."""
    try:
        raw = await client.config_get(*names)
    except Exception:
        return dict.fromkeys(names)
    values = {_text(k): _text(v) for k, v in raw.items()}
    return {name: values.get(name) for name in names}
