"""Collections shaped like the MongoDB applications behind the audits: which of them need a TTL,
on which field and filter, and which must keep every document.

`collections(now)` returns name -> (documents, indexes as (keys, options)). Times sit half a day
off every whole-day boundary, so a count of documents older than N days does not depend on the
minute a test runs.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from bson import ObjectId

# The collections that need a TTL, with the field and filter a safe one uses.
NEEDS_TTL = {
    "gamerounds": ("finishedAt", {"status": "finished"}),
    "moderation_flags": ("updatedAt", {"status": {"$in": ["dismissed", "resolved"]}}),
    "invites": ("expiresAt", {"status": {"$in": ["accepted", "expired"]}}),
    "messages": ("createdAt", {"pinned": False}),
    "webhook_events": ("processedAt", {"status": {"$in": ["failed", "processed"]}}),
}
# Entities and ledgers: never a TTL.
PERMANENT = ("users", "posts", "votes", "follows", "wallets", "transactions", "wallet_history", "gem_transactions", "orders")

Indexes = list[tuple[list[tuple[str, int]], dict[str, Any]]]


def _days(now: dt.datetime, days: float) -> dt.datetime:
    return now - dt.timedelta(days=days + 0.5)


def collections(now: dt.datetime) -> dict[str, tuple[list[dict[str, Any]], Indexes]]:
    users = [ObjectId() for _ in range(300)]
    posts = [ObjectId() for _ in range(200)]
    data: dict[str, tuple[list[dict[str, Any]], Indexes]] = {}
    data["users"] = (
        [{"_id": uid, "email": f"user{i}@example.test", "name": f"User {i}", "createdAt": _days(now, 400 - i),
          "updatedAt": _days(now, (400 - i) / 2), "lastActiveAt": _days(now, i % 30)} for i, uid in enumerate(users)],
        [([("email", 1)], {"unique": True})],
    )
    data["posts"] = (
        [{"_id": pid, "userId": users[i % 300], "title": f"Post {i}", "createdAt": _days(now, 300 - i)}
         for i, pid in enumerate(posts)],
        [([("userId", 1)], {})],
    )
    data["votes"] = (
        [{"userId": users[i % 300], "postId": posts[i % 200], "value": 1, "createdAt": _days(now, i % 90)} for i in range(600)],
        [([("userId", 1), ("postId", 1)], {"unique": True})],
    )
    data["follows"] = (
        [{"followerId": users[i % 300], "followeeId": users[(i * 7) % 300], "createdAt": _days(now, i % 200)}
         for i in range(900)],
        [],
    )
    data["wallets"] = ([{"userId": uid, "balance": 1000, "updatedAt": _days(now, 1)} for uid in users], [])
    # Transactions carry the wallet's history: the balance before and after each one.
    data["transactions"] = (
        [{"userId": users[i % 300], "amount": 10 + i % 90, "currency": "EUR",
          "status": ("completed", "failed", "pending")[i % 3 if i > 30 else 2], "balanceBefore": 1000,
          "balanceAfter": 1000 - 10 - i % 90, "createdAt": _days(now, i % 400)} for i in range(1500)],
        [([("userId", 1), ("createdAt", -1)], {})],
    )
    data["wallet_history"] = (
        [{"userId": users[i % 300], "change": -5, "balance": 995, "createdAt": _days(now, i % 365)} for i in range(900)],
        [],
    )
    data["gem_transactions"] = (
        [{"userId": users[i % 300], "gems": 5, "reason": "daily bonus", "createdAt": _days(now, i % 500)} for i in range(1000)],
        [],
    )
    data["orders"] = (
        [{"userId": users[i % 300], "total": 25, "status": "completed" if i % 5 else "cancelled", "createdAt": _days(now, i % 400)}
         for i in range(500)],
        [],
    )
    # 6,000 rounds over 400 days: 15 a day, the newest 40 still running.
    data["gamerounds"] = (
        [{"gameId": "slots", "userId": users[i % 300], "score": i % 1000,
          "status": "in_progress" if i < 40 else "finished", "startedAt": _days(now, i / 15),
          **({} if i < 40 else {"finishedAt": _days(now, i / 15) + dt.timedelta(minutes=10)})} for i in range(6000)],
        [([("userId", 1), ("startedAt", -1)], {})],
    )
    data["moderation_flags"] = (
        [{"userId": users[i % 300], "postId": posts[i % 200], "reason": "spam",
          "status": ("open", "resolved", "dismissed")[i % 3], "createdAt": _days(now, 300 - i / 2),
          "updatedAt": _days(now, 300 - i / 2 - (0 if i % 3 == 0 else 20))} for i in range(600)],
        [],
    )
    # Invites: expiresAt set at creation; a pending invite may outlive it (the app offers to resend).
    data["invites"] = (
        [{"inviterId": users[i % 300], "email": f"friend{i}@example.test",
          "status": ("pending", "accepted", "expired")[i % 3], "createdAt": _days(now, 500 - i),
          "expiresAt": _days(now, 500 - i - 7),
          **({"acceptedAt": _days(now, 500 - i - 1)} if i % 3 == 1 else {})} for i in range(450)],
        [([("expiresAt", 1)], {})],
    )
    data["messages"] = (
        [{"conversationId": ObjectId(), "userId": users[i % 300], "text": f"message {i}", "pinned": i % 20 == 0,
          "createdAt": _days(now, i / 10)} for i in range(3000)],
        [([("conversationId", 1), ("createdAt", -1)], {})],
    )
    data["webhook_events"] = (
        [{"provider": "stripe", "type": "invoice.paid", "payload": {"n": i},
          "status": ("processed", "processed", "failed", "pending")[i % 4] if i >= 20 else "pending",
          "receivedAt": _days(now, i / 10), **({"processedAt": _days(now, i / 10)} if i >= 20 and i % 4 != 3 else {})}
         for i in range(2000)],
        [],
    )
    return data


def seed(db: Any, now: dt.datetime) -> dict[str, tuple[list[dict[str, Any]], Indexes]]:
    """Insert every collection into a pymongo Database; returns what was inserted."""
    data = collections(now)
    for name, (documents, indexes) in data.items():
        db[name].insert_many(documents)
        for keys, options in indexes:
            db[name].create_index(keys, **options)
    return data
