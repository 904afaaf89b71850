"""The findings filter as a table of cases: pure, no app."""

from __future__ import annotations

import pytest

from checks.model import Severity
from console.filtering import parse
from console.widgets.finding_store import FindingStore, finding_fields
from tests.tui.helpers import synthetic_findings


def store_of(count: int) -> FindingStore:
    store = FindingStore()
    for f in synthetic_findings(count):
        store.replace(f.target, f.check, [*(x for x in store.slots.get((f.target, f.check), [])), f])
    return store


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("", 30),
        ("00007", 1),
        ("number on", 30),
        ("sev:crit", 6),
        ("target:orders", 10),
        ("engine:redis", 10),
        ("check:redis.*", 10),
        ("check:redis.* sev:info", 2),
        ("!target:orders !target:events", 10),
        ("/number 0000[0-4]/", 5),
        ("state:fresh", 30),
        ("state:stale", 0),
        ("nothing-matches", 0),
    ],
)
def test_select(text, count):
    query = parse(text, finding_fields(["orders", "sessions", "events"], ["postgres", "redis", "mongodb"]))
    assert not query.problems
    assert len(store_of(30).select(query)) == count


def test_select_by_state():
    store = store_of(30)
    store.mark_stale("orders")
    fields = finding_fields(["orders"], ["postgres"])
    assert {f.target for f in store.select(parse("state:stale", fields))} == {"orders"}
    assert len(store.select(parse("!state:stale", fields))) == 20


def test_a_slot_is_replaced_whole_and_dropped_when_its_check_did_not_run():
    store = store_of(30)
    orders = [f for f in store.ordered() if f.target == "orders"]
    store.replace("orders", orders[0].check, orders[:2])
    assert len(store) == 22
    store.keep_only("orders", [])
    assert len(store) == 20 and not any(f.target == "orders" for f in store.ordered())
    removed = store.ordered()[0]
    assert store.remove(removed.id) == removed and store.remove(removed.id) is None and len(store) == 19


def test_sorting_is_cached_until_a_change():
    store = store_of(30)
    first = store.ordered("target")
    assert store.ordered("target") is first
    store.remove(first[0].id)
    assert store.ordered("target") is not first
    assert store.counts_for("orders") == dict.fromkeys(Severity, 2)
    assert [f.target for f in store.ordered("target", reverse=True)] == sorted((f.target for f in first[1:]), reverse=True)


def test_the_store_keeps_names_terminal_safe():
    from dataclasses import replace

    from checks.model import Fix, FixSafety, FixStep

    [finding] = synthetic_findings(1)
    hostile = replace(finding, object="sess:\x1b[2J\x1b]0;owned\x07", title="key \u202eevil", message="a\nb",
                      evidence={"key\x1b": ["\x1b[31m"]},
                      fix=Fix(summary="x\x1b", safety=FixSafety.SAFE, steps=(FixStep("redis", ["DEL", "\x1b"]),)))
    store = FindingStore()
    store.replace(hostile.target, hostile.check, [hostile])
    [shown] = store.slots[(hostile.target, hostile.check)]
    assert shown.object == "sess:\\x1b[2J\\x1b]0;owned\\x07" and shown.title == "key \\u202eevil"
    assert shown.message == "a\\nb" and shown.evidence == {"key\\x1b": ["\\x1b[31m"]}
    assert shown.fix.summary == "x\\x1b" and shown.fix.steps == hostile.fix.steps and shown.id == hostile.id
