"""Built-in Redis checks, registered through the `dbvitals.checks` entry point."""

from checks.redis.connection import RedisConnection
from checks.redis.pool import RedisPool
from checks.redis.ttl_coverage import TtlCoverage
from checks.redis.big_keys import BigKeys

CHECKS = [RedisConnection, RedisPool, TtlCoverage, BigKeys]
