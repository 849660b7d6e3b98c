"""Fault injection on the real stack: crashes, broker and database outages, scale-out.

Each test counts results on a read_committed consumer and rows in SQL, and cleans up
its workers (the `start_worker` factory) and containers.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiodocker
import pytest
from aiokafka import AIOKafkaProducer

from streamworker.sandbox.spec import LABEL_PREFIX, container_name_stem
from tests.conftest import REPO, need
from tests.integration.dockerd_util import PYTHON_IMAGE, AltDockerd, alt_dockerd, can_run_dockerd
from tests.integration.fault_util import hello, ids, labelled, wait_container, wait_rows
from tests.integration.kafka_util import (
    ResultCounter,
    event_bytes,
    produce,
    read_all,
    wait_for_count,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def wait_while_progressing(
    bootstrap: str, worker: Any, ids: set[str], timeout_s: float, stall_s: float
) -> dict[str, int]:
    """Counts per id once all are answered, or when nothing new came for `stall_s`.

    A stalled worker is asked for a dump of its threads and asyncio tasks (SIGUSR1, Faust's
    worker writes it to its log) so the failure names where it waits."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    seen, since = -1, loop.time()
    async with ResultCounter(bootstrap, worker.topics["results"]) as counter:
        while True:
            counts = await counter.wait(ids, 1)
            if len(counts) == len(ids) or loop.time() > deadline:
                return counts
            if len(counts) > seen:
                seen, since = len(counts), loop.time()
            elif loop.time() - since > stall_s:
                if worker.process.poll() is None:
                    worker.process.send_signal(signal.SIGUSR1)
                    await asyncio.sleep(5)
                return counts


def stack(command: str) -> None:
    subprocess.run(
        ["bash", str(REPO / "dev" / "stack.sh"), command],
        check=True,
        capture_output=True,
        timeout=300,
    )


