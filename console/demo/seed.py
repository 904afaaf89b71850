"""The demo's application data: users, wallets and transactions, posts, votes and follows,
sessions, rate-limit counters and feeds — carrying the problems dbvitals exists to find.

Each problem is listed in SEEDED_PROBLEMS (check id, object fragment) so the demo's own test can
prove every one is found.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import uuid
from typing import Any

# (check id, a fragment of the finding's object) for every problem the seed plants.
SEEDED_PROBLEMS: list[tuple[str, str]] = [
    ("postgres.fk-type-mismatch", "wallet_events.transaction_id"),  # integer -> uuid, by name only
    ("postgres.fk-type-mismatch", "votes.post_id"),  # declared FK, integer -> bigint
    ("postgres.fk-missing-index", "follows"),  # follows.followee_id has no index
    ("postgres.duplicate-index", "posts"),  # two identical indexes on posts(author_id)
    ("postgres.invalid-index", "users_email_key_tmp"),  # a failed CREATE UNIQUE INDEX CONCURRENTLY
    ("postgres.sequence-exhaustion", "audit_log"),  # int4 sequence at 97% of its range
    ("postgres.missing-index", "page_views"),  # 20k rows read by sequential scans, per pg_stat_statements
    ("postgres.pool", "url:connect_timeout"),  # the URL leaves connect_timeout unset
    ("postgres.duplicate-fk", "votes"),  # a second foreign key on votes.user_id
    ("postgres.intersected-fk", "transfers"),  # (wallet_id) and (wallet_id, user_id) to wallets
    ("postgres.not-valid-constraint", "transactions"),  # a CHECK added NOT VALID, never validated
    ("postgres.disabled-trigger", "votes"),  # a bulk load left votes' triggers (its foreign keys) disabled
    ("postgres.vacuum", "audit_log"),  # autovacuum switched off on the table
    ("postgres.bloat", "session_archive"),  # nine rows in ten deleted: the table and its indexes stay large
    ("postgres.replication", "old_replica"),  # a slot nobody consumes, retaining WAL
    ("postgres.settings", "database"),  # statement_timeout and friends left at 0
    ("postgres.missing-index", "wallet_events"),  # a declared query (expect.queries) the planner would index
    ("postgres.lint-integer-key", "audit_log"),  # an integer primary key
    ("postgres.lint-serial", "audit_log"),  # serial rather than identity
    ("postgres.lint-timestamp-without-tz", "legacy_imports"),
    ("postgres.lint-varchar-length", "legacy_imports"),
    ("postgres.lint-char", "legacy_imports"),
    ("postgres.lint-money", "legacy_imports"),
    ("postgres.lint-json", "legacy_imports"),
    ("postgres.lint-btree-on-array", "legacy_imports_tags_idx"),
    ("postgres.lint-boolean-index", "legacy_imports_done_idx"),
    ("postgres.lint-index-nulls", "legacy_imports_note_idx"),
    ("postgres.lint-unnecessary-where", "legacy_imports_title_idx"),
    ("postgres.lint-timestamp-in-the-middle", "legacy_imports_code_at_title_idx"),
    ("postgres.lint-all-nullable", "scratch_notes"),
    ("postgres.lint-name-overflow", "customer_acquisition_channel_attribution_snapshots_by_campaign_"),  # cut at 63
    ("mongodb.ttl-coverage", "game_rounds"),  # finished rounds pile up for 400 days, no TTL
    ("mongodb.ttl-misconfigured", "sessions"),  # TTL index on a field holding strings
    ("mongodb.reference-type-mismatch", "wallets.userId"),  # string ids -> ObjectId _id
    ("mongodb.redundant-index", "posts"),  # {authorId:1} is a prefix of {authorId:1, createdAt:-1}
    ("mongodb.missing-index", "wallet_history"),  # a declared query with no index: COLLSCAN
    ("mongodb.pool", "url:maxPoolSize"),
    ("mongodb.unbounded-array", "posts.likes"),  # likes pile up in each post, more in older ones
    ("mongodb.field-type-drift", "transactions.amount"),  # one code path writes amounts as strings
    ("mongodb.dynamic-keys", "support_cases.assignments"),  # agency codes used as keys
    ("mongodb.schema-validation", "users"),  # a validator that only warns
    ("mongodb.transactions-unused", "transactions"),  # declared; SecantusDB keeps no counters: unknown  # the URL leaves maxPoolSize and timeouts at the driver defaults
    ("redis.ttl-coverage", "session:"),  # a share of session keys lack their TTL
    ("redis.ttl-coverage", "rate:vote:"),  # a daily vote quota without TTL: 48 h, not the hour "rate" suggests
    ("redis.ttl-coverage", "fraud:ips:"),  # fraud sets by day that never expire
    ("redis.ttl-coverage", "leaderboard:daily"),  # a board reused every day, no TTL: manual, never an EXPIRE
    ("redis.ttl-coverage", "post:votes:"),  # vote counters synced elsewhere: evidence, manual
    ("redis.big-keys", "leaderboard:weekly"),  # a big sorted set
    ("redis.memory-policy", "maxmemory-policy"),  # allkeys-lfu over keys that must stay: volatile-lfu
    ("redis.hot-keys", "redis://"),  # one post read by every request (OBJECT FREQ under LFU)
    ("redis.slowlog", "slowlog"),  # a 120 ms command, provoked on purpose
    ("redis.latency", "latency:command"),  # ... which the latency monitor recorded too
]

POSTGRES_SCHEMA = """
CREATE TABLE users (
    id bigserial PRIMARY KEY,
    email text NOT NULL,
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE wallets (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users(id),
    balance_cents bigint NOT NULL DEFAULT 0
);
CREATE INDEX wallets_user_id_idx ON wallets (user_id);
-- Migrated to uuid keys; wallet_events still holds the old integer ids (no constraint can join them).
CREATE TABLE transactions (
    id uuid PRIMARY KEY,
    legacy_id integer UNIQUE,
    wallet_id bigint NOT NULL REFERENCES wallets(id),
    amount_cents bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX transactions_wallet_id_idx ON transactions (wallet_id);
CREATE TABLE wallet_events (
    id bigserial PRIMARY KEY,
    transaction_id integer NOT NULL,
    kind text NOT NULL
);
CREATE TABLE posts (
    id bigserial PRIMARY KEY,
    author_id bigint NOT NULL REFERENCES users(id),
    title text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX posts_author_id_idx ON posts (author_id);
CREATE INDEX posts_author_idx ON posts (author_id);
CREATE TABLE votes (
    id bigserial PRIMARY KEY,
    post_id integer NOT NULL REFERENCES posts(id),
    user_id bigint NOT NULL REFERENCES users(id),
    value smallint NOT NULL
);
CREATE INDEX votes_post_id_idx ON votes (post_id);
CREATE INDEX votes_user_id_idx ON votes (user_id);
CREATE TABLE follows (
    follower_id bigint NOT NULL REFERENCES users(id),
    followee_id bigint NOT NULL REFERENCES users(id),
    PRIMARY KEY (follower_id, followee_id)
);
CREATE TABLE page_views (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL,
    path text NOT NULL
);
CREATE TABLE audit_log (
    id serial PRIMARY KEY,
    message text NOT NULL
) WITH (autovacuum_enabled = false);
-- Foreign-key problems: one key declared twice, two that overlap, a check never validated.
ALTER TABLE votes ADD CONSTRAINT votes_user_id_fkey1 FOREIGN KEY (user_id) REFERENCES users(id);
ALTER TABLE wallets ADD CONSTRAINT wallets_id_user_id_key UNIQUE (id, user_id);
CREATE TABLE transfers (
    id bigserial PRIMARY KEY,
    wallet_id bigint NOT NULL REFERENCES wallets(id),
    user_id bigint NOT NULL,
    FOREIGN KEY (wallet_id, user_id) REFERENCES wallets(id, user_id)
);
CREATE INDEX transfers_wallet_id_user_id_idx ON transfers (wallet_id, user_id);
ALTER TABLE transactions ADD CONSTRAINT transactions_amount_range
    CHECK (amount_cents BETWEEN -1000000 AND 1000000) NOT VALID;
-- Archived sessions: most rows deleted since, the space never given back.
CREATE TABLE session_archive (id bigint PRIMARY KEY, user_id bigint NOT NULL, token text NOT NULL);
CREATE INDEX session_archive_user_id_idx ON session_archive (user_id);
-- An import table from another system, written before anyone had a style guide.
CREATE TABLE legacy_imports (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code char(8),
    title varchar(120) NOT NULL,
    price money,
    payload json,
    imported_at timestamp,
    tags text[],
    done boolean,
    note text
);
CREATE INDEX legacy_imports_tags_idx ON legacy_imports (tags);
CREATE INDEX legacy_imports_done_idx ON legacy_imports (done);
CREATE INDEX legacy_imports_note_idx ON legacy_imports (note);
CREATE INDEX legacy_imports_title_idx ON legacy_imports (title) WHERE title IS NOT NULL;
CREATE INDEX legacy_imports_code_at_title_idx ON legacy_imports (code, imported_at, title);
CREATE TABLE scratch_notes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, topic text, body text);
CREATE TABLE customer_acquisition_channel_attribution_snapshots_by_campaign_and_region (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel text NOT NULL
);
"""


async def seed_postgres(url: str, *, users: int = 500) -> None:
    import asyncpg

    conn = await asyncpg.connect(url, timeout=30)
    try:
        # A replica decommissioned long ago: its slot still holds every WAL segment written since.
        await conn.execute("SELECT pg_create_physical_replication_slot('old_replica', true)")
        await conn.execute(POSTGRES_SCHEMA)
        await conn.executemany(
            "INSERT INTO users (email, name) VALUES ($1, $2)",
            [(f"user{i}@example.com", f"User {i}") for i in range(users)],
        )
        # Two users share an address: the unique index built below fails and stays INVALID.
        await conn.execute("INSERT INTO users (email, name) VALUES ('user1@example.com', 'Duplicate')")
        await conn.execute("INSERT INTO wallets (user_id, balance_cents) SELECT id, 1000 FROM users")
        await conn.executemany(
            "INSERT INTO transactions (id, legacy_id, wallet_id, amount_cents) VALUES ($1, $2, $3, $4)",
            [(uuid.uuid4(), i, 1 + i % users, random.randint(-5000, 5000)) for i in range(1, 2001)],
        )
        await conn.execute(
            "INSERT INTO wallet_events (transaction_id, kind) SELECT legacy_id, 'settled' FROM transactions"
        )
        await conn.execute(
            "INSERT INTO posts (author_id, title) SELECT 1 + (g % $1), 'Post ' || g FROM generate_series(1, 3000) g",
            users,
        )
        await conn.execute(
            "INSERT INTO votes (post_id, user_id, value) "
            "SELECT 1 + (g % 3000), 1 + (g % $1), 1 FROM generate_series(1, 6000) g", users,
        )
        await conn.execute(
            "INSERT INTO follows SELECT 1 + (g % $1), 1 + ((g * 7) % $1) FROM generate_series(1, 2000) g "
            "WHERE (g % $1) <> ((g * 7) % $1) ON CONFLICT DO NOTHING", users,
        )
        await conn.execute(
            "INSERT INTO page_views (user_id, path) SELECT 1 + (g % $1), '/p/' || g FROM generate_series(1, 20000) g",
            users,
        )
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        if await conn.fetchval("SELECT count(*) FROM pg_available_extensions WHERE name = 'hypopg'"):
            await conn.execute("CREATE EXTENSION IF NOT EXISTS hypopg")  # the index advisor's hypothetical indexes
        await conn.execute("ANALYZE page_views")
        # The application's profile page: filtered on an unindexed column, so every call scans the table.
        for user in range(1, 61):
            await conn.fetch("SELECT path FROM page_views WHERE user_id = $1", user)
        await conn.execute("SELECT pg_stat_force_next_flush()")
        await conn.execute(
            "INSERT INTO transfers (wallet_id, user_id) SELECT id, user_id FROM wallets")
        await conn.execute(
            "INSERT INTO session_archive SELECT g, 1 + g % $1, md5(g::text) FROM generate_series(1, 30000) g", users)
        await conn.execute("DELETE FROM session_archive WHERE id % 10 <> 0")
        await conn.execute("VACUUM ANALYZE session_archive")
        await conn.execute(
            "INSERT INTO legacy_imports (code, title, imported_at, tags, done, note) "
            "SELECT 'C' || g, 'Import ' || g, now(), NULL, g % 2 = 0, CASE WHEN g % 20 = 0 THEN 'checked' END "
            "FROM generate_series(1, 500) g")
        # A bulk load switched votes' triggers off — its foreign keys with them — and never back on.
        await conn.execute("ALTER TABLE votes DISABLE TRIGGER ALL")
        await conn.execute("SELECT setval('audit_log_id_seq', 2100000000)")
        await conn.execute("INSERT INTO audit_log (message) VALUES ('near the end of int4')")
        try:
            await conn.execute("CREATE UNIQUE INDEX CONCURRENTLY users_email_key_tmp ON users (email)")
        except asyncpg.UniqueViolationError:
            pass  # expected: the failed build leaves the INVALID index the demo wants
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def seed_mongodb(url: str, database: str = "app") -> None:
    from bson import ObjectId
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, serverSelectionTimeoutMS=10000)
    try:
        db = client[database]
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        user_ids = [ObjectId() for _ in range(300)]
        # A validator that only warns: invalid users are stored anyway.
        await db.create_collection("users", validator={"$jsonSchema": {"bsonType": "object", "required": ["email"]}},
                                   validationAction="warn")
        await db.users.insert_many(
            [{"_id": oid, "email": f"user{i}@example.com", "status": "active", "banned": False}
             for i, oid in enumerate(user_ids)]
        )
        await db.users.create_index([("email", 1)], unique=True)
        # Wallets reference users by the string form of the ObjectId: lookups never match.
        await db.wallets.insert_many(
            [{"userId": str(oid), "balance": 1000} for oid in user_ids]
        )
        await db.wallets.create_index([("userId", 1)])
        # Transactions grow forever: failed ones are never expired.
        await db.transactions.insert_many(
            [{"walletId": ObjectId(), "amount": random.randint(-500, 500) if n % 20 else f"{random.randint(1, 500)}.00",
              "status": random.choice(["done", "done", "failed"]),
              "createdAt": now - dt.timedelta(days=random.randint(0, 400))} for n in range(12000)]
        )
        await db.transactions.create_index([("walletId", 1)])
        # A TTL index on a field that holds strings: the TTL monitor never deletes anything.
        await db.sessions.insert_many(
            [{"userId": oid, "expiresAt": (now + dt.timedelta(days=1)).isoformat()} for oid in user_ids[:100]]
        )
        await db.sessions.create_index([("expiresAt", 1)], expireAfterSeconds=0)
        # A wallet history page queries userId + status sorted by createdAt: no index serves it.
        await db.wallet_history.insert_many(
            [{"userId": random.choice(user_ids), "status": random.choice(["done", "pending"]),
              "createdAt": now - dt.timedelta(minutes=i)} for i in range(2000)]
        )
        await db.posts.insert_many(
            [{"authorId": random.choice(user_ids), "title": f"Post {i}",
              "createdAt": now - dt.timedelta(hours=i), "updatedAt": now - dt.timedelta(hours=i / 2),
              "likes": list(range(i // 4))}
             for i in range(1000)]
        )
        # Support cases keyed by agency code: an object used as a map.
        await db.support_cases.insert_many(
            [{"title": f"Case {i}", "assignments": {f"AG{random.randint(100, 400)}": {"role": "agent"} for _ in range(2)}}
             for i in range(500)]
        )
        # Finished game rounds are never expired: 15 a day for 400 days.
        await db.game_rounds.insert_many(
            [{"userId": random.choice(user_ids), "score": random.randint(0, 1000),
              "status": "playing" if i < 20 else "finished", "startedAt": now - dt.timedelta(days=i / 15),
              **({} if i < 20 else {"finishedAt": now - dt.timedelta(days=i / 15, minutes=-5)})} for i in range(6000)]
        )
        await db.posts.create_index([("authorId", 1)])
        await db.posts.create_index([("authorId", 1), ("createdAt", -1)])
    finally:
        await client.close()


async def seed_redis(url: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        pipe = client.pipeline(transaction=False)
        for i in range(2000):
            key = f"session:{uuid.uuid4()}"
            # One write path forgot EX: a share of sessions live forever.
            if i % 10 == 0:
                pipe.set(key, "user:%d" % i)
            else:
                pipe.set(key, "user:%d" % i, ex=7 * 86400)
        for user in range(500):
            pipe.set(f"rate:vote:{user}:2026-11-22", 3)  # the daily quota's write path forgot EX
            pipe.lpush(f"feed:{user}", *[f"post:{n}" for n in range(20)])
            pipe.expire(f"feed:{user}", 30 + user % 91)  # feeds are cached for 30-120 s
        for post in range(300):
            pipe.incrby(f"post:votes:{post}", random.randint(1, 100))  # synced to the database by a job
        for day in ("2026-11-20", "2026-11-21", "2026-11-22"):
            pipe.sadd(f"fraud:ips:{day}", *[f"10.1.{n // 250}.{n % 250}" for n in range(300)])
        pipe.hset("flags:all", mapping={"new_feed": 1, "dark_mode": 0})
        await pipe.execute()
        members: dict[str, float] = {}
        for n in range(60000):
            members[f"user:{n}"] = float(random.randint(0, 10**6))
            if len(members) == 5000:
                await client.zadd("leaderboard:weekly", members)
                members = {}
        await client.zadd("leaderboard:alltime", {f"user:{n}": n for n in range(100)})
        await client.zadd("leaderboard:daily", {f"user:{n}": n for n in range(100)})
        reads = client.pipeline(transaction=False)
        for _ in range(30_000):  # the front page's post, read by every request: its LFU counter climbs
            reads.get("post:votes:1")
        await reads.execute()
        await client.execute_command("DEBUG", "SLEEP", "0.12")  # a slow command for redis.slowlog and redis.latency
    finally:
        await client.aclose()


async def seed_all(postgres_url: str, mongodb_url: str, redis_url: str) -> None:
    await asyncio.gather(seed_postgres(postgres_url), seed_mongodb(mongodb_url), seed_redis(redis_url))


def demo_config(postgres_url: str, mongodb_url: str, redis_url: str) -> dict[str, Any]:
    """The config the demo writes: fixes allowed, and URLs that leave pool settings at defaults."""
    return {
        "targets": {
            "app_postgres": {"kind": "postgres", "url": postgres_url, "environment": "demo", "allow_fixes": True,
                             "app_pool": {"instances": 4, "max_size": 20},
                             # The statements the application runs, for the index advisor.
                             "expect": {"queries": [
                                 {"sql": "SELECT kind FROM wallet_events WHERE transaction_id = $1"},
                                 {"sql": "SELECT * FROM transactions WHERE legacy_id = $1"}]},
                             # A small playground: thresholds scaled down so its problems show.
                             "checks": {"postgres.bloat": {"min_bytes": 65536},
                                        "postgres.replication": {"min_retained_bytes": 65536}}},
            "app_mongodb": {"kind": "mongodb", "url": f"{mongodb_url}/app?directConnection=true",
                            "environment": "demo", "allow_fixes": True, "uses_transactions": True,
                            "expect": {"queries": [{"collection": "wallet_history", "name": "wallet history",
                                                    "filter": {"userId": "x", "status": "done"},
                                                    "sort": {"createdAt": -1}}]}},
            "app_redis": {"kind": "redis", "url": redis_url + "/0", "environment": "demo", "allow_fixes": True,
                          "role": "cache",
                          "expect": {"persistent": [{"pattern": "leaderboard:alltime"}]}},
        }
    }
