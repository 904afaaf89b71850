"""Built-in Redis checks, registered through the `dbvitals.checks` entry point."""

from checks.redis.connection import RedisConnection

CHECKS = [RedisConnection]
