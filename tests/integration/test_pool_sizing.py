"""Pool sizing on real Docker: a steady take rate grows the pool to its Little's-law
size, takes are then served by the pool (hits, or a wait for its next container) rather
than cold, and the pool shrinks back to its minimum when idle.

Takes go straight to the pool (no run in the container, which is removed at once, as
with `STREAMWORKER_POOL_MAX_USES=1`), so the test costs container creates and removals
only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from streamworker import metrics
from streamworker.sandbox.connection import connect, resolve_endpoint
from streamworker.sandbox.language_pool import LanguagePool
from streamworker.sandbox.pool import PoolManager
from streamworker.sandbox.pool_sizing import target_size
from streamworker.sandbox.pooled import remove_later
from streamworker.sandbox.spec import LABEL_PREFIX
from streamworker.settings import load_settings
from tests.conftest import image_env

pytestmark = [pytest.mark.integration]

RATE = 4.0
"""Takes per second: steady, one every 250 ms — enough that the Little's-law size exceeds
the minimum even when this daemon creates a container in well under 200 ms."""
WARM_S = 15.0
MEASURE_S = 10.0
MIN_SIZE, MAX_SIZE = 1, 8


@pytest_asyncio.fixture
async def pools(docker_available: None) -> AsyncIterator[PoolManager]:
    settings = load_settings(
        {
            "STREAMWORKER_WORKER_ID": f"poolsizing-{uuid.uuid4().hex[:8]}",
            "STREAMWORKER_POOL_MIN_SIZE": str(MIN_SIZE),
            "STREAMWORKER_POOL_MAX_SIZE": str(MAX_SIZE),
            "STREAMWORKER_POOL_IDLE_SHRINK_S": "1",
            **image_env(),
        }
    )
    # Re-size often, so that shrinking shows within the test's time.
    settings = dataclasses.replace(settings, pool_check_interval_s=0.25)
    docker = connect(resolve_endpoint(settings.docker))
    manager = PoolManager(docker, settings)
    await manager.start(["python"])
    await manager.wait_ready()
    try:
        yield manager
    finally:
        await manager.stop()
        filters = {"label": [f"{LABEL_PREFIX}.worker-id={settings.worker_id}"]}
        for c in await docker.containers.list(all=True, filters=json.dumps(filters)):
            await c.delete(force=True)
        await docker.close()


def counted(name: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, {"language": "python"}) or 0.0


def gauges_after_resize(pool: LanguagePool) -> tuple[float, float]:
    """The target and arrival-rate gauges as this pool's own resize sets them.

    The gauges are per language in the process-wide registry, and pytest's loop is
    session-wide: another test's python pool may set them at any await. A resize and
    the read with no await between them see this pool's values only."""
    pool._resize()
    return (
        counted("streamworker_pool_target_containers"),
        counted("streamworker_pool_arrival_rate"),
    )


def waits(outcome: str) -> float:
    return (
        metrics.REGISTRY.get_sample_value(
            "streamworker_pool_wait_duration_seconds_count",
            {"language": "python", "outcome": outcome},
        )
        or 0.0
    )


async def take_and_remove(pool: LanguagePool, wait_s: float) -> None:
    """A take whose container is removed, not recycled: sizing for single use."""
    pooled = await pool.acquire(wait_s)
    if pooled is not None:
        pool.give_up(pooled)
        remove_later(pooled)


