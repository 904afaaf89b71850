"""The MongoDB pack's server cost grows with the collections it reads, a small multiple of one
pass over them, never with their fields, references or rows: counted with pymongo's command
monitoring over the whole pack, at two numbers of collections."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from bson import ObjectId
from pymongo import monitoring

from checks.mongodb import connector
from tests import support

PER_COLLECTION = 10  # commands per collection the whole pack may send
PER_COMMAND = 3  # of which one command name (find, count, collStats...) at most


class Commands(monitoring.CommandListener):
    def __init__(self) -> None:
        self.sent: Counter[str] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name not in ("hello", "isMaster", "ismaster", "endSessions"):
            self.sent[event.command_name] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def add_collections(db: Any, first: int, last: int) -> None:
    """Collections with what makes checks look further: reference-named fields of ObjectIds
    written as strings, several array fields, a status lifecycle, dates."""
    now = dt.datetime.now(dt.timezone.utc)
    for k in range(first, last):
        db[f"events_{k}"].insert_many(
            {"referenceId": str(ObjectId()), "sourceId": str(ObjectId()), "userId": ObjectId(),
             "status": ("done", "failed", "pending")[i % 3], "tags": ["a"] * (i % 4), "items": [i], "createdAt": now - dt.timedelta(days=i)}
            for i in range(120))


def commands_of_a_run(mongo_db: Any, monkeypatch: Any) -> Counter[str]:
    listener = Commands()
    client_class = connector.AsyncMongoClient

    def listened(url: str, **options: Any) -> Any:  # the connector's own listeners kept
        return client_class(url, **{**options, "event_listeners": [*options.get("event_listeners", ()), listener]})

    settings = support.settings_for(app={"kind": "mongodb", "url": mongo_db.url, "check_timeout": 120})
    with monkeypatch.context() as patched:
        patched.setattr(connector, "AsyncMongoClient", listened)
        report = support.run_report(settings)
    assert report.errors == [] and report.partial() == [], (report.errors, report.partial())
    return listener.sent


def test_the_pack_sends_a_bounded_number_of_commands_per_collection(mongo_db, loaded_machine_budget, monkeypatch):
    add_collections(mongo_db.db, 0, 3)
    few = commands_of_a_run(mongo_db, monkeypatch)
    add_collections(mongo_db.db, 3, 12)
    many = commands_of_a_run(mongo_db, monkeypatch)

    added = 9
    grown = many - few
    assert sum(grown.values()) <= PER_COLLECTION * added, grown
    assert all(n <= PER_COMMAND * added for n in grown.values()), grown
    assert many["listDatabases"] == 0  # the URL names the database
