"""The PostgreSQL target: `kind = "postgres"` and a libpq URL."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator, model_validator

from checks.config import TargetBase, check_choice, check_numbers, url_query, valid_url

URL_SCHEMES = ("postgres://", "postgresql://")


class PostgresTarget(TargetBase):
    kind: Literal["postgres"]

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        valid_url(value, URL_SCHEMES, 'expected a URL starting with "postgresql://"')
        params = url_query(value)
        check_choice(params, "sslmode", ("disable", "allow", "prefer", "require", "verify-ca", "verify-full"))
        check_numbers(params, ("connect_timeout",), integer=True)
        return value

    @model_validator(mode="after")
    def _sql_queries(self) -> PostgresTarget:
        if any(q.sql is None for q in self.expect.queries):
            raise ValueError("expect.queries on a PostgreSQL target are given as sql = \"...\"")
        return self
