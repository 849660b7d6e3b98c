"""Warm pools on real Docker: single use, refill, drain, and no leak after 500 runs.

Reuse (a container serving several submissions) is in `test_pool_reuse`."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator

import aiodocker
import pytest
import pytest_asyncio

from streamworker.contract import Status, decode_submission
from streamworker.judge import judge
from streamworker.languages.registry import get_language
from streamworker.sandbox.reaper import POOL_NAME_PREFIX
from streamworker.sandbox.spec import LABEL_PREFIX, container_name
from tests.conftest import image_env
from tests.integration.pool_util import Harness, pool_harness

pytestmark = [pytest.mark.integration]


@pytest_asyncio.fixture
async def harness(docker_available: None) -> AsyncIterator[Harness]:
    async with pool_harness() as h:
        yield h


async def test_containers_are_single_use_and_refilled(docker_available: None) -> None:
    async with pool_harness(STREAMWORKER_POOL_MAX_USES="1") as harness:
        await single_use_and_refilled(harness)


async def single_use_and_refilled(harness: Harness) -> None:
    pool = harness.pools.pools["python"]
    ready_before = {c.container.id for c in pool._ready}
    assert len(ready_before) == 2
    _, first = await harness.run()
    _, second = await harness.run()
    assert first.status is Status.ACCEPTED and second.status is Status.ACCEPTED
    await harness.pools.wait_ready(30)
    ready_after = {c.container.id for c in pool._ready}
    assert not ready_before & ready_after, "a used container came back into the pool"
    await asyncio.sleep(1.0)
    live = {str(info["Id"]) for info in await harness.containers()}
    used = ready_before
    assert not used & live, "used containers must be destroyed"
    assert pool.size == pool.target >= 2


async def test_taken_container_gets_the_deterministic_name(harness: Harness) -> None:
    sid = f"pool-name-{uuid.uuid4().hex[:8]}"
    event = {
        "submission_id": sid,
        "language": "python",
        "source": "import time\ntime.sleep(1.5)\nprint('hi')\n",
    }
    sub = decode_submission(json.dumps(event).encode())
    task = asyncio.create_task(
        judge(sub, get_language("python"), harness.settings, harness.sandbox)
    )
    name = container_name(sid, 1)
    seen = None
    for _ in range(100):
        try:
            seen = await harness.docker.containers.container(name).show()
            break
        except aiodocker.DockerError:
            await asyncio.sleep(0.02)
    verdict = await task
    assert verdict.status is Status.ACCEPTED
    assert seen is not None, "the pooled container was not renamed to the attempt's name"
    assert seen["Config"]["Labels"][f"{LABEL_PREFIX}.pool"] == "python"


async def test_drain_removes_every_idle_container(harness: Harness) -> None:
    assert len(await harness.containers()) >= 2
    await harness.pools.stop()
    assert await harness.containers() == []


async def test_stop_sweeps_a_pool_container_drain_never_knew(harness: Harness) -> None:
    """A create cancelled mid-request leaves a container whose id never came back."""
    pool = harness.pools.pools["python"]
    labels = {
        f"{LABEL_PREFIX}.service": "streamworker",
        f"{LABEL_PREFIX}.pool": "python",
        f"{LABEL_PREFIX}.worker-id": harness.settings.worker_id,
    }
    name = f"{POOL_NAME_PREFIX}python-lost{uuid.uuid4().hex[:8]}"
    await harness.docker.containers.create(
        {"Image": pool.image, "Cmd": ["true"], "Labels": labels}, name=name
    )
    await harness.pools.stop()
    assert await harness.containers() == []


# A worker in its own process: it fills a pool of 2, says so, and waits to be killed.
OWNER = """
import asyncio, os, sys
from streamworker.sandbox.connection import connect, resolve_endpoint
from streamworker.sandbox.pool import PoolManager
from streamworker.settings import load_settings

async def main():
    settings = load_settings(os.environ)
    pools = PoolManager(connect(resolve_endpoint(settings.docker)), settings)
    await pools.start(["python"])
    await pools.wait_ready()
    print("ready", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_pool_containers_stop_when_their_worker_is_killed(
    docker_available: None,
) -> None:
    """`kill -9` drops the attach connections: the serving helpers read EOF and exit,
    so no pooled container keeps running (and holding memory) for nobody."""
    harness = Harness(f"pooltest-{uuid.uuid4().hex[:8]}")
    env = {
        **os.environ,
        **image_env(),
        "STREAMWORKER_WORKER_ID": harness.settings.worker_id,
        "STREAMWORKER_POOL_MIN_SIZE": "2",
        "STREAMWORKER_POOL_MAX_SIZE": "2",
    }
    owner = await asyncio.create_subprocess_exec(
        sys.executable, "-c", OWNER, env=env, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert owner.stdout is not None
        async with asyncio.timeout(90):
            assert (await owner.stdout.readline()).strip() == b"ready"
        running = [c for c in await harness.containers() if c["State"] == "running"]
        assert len(running) == 2
        owner.kill()
        await owner.wait()
        for _ in range(100):
            states = [c["State"] for c in await harness.containers()]
            if "running" not in states:
                break
            await asyncio.sleep(0.1)
        assert states == ["exited", "exited"]
    finally:
        if owner.returncode is None:
            owner.kill()
            await owner.wait()
        for info in await harness.containers():
            await harness.docker.containers.container(str(info["Id"])).delete(force=True)
        await harness.docker.close()


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_no_leak_after_500_runs(harness: Harness) -> None:
    semaphore = asyncio.Semaphore(4)

    async def one() -> Status:
        async with semaphore:
            _, verdict = await harness.run()
            return verdict.status  # type: ignore[attr-defined,no-any-return]

    statuses = await asyncio.gather(*(one() for _ in range(500)))
    assert set(statuses) == {Status.ACCEPTED}
    pool = harness.pools.pools["python"]
    assert pool.created > 2, "the pool should have served and refilled"
    await harness.pools.stop()
    assert await harness.containers() == []
