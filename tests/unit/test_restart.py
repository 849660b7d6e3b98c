"""A restart request stops intake and reaches the worker once, whoever asks first."""

from __future__ import annotations

from streamworker.worker.runtime import RestartRequests


def test_first_reason_wins_and_the_worker_hears_once() -> None:
    restarts = RestartRequests()
    heard: list[str] = []
    restarts.on_restart = heard.append
    assert restarts.accepting and restarts.reason is None
    restarts.request("partition 1's transaction broke")
    restarts.request("a commit failed")  # every later failure of the same cause
    assert not restarts.accepting, "no new events: they go to the restarted process"
    assert restarts.reason == "partition 1's transaction broke"
    assert heard == ["partition 1's transaction broke"]


def test_without_a_worker_it_still_stops_intake() -> None:
    restarts = RestartRequests()
    restarts.request("broken")
    assert not restarts.accepting and restarts.reason == "broken"


def test_a_drain_stops_intake_without_a_restart() -> None:
    restarts = RestartRequests()
    restarts.stop_intake()
    assert not restarts.accepting and restarts.reason is None
