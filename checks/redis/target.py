"""The Redis target: `kind = "redis"` and a redis-py URL."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from checks.config import TargetBase, check_choice, check_numbers, url_query, valid_url

URL_SCHEMES = ("redis://", "rediss://", "unix://")
# Redis keeps the database number in a C int: `databases` can be set no higher than this.
MAX_DB = 2**31 - 1


class RedisTarget(TargetBase):
    kind: Literal["redis"]
    role: Literal["cache", "store"] | None = Field(default=None, description="What this Redis is for.")

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        valid_url(value, URL_SCHEMES,
                   'expected a URL starting with "redis://", "rediss://" or "unix://"', multi_host=False)
        params = url_query(value)
        path = urlsplit(value).path.strip("/") if value.startswith("redis") else ""
        if path and not (path.isascii() and path.isdigit()):
            raise ValueError(f"the database in the URL path must be a number, got {path!r}")
        if path and int(path) > MAX_DB:
            raise ValueError(f"the database in the URL path must be from 0 to {MAX_DB}, got {path}")
        check_numbers(params, ("db",), integer=True, maximum=MAX_DB)
        check_numbers(params, ("socket_timeout", "socket_connect_timeout", "health_check_interval"))
        check_numbers(params, ("max_connections",), integer=True)
        check_choice(params, "ssl_cert_reqs", ("none", "optional", "required"))
        return value
