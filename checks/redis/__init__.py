"""Redis: the engine dbvitals registers under the `dbvitals.engines` entry point (its kind, URL
schemes, default port, target model and adapter); its checks are listed in `pack`."""

from checks.redis.adapter import RedisAdapter

ENGINE = RedisAdapter()
