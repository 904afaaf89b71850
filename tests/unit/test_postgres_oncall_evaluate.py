"""Pure judgement of postgres.replication and postgres.locks."""

from __future__ import annotations

import pytest

from checks.model import Severity
from checks.postgres import locks, replication
from tests.unit.test_postgres_evaluate import scope


def slot(name="s", *, active=False, wal_status="reserved", retained=2 * 1024**3):
    return replication.Slot(name, "physical", None, active, wal_status, None, retained)


@pytest.mark.parametrize("item, expected", [
    (slot(), ("inactive", Severity.HIGH, True)),
    (slot(active=True), None),                         # a consumer is connected
    (slot(retained=1024), None),                       # under min_retained_bytes
    (slot(wal_status="lost", retained=None), ("lost", Severity.HIGH, True)),
    (slot(active=True, wal_status="unreserved"), ("unreserved", Severity.HIGH, False)),
])
def test_slots(item, expected):
    check = replication.Replication()
    found = check.evaluate(replication.Facts((item,), ()), scope(check))
    if expected is None:
        assert found == []
    else:
        [finding] = found
        assert (finding.evidence["wal_status"] if expected[0] != "inactive" else "inactive") == expected[0]
        assert finding.severity is expected[1] and (finding.fix is not None) is expected[2]


def test_standby_lag_over_the_limit():
    check = replication.Replication()
    standbys = (replication.Standby("replica1", "10.0.0.2", "streaming", "async", 600.0, 10**9),
                replication.Standby("replica2", "10.0.0.3", "streaming", "async", 1.0, 10))
    [finding] = check.evaluate(replication.Facts((), standbys), scope(check))
    assert finding.object == "standby replica1" and finding.severity is Severity.MEDIUM


def session(pid, *, blocked_by=(), state="active", waited=60.0):
    return locks.LockSession(pid, "app", "u", "api", state, waited, waited, "Lock" if blocked_by else None,
                             "relation" if blocked_by else None, f"q{pid}", tuple(blocked_by))


def test_one_finding_per_head_with_the_whole_tree():
    check = locks.Locks()
    facts = locks.Facts((session(1, state="idle in transaction"), session(2, blocked_by=[1]),
                         session(3, blocked_by=[2]), session(4, blocked_by=[1], waited=400.0)))
    [finding] = check.evaluate(facts, scope(check))
    assert finding.object == "pid 1" and finding.evidence["waiting_sessions"] == 3
    assert [w["pid"] for w in finding.evidence["waiting_tree"]] == [2, 4]
    assert finding.evidence["waiting_tree"][0]["waiters"][0]["pid"] == 3
    assert finding.severity is Severity.HIGH  # 400 s over high_wait
    assert finding.fix.steps[0].command == "SELECT pg_terminate_backend(1);"


def test_short_waits_and_deadlock_cycles_are_left_alone():
    check = locks.Locks()
    assert check.evaluate(locks.Facts((session(1), session(2, blocked_by=[1], waited=2.0))), scope(check)) == []
    cycle = locks.Facts((session(1, blocked_by=[2]), session(2, blocked_by=[1])))
    assert check.evaluate(cycle, scope(check)) == []
