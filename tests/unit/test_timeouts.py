"""One timeout policy: `timeout` bounds the driver and the server; the target's connect and call
deadlines are the outer bounds dbvitals puts around them, whatever a driver does."""

from __future__ import annotations

import asyncio
import time

from checks.config import config_from_dict
from checks.connectors import connect
from checks.engines import adapter_for
from checks.model import TargetState


def test_the_deadlines_follow_the_targets_timeout():
    target = config_from_dict({"targets": {"a": {"kind": "redis", "url": "redis://h/0", "timeout": 0.5}}}).targets["a"]
    assert (target.connect_deadline, target.call_deadline) == (3.0, 1.5)


def test_a_connect_that_never_returns_is_a_timeout_state_within_the_deadline(monkeypatch):
    target = config_from_dict({"targets": {"a": {"kind": "redis", "url": "redis://h/0", "timeout": 0.2}}}).targets["a"]

    async def hangs(name, target):  # a driver that ignores its own timeout
        await asyncio.sleep(3600)

    monkeypatch.setattr(adapter_for("redis"), "connect", hangs)
    started = time.monotonic()
    connection = asyncio.run(connect("a", target))
    assert connection.session is None and connection.status.state is TargetState.TIMEOUT
    assert time.monotonic() - started < 60  # the driver hangs for an hour: cut at the deadline, whatever the load
