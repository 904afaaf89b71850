"""The lock each fix step takes, as the undo prompt states it: the inverse's own locks (a
DROP), never the locks of the fix it reverses (the build)."""

from __future__ import annotations

import pytest

from checks.engines import steps_lock
from checks.model import FixStep


@pytest.mark.parametrize(("step", "expected"), [
    (FixStep("sql", "DROP INDEX CONCURRENTLY public.orders_customer_id_idx;", transactional=False),
     "SHARE UPDATE EXCLUSIVE on the table of public.orders_customer_id_idx: reads and writes go on"),
    (FixStep("sql", "CREATE INDEX CONCURRENTLY i ON public.orders (customer_id);", transactional=False),
     "SHARE UPDATE EXCLUSIVE on public.orders: reads and writes go on"),
    (FixStep("sql", "CREATE INDEX i ON ONLY public.events (at);"), "SHARE on public.events: reads go on, writes wait"),
    (FixStep("sql", "DROP INDEX public.parted_idx;"), "ACCESS EXCLUSIVE on the table of public.parted_idx, briefly"),
    (FixStep("sql", "ALTER TABLE public.audit_log ALTER COLUMN id TYPE integer;"),
     "ACCESS EXCLUSIVE on public.audit_log for a whole table rewrite"),
    (FixStep("sql", 'ALTER TABLE "Odd"."T" VALIDATE CONSTRAINT fk;'), 'SHARE UPDATE EXCLUSIVE on "Odd"."T"'),
    (FixStep("mongodb", {"dropIndexes": "posts", "index": "authorId_1"}), "exclusive lock on the collection, briefly"),
    (FixStep("mongodb", {"createIndexes": "posts", "indexes": []}), "only at the start and end of the build"),
    (FixStep("redis", ["PERSIST", "session:1"]), "no lock"),
])
def test_each_step_states_its_own_lock(step, expected):
    assert expected in steps_lock([step])


def test_locks_are_said_once_in_order_and_unknown_is_none():
    drop = FixStep("sql", "DROP INDEX CONCURRENTLY public.a;", transactional=False)
    alter = FixStep("sql", "ALTER SEQUENCE public.s AS integer;")
    assert steps_lock([alter, alter, drop]).split("; then ")[0].startswith("a lock on the sequence only")
    assert steps_lock([alter, alter, drop]).count("sequence") == 1
    assert steps_lock([FixStep("sql", "COMMENT ON TABLE t IS 'x'")]) is None
    assert steps_lock([]) is None
