"""The MongoDB target: `kind = "mongodb"` and a MongoDB connection string."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, StrictBool, field_validator, model_validator

from checks.config import TargetBase, check_choice, check_numbers, url_query, valid_url

URL_SCHEMES = ("mongodb://", "mongodb+srv://")


class MongoTarget(TargetBase):
    kind: Literal["mongodb"]
    uses_transactions: StrictBool = Field(default=False, description="The application runs multi-document transactions.")

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        valid_url(value, URL_SCHEMES, 'expected a URL starting with "mongodb://" or "mongodb+srv://"')
        params = url_query(value)
        check_choice(params, "readPreference",
                      ("primary", "primaryPreferred", "secondary", "secondaryPreferred", "nearest"))
        check_choice(params, "tls", ("true", "false"))
        check_choice(params, "ssl", ("true", "false"))
        check_numbers(params, ("maxPoolSize", "minPoolSize", "maxConnecting", "maxIdleTimeMS", "connectTimeoutMS",
                                "socketTimeoutMS", "serverSelectionTimeoutMS", "waitQueueTimeoutMS",
                                "heartbeatFrequencyMS", "localThresholdMS"), integer=True)
        return value

    @model_validator(mode="after")
    def _collection_queries(self) -> MongoTarget:
        if any(q.collection is None for q in self.expect.queries):
            raise ValueError("expect.queries on a MongoDB target name a collection and a filter")
        return self