async def test_kill_9_mid_run_is_retried_once_and_leaves_no_container(
    start_worker: Any, kafka_bootstrap: str, tmp_path: Any
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/audit.db"
    tag = f"k9{uuid.uuid4().hex[:8]}"
    first = start_worker(database_url=url, prefix=tag)
    [sid] = ids("k9", 1)
    await produce(kafka_bootstrap, first.topics["submissions"], [event_bytes(hello(sid, 4))])
    await wait_container(sid)
    first.process.kill()  # SIGKILL: no cleanup, no commit
    first.process.wait()
    assert await labelled(sid), "the killed worker's container should still be there"

    second = start_worker(database_url=url, prefix=tag)
    counts = await wait_for_count(kafka_bootstrap, second.topics["results"], {sid}, 90)
    assert counts == {sid: 1}, second.log()
    rows = await wait_rows(url, [sid], 30)
    assert rows[sid]["status"] == "accepted"
    assert rows[sid]["attempts"] == 2
    assert await labelled(sid) == []


async def test_reaper_removes_containers_past_their_deadline(
    start_worker: Any, tmp_path: Any
) -> None:
    sid = f"orphan-{uuid.uuid4().hex[:8]}"
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    async with aiodocker.Docker() as docker:
        await docker.containers.create(
            {
                "Image": "streamworker-runtime/python:bookworm",
                "Cmd": ["/opt/streamworker/sw-run", "idle"],
                "Labels": {
                    f"{LABEL_PREFIX}.service": "streamworker",
                    f"{LABEL_PREFIX}.submission-id": sid,
                    f"{LABEL_PREFIX}.deadline-at": past,
                },
                "HostConfig": {"NetworkMode": "none"},
            },
            name=f"streamworker-orphan-{sid}",
        )
    assert await labelled(sid)
    start_worker(database_url=f"sqlite+aiosqlite:///{tmp_path}/audit.db")
    for _ in range(100):
        if not await labelled(sid):
            break
        await asyncio.sleep(0.2)
    assert await labelled(sid) == []


async def test_duplicate_submission_is_answered_once(
    start_worker: Any, kafka_bootstrap: str, tmp_path: Any
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/audit.db"
    worker = start_worker(database_url=url)
    [sid] = ids("dup", 1)
    await produce(kafka_bootstrap, worker.topics["submissions"], [event_bytes(hello(sid))])
    assert await wait_for_count(kafka_bootstrap, worker.topics["results"], {sid}, 60) == {sid: 1}
    await produce(kafka_bootstrap, worker.topics["submissions"], [event_bytes(hello(sid))] * 2)
    [marker] = ids("dup-marker", 1)  # processed after the duplicates on its partition or not:
    await produce(kafka_bootstrap, worker.topics["submissions"], [event_bytes(hello(marker))])
    await wait_for_count(kafka_bootstrap, worker.topics["results"], {marker}, 60)
    await asyncio.sleep(3)  # a duplicate result would have been committed by now
    counts = await wait_for_count(kafka_bootstrap, worker.topics["results"], {sid}, 5)
    assert counts == {sid: 1}
    rows = await wait_rows(url, [sid], 10)
    assert rows[sid]["attempts"] == 1


async def test_a_fenced_transaction_restarts_the_worker_in_place(
    start_worker: Any, kafka_bootstrap: str, tmp_path: Any
) -> None:
    """Producers with the worker's transactional ids fence its own (as a broker failure
    that kills aiokafka's sender breaks them): its transactions can commit nothing more,
    so the worker restarts in place (same pid) and answers everything exactly once."""
    url = f"sqlite+aiosqlite:///{tmp_path}/audit.db"
    tag = f"fence{uuid.uuid4().hex[:8]}"
    worker = start_worker(database_url=url, prefix=tag)
    [first, second] = ids("fenced", 2)
    await produce(kafka_bootstrap, worker.topics["submissions"], [event_bytes(hello(first))])
    assert await wait_for_count(kafka_bootstrap, worker.topics["results"], {first}, 60) == {
        first: 1
    }
    fencers = [
        AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=f"{tid}-{p}")
        for tid in [f"{worker.env['STREAMWORKER_APP_ID']}-0"]
        for p in range(4)
    ]
    try:
        for fencer in fencers:
            await fencer.start()  # InitProducerId: the worker's producer is now fenced
        await produce(kafka_bootstrap, worker.topics["submissions"], [event_bytes(hello(second))])
        counts = await wait_for_count(
            kafka_bootstrap, worker.topics["results"], {first, second}, 120
        )
    finally:
        for fencer in fencers:
            await fencer.stop()
    assert counts == {first: 1, second: 1}, worker.log()
    assert "restarting the worker in place" in worker.log_path.read_text(errors="replace")
    assert worker.process.poll() is None, "restarted in place: the same process goes on"


@pytest.mark.timeout(600)
async def test_postgres_outage_pauses_audit_but_not_results(
    start_worker: Any, kafka_bootstrap: str, pg_url: str
) -> None:
    worker = start_worker(database_url=pg_url)
    sids = ids("pgdown", 40)
    await produce(
        kafka_bootstrap, worker.topics["submissions"], [event_bytes(hello(s)) for s in sids[:10]]
    )
    await wait_for_count(kafka_bootstrap, worker.topics["results"], set(sids[:10]), 90)
    stack("down-postgres")
    try:
        await produce(
            kafka_bootstrap,
            worker.topics["submissions"],
            [event_bytes(hello(s)) for s in sids[10:]],
        )
        await asyncio.sleep(20)
    finally:
        stack("up-postgres")
    counts = await wait_for_count(kafka_bootstrap, worker.topics["results"], set(sids), 120)
    assert len(counts) == 40 and set(counts.values()) == {1}, worker.log()
    rows = await wait_rows(pg_url, sids, 120)
    assert len(rows) == 40, f"audit caught up on {len(rows)}/40"
    assert {r["status"] for r in rows.values()} == {"accepted"}


@pytest.mark.timeout(900)
async def test_kafka_broker_restart_during_200_submissions(
    start_worker: Any, kafka_bootstrap: str, tmp_path: Any
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/audit.db"
    worker = start_worker(database_url=url)
    sids = ids("kafka", 200)
    await produce(
        kafka_bootstrap, worker.topics["submissions"], [event_bytes(hello(s)) for s in sids]
    )
    await wait_for_count(kafka_bootstrap, worker.topics["results"], set(sids[:20]), 120)
    stack("down-kafka")
    await asyncio.sleep(3)
    stack("up-kafka")
    counts = await wait_for_count(kafka_bootstrap, worker.topics["results"], set(sids), 300)
    assert len(counts) == 200, f"{len(counts)}/200 answered\n{worker.log()}"
    duplicates = {k: v for k, v in counts.items() if v != 1}
    assert duplicates == {}


@pytest.mark.timeout(1200)
async def test_1000_submissions_through_2_workers_one_killed_halfway(
    start_worker: Any, kafka_bootstrap: str, pg_url: str
) -> None:
    tag = f"scale{uuid.uuid4().hex[:8]}"
    first = start_worker(database_url=pg_url, prefix=tag)
    second = start_worker(database_url=pg_url, prefix=tag)
    sids = ids("scale", 1000)
    await produce(
        kafka_bootstrap, first.topics["submissions"], [event_bytes(hello(s)) for s in sids]
    )
    async with ResultCounter(kafka_bootstrap, first.topics["results"]) as counter:
        counts = await counter.wait(set(sids[:1]), 120)
        while len(counts) < 500:
            counts = await counter.wait(set(sids), 1)
    first.process.kill()
    first.process.wait()
    counts = await wait_while_progressing(kafka_bootstrap, second, set(sids), 600, stall_s=120)
    assert len(counts) == 1000, f"{len(counts)}/1000 (log: {second.log_path})\n{second.log()}"
    duplicated = {k for k, v in counts.items() if v > 1}
    details = [
        (r["submission_id"], r["event_id"], r["worker_id"], r["attempt"], r["status"])
        for r in await read_all(kafka_bootstrap, second.topics["results"])
        if r["submission_id"] in duplicated
    ]
    assert not duplicated, f"duplicates on the results topic: {details}"
    rows = await wait_rows(pg_url, sids, 120)
    assert len(rows) == 1000


@pytest.fixture
def restartable_dockerd(docker_available: None) -> Iterator[AltDockerd]:
    """A second, real dockerd the test may stop and start (the main engine is shared)."""
    need("a second dockerd (root and dockerd)", can_run_dockerd())
    with alt_dockerd(images=(PYTHON_IMAGE,)) as daemon:
        yield daemon


async def labelled_on(host: str, sid: str) -> bool:
    async with aiodocker.Docker(url=host) as docker:
        found = await docker.containers.list(
            filters=json.dumps({"name": [f"^/{container_name_stem(sid)}-a"]})
        )
        return bool(found)


@pytest.mark.timeout(600)
async def test_dockerd_restart_during_a_run_never_hangs(
    restartable_dockerd: AltDockerd, start_worker: Any, kafka_bootstrap: str, tmp_path: Any
) -> None:
    daemon = restartable_dockerd
    worker = start_worker(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/audit.db",
        DOCKER_HOST=daemon.unix_host,
        STREAMWORKER_HEALTH_INTERVAL_S="1",
        STREAMWORKER_REQUIRED_LANGUAGES="python",
    )
    [sid, after] = ids("dockerd", 2)
    await produce(kafka_bootstrap, worker.topics["submissions"], [event_bytes(hello(sid, 3))])
    for _ in range(300):
        if await labelled_on(daemon.unix_host, sid):
            break
        await asyncio.sleep(0.05)
    await asyncio.to_thread(daemon.stop)  # the run's container dies with the daemon
    await asyncio.sleep(2)
    await asyncio.to_thread(daemon.start)
    counts = await wait_for_count(kafka_bootstrap, worker.topics["results"], {sid}, 180)
    assert counts == {sid: 1}, worker.log()
    [result] = [
        r
        for r in await read_all(kafka_bootstrap, worker.topics["results"])
        if r["submission_id"] == sid
    ]
    assert result["status"] in ("accepted", "internal_error"), result
    if result["status"] == "internal_error":
        assert result["message"]
    await produce(kafka_bootstrap, worker.topics["submissions"], [event_bytes(hello(after))])
    assert await wait_for_count(kafka_bootstrap, worker.topics["results"], {after}, 120) == {
        after: 1
    }, worker.log()
    [next_result] = [
        r
        for r in await read_all(kafka_bootstrap, worker.topics["results"])
        if r["submission_id"] == after
    ]
    assert next_result["status"] == "accepted", (next_result, worker.log())
    assert worker.process.poll() is None, "the worker must survive a Docker restart"
