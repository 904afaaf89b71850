"""Built-in Redis checks, registered through the `dbvitals.checks` entry point."""

from checks.redis.connection import RedisConnection
from checks.redis.pool import RedisPool
from checks.redis.ttl_coverage import TtlCoverage
from checks.redis.big_keys import BigKeys
from checks.redis.memory_by_pattern import MemoryByPattern
from checks.redis.memory_policy import MemoryPolicy
from checks.redis.fragmentation import Fragmentation
from checks.redis.persistence import Persistence
from checks.redis.security import Security
from checks.redis.slowlog import Slowlog
from checks.redis.latency import Latency
from checks.redis.hot_keys import HotKeys
from checks.redis.replication import Replication
from checks.redis.cluster import Cluster

CHECKS = [RedisConnection, RedisPool, TtlCoverage, BigKeys, MemoryByPattern, MemoryPolicy, Fragmentation, Persistence,
          Security, Slowlog, Latency, HotKeys, Replication, Cluster]
