"""A restart request stops intake and reaches the worker once, whoever asks first."""

from __future__ import annotations

from pathlib import Path

from streamworker.runtime import WorkerRuntime
from streamworker.settings import load_settings


def _runtime(tmp_path: Path) -> WorkerRuntime:
    return WorkerRuntime(load_settings({"STREAMWORKER_DATA_DIR": str(tmp_path)}))


def test_first_reason_wins_and_the_worker_hears_once(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path)
    heard: list[str] = []
    runtime.on_restart = heard.append
    assert runtime.accepting and runtime.restart_reason is None
    runtime.request_restart("partition 1's transaction broke")
    runtime.request_restart("a commit failed")  # every later failure of the same cause
    assert not runtime.accepting, "no new events: they go to the restarted process"
    assert runtime.restart_reason == "partition 1's transaction broke"
    assert heard == ["partition 1's transaction broke"]


def test_without_a_worker_it_still_stops_intake(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path)
    runtime.request_restart("broken")
    assert not runtime.accepting and runtime.restart_reason == "broken"
