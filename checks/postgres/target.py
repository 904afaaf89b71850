"""The PostgreSQL target: `kind = "postgres"` and a libpq URL."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from checks.config import TargetBase, check_choice, check_numbers, url_query, valid_url
from checks.secrets import remember_secrets, url_secrets

URL_SCHEMES = ("postgres://", "postgresql://")


class PostgresTarget(TargetBase):
    kind: Literal["postgres"]
    migration_scratch: str | None = Field(
        default=None,
        description="A database `dbvitals migration` may empty and reuse to apply the migration to a copy of "
        "this target's schema (no data) and judge the schema after it; the same as --scratch URL.",
    )

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        valid_url(value, URL_SCHEMES, 'expected a URL starting with "postgresql://"')
        params = url_query(value)
        check_choice(params, "sslmode", ("disable", "allow", "prefer", "require", "verify-ca", "verify-full"))
        check_numbers(params, ("connect_timeout",), integer=True)
        return value

    @field_validator("migration_scratch")
    @classmethod
    def _scratch_scheme(cls, value: str | None) -> str | None:
        if value is not None:
            valid_url(value, URL_SCHEMES, 'expected a URL starting with "postgresql://"')
            remember_secrets(url_secrets(value))
        return value

    @model_validator(mode="after")
    def _sql_queries(self) -> PostgresTarget:
        if any(q.sql is None for q in self.expect.queries):
            raise ValueError("expect.queries on a PostgreSQL target are given as sql = \"...\"")
        return self
