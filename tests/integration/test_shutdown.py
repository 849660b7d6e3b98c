"""SIGTERM on the real stack: in-flight runs finish (or are killed at the grace period), the
worker publishes, commits and exits 0, and nothing is lost or answered twice."""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.fault_util import hello, wait_container, wait_gone, wait_rows
from tests.integration.kafka_util import event_bytes, produce, wait_for_count

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def running(
    start_worker: Any, bootstrap: str, tmp_path: Path, grace_s: int, sleep_s: float
) -> tuple[Any, str, str, str]:
    """A worker with that grace period and a submission whose `sleep_s` run has started:
    (worker, submission id, audit database URL, topic prefix for the next worker)."""
    url = f"sqlite+aiosqlite:///{tmp_path}/audit.db"
    tag = f"st{uuid.uuid4().hex[:8]}"
    worker = start_worker(database_url=url, prefix=tag, STREAMWORKER_SHUTDOWN_GRACE_S=str(grace_s))
    sid = f"st-{tag}-run"
    await produce(bootstrap, worker.topics["submissions"], [event_bytes(hello(sid, sleep_s))])
    await wait_container(sid)
    return worker, sid, url, tag


async def test_sigterm_finishes_the_run_in_flight_publishes_once_and_exits_0(
    start_worker: Any, kafka_bootstrap: str, tmp_path: Path
) -> None:
    worker, sid, url, tag = await running(start_worker, kafka_bootstrap, tmp_path, 30, 3)

    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(timeout=60) == 0, worker.log()
    counts = await wait_for_count(kafka_bootstrap, worker.topics["results"], {sid}, 10)
    assert counts == {sid: 1}, worker.log()
    assert "draining" in worker.log()

    # The offset was committed: a new worker in the group does not answer it again.
    after = start_worker(database_url=url, prefix=tag)
    marker = f"st-{tag}-marker"
    await produce(kafka_bootstrap, after.topics["submissions"], [event_bytes(hello(marker))])
    counts = await wait_for_count(kafka_bootstrap, after.topics["results"], {sid, marker}, 90)
    assert counts == {sid: 1, marker: 1}, after.log()
    rows = await wait_rows(url, [sid], 30)
    assert rows[sid]["status"] == "accepted"
    assert rows[sid]["attempts"] == 1


async def test_sigterm_past_the_grace_period_kills_the_run_and_it_is_redelivered(
    start_worker: Any, kafka_bootstrap: str, tmp_path: Path
) -> None:
    worker, sid, url, tag = await running(start_worker, kafka_bootstrap, tmp_path, 1, 4)

    started = time.monotonic()
    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(timeout=60) == 0, worker.log()
    assert time.monotonic() - started < 4, "the run should be killed at the grace period"
    assert await wait_gone(sid) == [], "the killed run's container must be removed"
    assert await wait_for_count(kafka_bootstrap, worker.topics["results"], {sid}, 3) == {}

    again = start_worker(database_url=url, prefix=tag)
    counts = await wait_for_count(kafka_bootstrap, again.topics["results"], {sid}, 90)
    assert counts == {sid: 1}, again.log()
    rows = await wait_rows(url, [sid], 30)
    assert rows[sid]["status"] == "accepted"
    assert rows[sid]["attempts"] == 2
