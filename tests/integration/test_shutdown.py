"""SIGTERM on the real stack: in-flight runs finish (or are killed at the grace period), the
worker publishes, commits and exits 0, and nothing is lost or answered twice."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.kafka_util import event_bytes, produce, wait_for_count
from tests.integration.test_faults import hello, labelled, wait_rows

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def wait_container(sid: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await labelled(sid):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"no container for {sid} within {timeout_s}s")


async def wait_gone(sid: str, timeout_s: float = 30.0) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while True:
        left = await labelled(sid)
        if not left or time.monotonic() > deadline:
            return left
        await asyncio.sleep(0.5)


async def test_sigterm_finishes_the_run_in_flight_publishes_once_and_exits_0(
    start_worker: Any, kafka_bootstrap: str, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/audit.db"
    tag = f"st{uuid.uuid4().hex[:8]}"
    worker = start_worker(database_url=url, prefix=tag, STREAMWORKER_SHUTDOWN_GRACE_S="30")
    sid = f"st-{tag}-slow"
    await produce(kafka_bootstrap, worker.topics["submissions"], [event_bytes(hello(sid, 3))])
    await wait_container(sid)

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
    url = f"sqlite+aiosqlite:///{tmp_path}/audit.db"
    tag = f"sg{uuid.uuid4().hex[:8]}"
    worker = start_worker(database_url=url, prefix=tag, STREAMWORKER_SHUTDOWN_GRACE_S="1")
    sid = f"sg-{tag}-long"
    await produce(kafka_bootstrap, worker.topics["submissions"], [event_bytes(hello(sid, 4))])
    await wait_container(sid)

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