async def feed(pool: LanguagePool, rate: float, seconds: float, wait_s: float) -> float:
    """One take every 1/rate seconds on schedule, whether or not earlier ones waited;
    returns the `time.monotonic()` of the last take.

    That moment, not the end of the feed, is when the rate estimate shows the rate fed:
    the last takes may wait for a create (seconds on a busy machine), and the estimate
    decays meanwhile, as it should."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    takes = []
    for i in range(round(rate * seconds)):
        await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
        takes.append(asyncio.create_task(take_and_remove(pool, wait_s)))
    await asyncio.sleep(0)  # the last take has arrived (its `take` ran)
    last = time.monotonic()
    await asyncio.gather(*takes)
    return last


@pytest.mark.timeout(200)
async def test_a_steady_rate_sizes_the_pool_and_idle_shrinks_it(pools: PoolManager) -> None:
    pool = pools.pools["python"]
    wait_s = pools.settings.pool_wait_s
    assert pool.target == MIN_SIZE
    await feed(pool, RATE, WARM_S, wait_s)
    hits, misses, cold = (
        counted("streamworker_pool_hits_total"),
        counted("streamworker_pool_misses_total"),
        waits("cold"),
    )
    last_take = await feed(pool, RATE, MEASURE_S, wait_s)
    hits = counted("streamworker_pool_hits_total") - hits
    misses = counted("streamworker_pool_misses_total") - misses
    cold = waits("cold") - cold

    fed_rate = pool.arrivals.rate(last_take)
    now = time.monotonic()
    rate, refill_s = pool.arrivals.rate(now), pool.refill.seconds
    sized = target_size(rate, refill_s, MIN_SIZE, MAX_SIZE)
    print(f"rate {rate:.2f}/s refill {refill_s}s sized {sized} target {pool.target}")
    print(f"measured {MEASURE_S:.0f}s: hits {hits:.0f} misses {misses:.0f} cold {cold:.0f}")
    # 2.5 time constants in: the estimate has caught up to within about a tenth.
    assert 0.8 * RATE < fed_rate < 1.1 * RATE, f"{fed_rate:.2f}/s at the last take"
    assert refill_s is not None and refill_s > 0
    assert pool.target >= sized == pool.rate_based_size(now) > MIN_SIZE
    assert gauges_after_resize(pool)[0] == pool.target
    # Takes find a container ready or get the pool's next one; hardly any runs cold.
    # (How many wait rather than hit depends on how fast the daemon creates containers
    # on a loaded machine, which no pool size hides: printed, not asserted.)
    assert hits > 0, "once sized for the rate, takes find containers ready"
    assert cold <= 0.25 * RATE * MEASURE_S, "the pool, not cold starts, serves the takes"

    async with asyncio.timeout(90):  # the rate decays with tau 10 s, then a step a second
        while (  # noqa: ASYNC110
            pool.target > MIN_SIZE
            or pool.size > MIN_SIZE
            or pool.arrivals.rate(time.monotonic()) >= rate
        ):
            await asyncio.sleep(0.25)
    print(f"idle: target {pool.target} at rate {pool.arrivals.rate(time.monotonic()):.2f}/s")
    target_gauge, rate_gauge = gauges_after_resize(pool)
    assert target_gauge == MIN_SIZE
    assert rate_gauge < rate, "the estimate decays"


BURST = 24
CONCURRENCY = 4
"""The worker's default: at most this many runs hold a container at once."""
RUN_S = 0.3


async def run_one(pool: LanguagePool, slots: asyncio.Semaphore, wait_s: float) -> None:
    """A run as the worker makes one: a slot, a container, some work, the removal."""
    async with slots:
        pooled = await pool.acquire(wait_s)
        await asyncio.sleep(RUN_S)
        if pooled is not None:
            remove_later(pooled)


async def test_a_burst_is_met_by_misses_that_grow_the_pool_and_wait_for_it(
    pools: PoolManager,
) -> None:
    """A burst at the worker's concurrency: every take is a hit or a miss, every miss
    is served by the pool or runs cold, and the misses raise the target at once."""
    pool = pools.pools["python"]
    names = ("hits_total", "misses_total")
    before = [counted(f"streamworker_pool_{n}") for n in names] + [waits("served"), waits("cold")]
    slots = asyncio.Semaphore(CONCURRENCY)
    began = time.monotonic()
    await asyncio.gather(*(run_one(pool, slots, pools.settings.pool_wait_s) for _ in range(BURST)))
    after = [counted(f"streamworker_pool_{n}") for n in names] + [waits("served"), waits("cold")]
    hits, misses, served, cold = (a - b for a, b in zip(after, before, strict=True))
    rate = pool.arrivals.rate(time.monotonic())
    took = time.monotonic() - began
    print(
        f"burst {BURST} at concurrency {CONCURRENCY} in {took:.1f} s (no wait: "
        f"{BURST * RUN_S / CONCURRENCY:.1f} s): hits {hits:.0f} misses {misses:.0f}"
    )
    print(f"waits served {served:.0f} cold {cold:.0f}; target {pool.target} rate {rate:.2f}/s")
    assert hits + misses == BURST
    assert served + cold == misses
    assert misses > 0, "the burst is faster than a pool of one"
    assert pool.target > MIN_SIZE, "each miss raised the target at once"
