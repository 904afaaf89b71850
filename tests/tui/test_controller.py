"""The controller folds results into state without a screen: it is tested with a stand-in for
the App that records toasts and the workers it was asked to start."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from checks.model import CheckError, TargetState
from checks.runner import CheckResult
from console.controller import Controller
from console.replay import open_replay
from tests.tui.helpers import FROZEN_CLOCK, synthetic_findings, synthetic_registry, synthetic_settings, synthetic_statuses
from tests.tui.test_replay_activity import recording


class StandIn:
    """What the controller uses of the App: toasts, workers, messages."""

    def __init__(self) -> None:
        self.toasts: list[str] = []
        self.workers: list[str] = []
        self.sub_title = ""

    def notify(self, message: str, **_: Any) -> None:
        self.toasts.append(message)

    def run_worker(self, work: Any, *, name: str, **_: Any) -> None:
        work.close()  # never run: these tests are about state
        self.workers.append(name)

    def post_message(self, message: Any) -> bool:
        return True


def controller(**kwargs: Any) -> tuple[Controller, StandIn, list[str]]:
    app = StandIn()
    redrawn: list[str] = []
    made = Controller(app, synthetic_settings(), registry=synthetic_registry(), config_path=None,  # type: ignore[arg-type]
                      clock=lambda: FROZEN_CLOCK, on_target_changed=redrawn.append,
                      on_findings_changed=redrawn.append, **{"replay": None, **kwargs})
    return made, app, redrawn


def test_a_target_that_goes_down_keeps_its_findings_stale_and_says_so():
    made, app, redrawn = controller()
    orders = synthetic_statuses()[0]
    made.ingest([orders], synthetic_findings(6))
    assert "orders" in redrawn and made.targets["orders"].counts
    made.target_status(replace(orders, state=TargetState.REFUSED), probe=True)
    assert app.toasts[-1] == "orders is down: refused"
    assert all(made.store.is_stale(f) for f in made.store.ordered() if f.target == "orders")
    made.target_status(orders, probe=True)
    assert app.toasts[-1] == "orders is back" and app.workers[-1] == "checks on orders"


def test_a_check_that_fails_keeps_what_it_found_and_asks_the_target_at_once():
    made, app, _ = controller()
    findings = [f for f in synthetic_findings(6) if f.target == "orders"]
    made.ingest(synthetic_statuses(), findings)
    error = CheckError(findings[0].check, "orders", "timeout", "took too long")
    made.check_completed(CheckResult("orders", findings[0].check, [], error, 1.0))
    assert len(made.store.ordered()) == len(findings) and all(made.store.is_stale(f) for f in findings)
    assert app.workers == ["probe orders"]
    made.target_run_finished("orders", frozenset({findings[0].check}), None)
    assert "1 check(s) could not run" in app.toasts[-1]


def test_a_replay_runs_and_probes_nothing(tmp_path):
    recording(tmp_path / "rec.db")
    made, app, _ = controller(replay=open_replay(str(tmp_path / "rec.db"), synthetic_settings()))
    made.rerun_all()
    made.probe_all()
    made.start_undo("any")
    made.start_fix(synthetic_findings(1)[0])
    assert app.workers == []
    made.show_replay()
    assert app.sub_title.startswith("replay incident 10/10")
    made.replay_step(1)  # past the last snapshot: said, nothing changes
    assert app.toasts[-1] == "the recording's last snapshot"
