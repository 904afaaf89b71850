"""Built-in Redis checks, registered through the `dbvitals.checks` entry point."""

from checks.redis.connection import RedisConnection
from checks.redis.pool import RedisPool
from checks.redis.ttl_coverage import TtlCoverage
from checks.redis.big_keys import BigKeys
from checks.redis.memory_policy import MemoryPolicy
from checks.redis.persistence import Persistence
from checks.redis.security import Security

CHECKS = [RedisConnection, RedisPool, TtlCoverage, BigKeys, MemoryPolicy, Persistence, Security]
