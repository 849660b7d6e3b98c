"""After a rebalance, stream partitions are seeked while still paused, then resumed.

Faust's order (resume, seek, clear the agent queues) lost a kept partition's events in
the scale-out test; `streamworker.worker.recovery` reorders it. These tests pin the order on a
real (unstarted) app whose consumer calls are recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from faust.types import TP

from streamworker.settings import load_settings
from streamworker.worker import recovery as recovery_module
from streamworker.worker.app import create_app
from streamworker.worker.recovery import SeekThenResumeRecovery

STREAM = TP("t.submissions", 1)
CHANGELOG = TP("streamworker-answered-changelog", 1)


@pytest.fixture
def recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list[str]]:
    settings = load_settings(
        {"STREAMWORKER_DATA_DIR": str(tmp_path), "STREAMWORKER_TOPIC_SUBMISSIONS": STREAM.topic}
    )
    app, _ = create_app(settings, 4)
    recovery = app.tables.recovery
    calls: list[str] = []
    consumer = app.consumer

    async def perform_seek() -> None:
        calls.append("seek")

    async def fetcher_start() -> None:
        calls.append("fetcher")

    async def table_done(*args: Any) -> None:
        calls.append("table")

    monkeypatch.setattr(consumer, "assignment", lambda: {STREAM, CHANGELOG})
    monkeypatch.setattr(consumer, "perform_seek", perform_seek)
    monkeypatch.setattr(
        consumer, "resume_partitions", lambda tps: calls.append(f"resume {sorted(tps)}")
    )
    monkeypatch.setattr(consumer, "resume_flow", lambda: calls.append("flow"))
    monkeypatch.setattr(app.flow_control, "resume", lambda: calls.append("clear queues"))
    monkeypatch.setattr(app._fetcher, "maybe_start", fetcher_start)
    monkeypatch.setattr(recovery, "_is_changelog_tp", lambda tp: tp == CHANGELOG)

    async def pause_in_client(_: Any, tps: set[Any]) -> None:
        calls.append(f"pause in aiokafka {sorted(tp.partition for tp in tps)}")

    monkeypatch.setattr(recovery_module, "pause_in_client", pause_in_client)
    # The unstarted service cannot `wait_first`; the awaited call itself is what counts.
    monkeypatch.setattr(recovery, "_wait", lambda coro, timeout=None: coro)
    for table in app.tables.values():
        monkeypatch.setattr(table, "on_recovery_completed", table_done)
    return app, calls


async def test_the_app_uses_the_reordered_recovery(recorded: tuple[Any, list[str]]) -> None:
    app, _ = recorded
    assert isinstance(app.tables.recovery, SeekThenResumeRecovery)


async def test_seek_before_queues_are_cleared_and_streams_resumed(
    recorded: tuple[Any, list[str]],
) -> None:
    app, calls = recorded
    await app.tables.recovery.on_recovery_completed(app.consumer_generation_id)
    assert calls == [
        "table",
        "seek",  # while the stream partitions are still paused
        "clear queues",  # nothing of theirs can be in the queues yet
        "flow",
        f"resume {[STREAM]}",  # only now can their events be fetched
        "fetcher",
        "pause in aiokafka [1]",  # the recovered changelog: no more fetches of it
    ]
    assert app.tables.recovery.completed.is_set()


async def test_a_newer_generation_leaves_the_streams_paused(
    recorded: tuple[Any, list[str]],
) -> None:
    app, calls = recorded
    await app.tables.recovery.on_recovery_completed(app.consumer_generation_id - 1)
    assert calls == ["table"]
