"""Built-in Redis checks, registered through the `dbvitals.checks` entry point."""

from checks.redis.connection import RedisConnection
from checks.redis.pool import RedisPool

CHECKS = [RedisConnection, RedisPool]
