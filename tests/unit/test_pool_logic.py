"""Pure parts of warm pools and the memory budget."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import aiodocker
import pytest

from streamworker import metrics
from streamworker.contract import decode_submission
from streamworker.errors import SandboxError
from streamworker.judge import run_limits_for, session_request
from streamworker.languages.registry import get_language
from streamworker.sandbox import recycle as recycle_module
from streamworker.sandbox.budget import MemoryBudget
from streamworker.sandbox.container import remove_container, wait_gone
from streamworker.sandbox.executor import warm_session
from streamworker.sandbox.language_pool import LanguagePool
from streamworker.sandbox.policy import max_time_budget_s, pool_policy, time_budget_s
from streamworker.sandbox.pool import fits
from streamworker.sandbox.pool_sizing import AGE_SPREAD, ArrivalRate, RefillTime, retirement_age
from streamworker.sandbox.pooled import PooledContainer
from streamworker.sandbox.reaper import POOL_NAME_PREFIX
from streamworker.sandbox.spec import ContainerPolicy
from streamworker.settings import Settings


def test_interpreted_pool_policy_is_the_default_run() -> None:
    settings = Settings()
    policy = pool_policy(get_language("python"), settings)
    assert policy.memory_mb == settings.default_limits.memory_mb
    assert policy.processes == settings.default_limits.processes
    assert policy.workspace_mb == settings.workspace_mb


def test_compiled_pool_policy_leaves_room_for_the_compiler() -> None:
    settings = Settings()
    policy = pool_policy(get_language("c"), settings)
    assert policy.memory_mb == settings.compile_limits.memory_mb
    assert policy.processes == settings.compile_limits.processes


def test_language_floor_raises_the_pool_policy() -> None:
    java = get_language("java")
    policy = pool_policy(java, Settings())
    assert policy.memory_mb >= java.limits_floor.get("memory_mb", 0)


def test_fits_ignores_memory_and_pids_but_not_create_time_settings() -> None:
    pooled = ContainerPolicy(memory_mb=256, processes=64, workspace_mb=128)
    assert fits(ContainerPolicy(memory_mb=64, processes=8, workspace_mb=128), pooled)
    assert not fits(ContainerPolicy(memory_mb=256, processes=64, workspace_mb=64), pooled)
    assert not fits(
        ContainerPolicy(memory_mb=256, processes=64, workspace_mb=128, cpus=2.0), pooled
    )


def test_pool_deadline_budget_covers_the_longest_submission() -> None:
    settings = Settings()
    assert max_time_budget_s(settings) > settings.max_limits.wall_time_s * settings.max_test_cases
    for lang_id in ("python", "c", "java"):
        language = get_language(lang_id)
        longest = time_budget_s(
            language, settings.max_limits, settings.compile_limits, settings.max_test_cases
        )
        assert max_time_budget_s(settings) >= longest


@pytest.mark.parametrize("lang_id", ["python", "c", "java"])
def test_a_default_submission_fits_its_pool_and_gets_the_same_caps(lang_id: str) -> None:
    # The pool and the judge share one policy: what the judge asks for a submission
    # that sets no limits is what the pool made, so the warm path is taken unchanged.
    settings = Settings()
    language = get_language(lang_id)
    sub = decode_submission(
        json.dumps({"submission_id": "s", "language": lang_id, "source": "x"}).encode()
    )
    asked = session_request(sub, language, run_limits_for(sub, language, settings), settings)
    pooled = pool_policy(language, settings)
    assert fits(asked.policy, pooled)
    assert (asked.policy.memory_mb, asked.policy.processes) == (
        pooled.memory_mb,
        pooled.processes,
    )


async def test_budget_admits_until_full_then_waits() -> None:
    budget = MemoryBudget(total_mb=512)
    order: list[str] = []
    release = asyncio.Event()

    async def hold(name: str, mb: int) -> None:
        async with budget.reserve(mb):
            order.append(f"in {name}")
            await release.wait()
        order.append(f"out {name}")

    first = asyncio.create_task(hold("a", 256))
    second = asyncio.create_task(hold("b", 256))
    await asyncio.sleep(0.01)
    third = asyncio.create_task(hold("c", 256))
    await asyncio.sleep(0.01)
    assert order == ["in a", "in b"] and budget.used_mb == 512
    release.set()
    await asyncio.gather(first, second, third)
    assert "in c" in order and budget.used_mb == 0


async def test_budget_lets_one_oversized_session_run_alone() -> None:
    budget = MemoryBudget(total_mb=128)
    async with budget.reserve(4096):
        assert budget.used_mb == 4096
    assert budget.used_mb == 0


@pytest.mark.parametrize("mb", [1, 100, 256])
async def test_budget_small_reservations(mb: int) -> None:
    budget = MemoryBudget(total_mb=512)
    async with budget.reserve(mb), budget.reserve(mb):
        assert budget.used_mb == 2 * mb


class _RemovingContainer:
    """A container another removal is already deleting: gone after a few inspections."""

    id = "c0ffee" * 10

    def __init__(self, inspections_left: int) -> None:
        self.inspections_left = inspections_left
        self.deletes = 0

    async def delete(self, **_: object) -> None:
        self.deletes += 1
        raise aiodocker.DockerError(409, "removal already in progress")

    async def show(self) -> dict[str, object]:
        if self.inspections_left == 0:
            raise aiodocker.DockerError(404, "no such container")
        self.inspections_left -= 1
        return {"State": {"Status": "removing"}}


async def test_removal_in_progress_is_waited_out_until_gone() -> None:
    container = _RemovingContainer(inspections_left=3)
    await remove_container(container)  # type: ignore[arg-type]
    assert container.inspections_left == 0 and container.deletes == 1


async def test_removal_wait_is_bounded() -> None:
    container = _RemovingContainer(inspections_left=10_000)
    await asyncio.wait_for(wait_gone(container, timeout_s=0.3), 2.0)  # type: ignore[arg-type]
    assert container.inspections_left > 0


class _Closable:
    id = "fake"

    async def close(self) -> None:
        return None

    async def delete(self, **_: object) -> None:
        return None


class _FakeImages:
    def __init__(self) -> None:
        self.current = "sha256:one"

    async def inspect(self, _ref: str) -> dict[str, str]:
        return {"Id": self.current}


class _FakeDocker:
    def __init__(self) -> None:
        self.images = _FakeImages()


class _FakePool(LanguagePool):
    """A pool whose containers appear when the test releases them (no Docker)."""

    def __init__(
        self, min_size: int = 0, max_size: int = 4, idle_shrink_s: float = 60.0, max_uses: int = 100
    ) -> None:
        settings = Settings(
            pool_check_interval_s=60.0, pool_idle_shrink_s=idle_shrink_s, pool_max_uses=max_uses
        )
        docker = _FakeDocker()
        super().__init__(docker, settings, get_language("python"), "img", min_size, max_size)  # type: ignore[arg-type]
        self.fake_docker = docker
        self.release = asyncio.Semaphore(0)
        self.discarded: list[object] = []
        self.made = 0

    async def _create(self) -> PooledContainer:
        await self.release.acquire()
        self.made += 1
        fake = _Closable()
        image_id = self.fake_docker.images.current
        return PooledContainer(fake, fake, image_id, self.policy, time.monotonic())  # type: ignore[arg-type]

    def _discard(self, pooled: PooledContainer) -> None:
        self.discarded.append(pooled)

    async def wait_ready_for_test(self) -> None:
        while self.size < self.target:  # noqa: ASYNC110 - a test's one-off poll
            await asyncio.sleep(0.001)

    async def ready_one(self) -> None:
        """Let one create finish, and wait until the pool holds its target again."""
        self.release.release()
        await asyncio.wait_for(self.wait_ready_for_test(), 1.0)


async def test_a_miss_is_served_by_the_next_container_the_pool_makes() -> None:
    pool = _FakePool()
    pool.start()
    waiting = asyncio.create_task(pool.acquire(wait_s=5.0))
    await asyncio.sleep(0.01)
    assert pool.waiting == 1 and not waiting.done()
    pool.release.release()
    pooled = await asyncio.wait_for(waiting, 1.0)
    assert pooled is not None and pool.made == 1
    assert pool.size == 0, "the waiter's container must not also be ready"
    await pool.drain()


async def test_a_miss_runs_cold_when_the_pool_is_too_slow() -> None:
    pool = _FakePool()
    pool.start()
    assert await pool.acquire(wait_s=0.05) is None
    assert pool.waiting == 0
    pool.release.release()  # the late container is kept for the next run, not lost
    for _ in range(50):
        await asyncio.sleep(0.01)
        if pool.size:
            break
    assert pool.size == 1 and pool.discarded == []
    await pool.drain()


async def test_a_cancelled_waiter_loses_no_container() -> None:
    pool = _FakePool()
    pool.start()
    waiting = asyncio.create_task(pool.acquire(wait_s=5.0))
    await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    pool.release.release()
    for _ in range(50):
        await asyncio.sleep(0.01)
        if pool.size:
            break
    assert pool.size == 1, "a container made for a waiter that left goes to the ready queue"
    await pool.drain()


async def test_drain_lets_waiters_run_cold_at_once() -> None:
    pool = _FakePool()
    pool.start()
    waiting = asyncio.create_task(pool.acquire(wait_s=30.0))
    await asyncio.sleep(0.01)
    drained = asyncio.create_task(pool.drain())
    assert await asyncio.wait_for(waiting, 1.0) is None
    await drained


async def test_waiters_each_get_their_own_container() -> None:
    pool = _FakePool(max_size=8)
    pool.start()
    waiters = [asyncio.create_task(pool.acquire(wait_s=5.0)) for _ in range(3)]
    await asyncio.sleep(0.01)
    for _ in range(3):
        pool.release.release()
    got = await asyncio.wait_for(asyncio.gather(*waiters), 1.0)
    assert all(g is not None for g in got)
    assert len({id(g) for g in got}) == 3
    await pool.drain()


async def test_an_image_change_replaces_the_ready_containers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("streamworker.sandbox.language_pool.IMAGE_CHECK_MIN_S", 0.0)
    pool = _FakePool(min_size=2)
    for _ in range(4):
        pool.release.release()
    pool.start()
    for _ in range(100):
        await asyncio.sleep(0.01)
        if pool.size == 2:
            break
    old = list(pool._ready)
    assert pool.discarded == [] and len(old) == 2
    pool.fake_docker.images.current = "sha256:two"  # `images build` moved the tag
    pool._changed()
    for _ in range(100):
        await asyncio.sleep(0.01)
        if pool.size == 2 and pool.made == 4:
            break
    assert pool.discarded == old
    assert {p.image_id for p in pool._ready} == {"sha256:two"}
    await pool.drain()


class _FixedRefill(RefillTime):
    """Creates that take `seconds` as far as sizing knows (the fake ones take none)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def observe(self, seconds: float) -> None:
        return None


def _steady_takes(pool: LanguagePool, rate: float, seconds: float) -> None:
    """Feed the pool's estimator a history of steady takes ending now."""
    now = time.monotonic()
    count = round(rate * seconds)
    for i in range(count):
        pool.arrivals.arrive(now - (count - 1 - i) / rate)


async def _until(pool: _FakePool, done: Callable[[], bool], tries: int = 200) -> None:
    """Wake the refill loop until `done` (it re-sizes on every wake)."""
    for _ in range(tries):
        pool._changed()
        await asyncio.sleep(0.01)
        if done():
            return


async def test_the_target_follows_the_observed_take_rate() -> None:
    pool = _FakePool(min_size=1, max_size=8)
    for _ in range(16):
        pool.release.release()
    pool.refill = _FixedRefill(0.5)
    pool.start()
    await _until(pool, lambda: pool.size == 1)
    assert pool.target == 1, "no takes yet: the minimum"
    _steady_takes(pool, rate=4.0, seconds=120.0)
    # 4 takes/s, 0.5 s per refill: 2 under way plus a spare of sqrt(2), rounded up.
    await _until(pool, lambda: pool.size == 4)
    assert pool.target == pool.rate_based_size(time.monotonic()) == 4
    assert pool.size == 4
    await pool.drain()


async def test_a_miss_grows_at_once_and_idle_shrinking_stops_at_the_rate_based_size() -> None:
    pool = _FakePool(min_size=1, max_size=8, idle_shrink_s=0.02)
    pool.refill = _FixedRefill(0.5)
    _steady_takes(pool, rate=4.0, seconds=120.0)
    sized = pool.rate_based_size(time.monotonic())
    assert sized == 4
    for expected in (5, 6, 7):  # nothing ready (no container released): misses
        assert pool.take() is None
        assert pool.target == expected
    pool.start()
    await _until(pool, lambda: pool.target == sized)
    assert pool.target == sized
    # ~15 idle-shrink periods without a miss: the rate holds, so no lower.
    await _until(pool, lambda: pool.target < sized, tries=30)
    assert pool.target == sized
    pool.arrivals = ArrivalRate()  # the takes stop and the estimate forgets them
    await _until(pool, lambda: pool.target == pool.min_size)
    assert pool.target == pool.min_size == 1
    await pool.drain()


async def test_the_pool_publishes_its_target_and_arrival_rate() -> None:
    pool = _FakePool(min_size=1, max_size=8)
    pool.refill = _FixedRefill(0.5)
    _steady_takes(pool, rate=4.0, seconds=120.0)
    pool.start()
    await _until(pool, lambda: pool.target == 4)
    target = metrics.REGISTRY.get_sample_value(
        "streamworker_pool_target_containers", {"language": "python"}
    )
    rate = metrics.REGISTRY.get_sample_value(
        "streamworker_pool_arrival_rate", {"language": "python"}
    )
    assert target == 4
    assert rate == pytest.approx(4.0, rel=0.05)
    await pool.drain()


async def _settled(pool: _FakePool) -> None:
    """Let the refill loop act on what just happened (it runs on the next iterations)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_taken_container_that_will_come_back_starts_no_create() -> None:
    pool = _FakePool(min_size=1)
    pool.start()
    await pool.ready_one()
    for _ in range(3):
        pool.release.release()  # any create the loop starts would finish at once
    taken = pool.take()
    assert taken is not None and taken.lent and taken.uses == 1 and pool.lent == 1
    await _settled(pool)
    assert pool.made == 1, "a container on its way back counts as supply"
    assert pool.put_back(taken)
    assert pool.lent == 0 and pool.size == 1 and pool.take() is taken and taken.uses == 2
    await pool.drain()


async def test_single_use_pools_replace_a_taken_container_at_once() -> None:
    pool = _FakePool(min_size=1, max_uses=1)
    pool.start()
    await pool.ready_one()
    pool.release.release()
    taken = pool.take()
    assert taken is not None and not taken.lent and pool.lent == 0
    await asyncio.wait_for(pool.wait_ready_for_test(), 1.0)
    assert pool.made == 2
    assert not pool.put_back(taken), "a container that served its uses is removed"
    await pool.drain()


async def test_a_container_given_up_is_replaced() -> None:
    pool = _FakePool(min_size=1)
    pool.start()
    await pool.ready_one()
    taken = pool.take()
    assert taken is not None and pool.lent == 1
    pool.give_up(taken)
    pool.give_up(taken)  # idempotent: counted once
    assert pool.lent == 0 and not taken.lent
    await pool.ready_one()
    assert pool.made == 2
    await pool.drain()


async def test_a_returning_container_goes_to_a_waiting_run_first() -> None:
    pool = _FakePool(min_size=1)
    pool.start()
    await pool.ready_one()
    taken = pool.take()
    assert taken is not None
    waiting = asyncio.create_task(pool.acquire(wait_s=5.0))
    await _settled(pool)
    assert pool.waiting == 1
    assert pool.put_back(taken)
    assert await asyncio.wait_for(waiting, 1.0) is taken
    assert taken.uses == 2 and taken.lent and pool.size == 0
    await pool.drain()


async def test_put_back_refuses_an_aged_or_replaced_container_and_a_draining_pool() -> None:
    pool = _FakePool(min_size=1)
    pool.start()
    await pool.ready_one()
    aged = pool.take()
    assert aged is not None
    aged.created_monotonic -= pool.max_idle_s
    assert not pool.put_back(aged) and pool.lent == 0
    await pool.ready_one()
    stale = pool.take()
    assert stale is not None
    stale.image_id = "sha256:other"
    assert not pool.put_back(stale)
    await pool.ready_one()
    last = pool.take()
    assert last is not None
    await pool.drain()
    assert not pool.put_back(last), "a drained pool takes nothing back"


def test_retirement_ages_spread_over_the_last_fifth_never_past_the_max() -> None:
    assert retirement_age(300.0, 0.0) == 300.0
    assert retirement_age(300.0, 0.999) == pytest.approx(300.0 * (1 - AGE_SPREAD * 0.999))
    assert retirement_age(300.0, 1.0) == pytest.approx(240.0)
    assert retirement_age(300.0, -5.0) == 300.0 and retirement_age(300.0, 7.0) == 240.0


async def test_containers_made_together_retire_at_their_own_ages() -> None:
    pool = _FakePool(min_size=4)
    pool.start()
    for _ in range(4):
        pool.release.release()
    await asyncio.wait_for(pool.wait_ready_for_test(), 1.0)
    limits = [p.max_age_s for p in pool._ready]
    assert all(x is not None and 240.0 <= x <= 300.0 for x in limits)
    assert len(set(limits)) == 4, "one shared limit would retire the whole pool at once"
    # Age them all to just past the youngest limit: exactly that one leaves, alone.
    youngest = min(pool._ready, key=lambda p: p.max_age_s or 0.0)
    assert youngest.max_age_s is not None
    for pooled in pool._ready:
        pooled.created_monotonic = time.monotonic() - youngest.max_age_s - 0.001
    assert not youngest.fresh(time.monotonic(), pool.max_idle_s)
    pool._recycle_old()
    assert pool.discarded == [youngest] and pool.size == 3
    await pool.drain()


async def test_an_idle_pool_retires_each_container_when_it_is_due() -> None:
    """Not at the next periodic check (60 s here): each at its own age, so staggered
    limits stay staggered in an idle pool."""
    pool = _FakePool(min_size=2)
    pool.start()
    pool.release.release()
    pool.release.release()
    await asyncio.wait_for(pool.wait_ready_for_test(), 1.0)
    soon, later = list(pool._ready)
    now = time.monotonic()
    soon.max_age_s = now - soon.created_monotonic + 0.05
    later.max_age_s = now - later.created_monotonic + 30.0
    pool._changed()  # the loop looks once more, and then only waits (no more wakes)
    for _ in range(100):
        await asyncio.sleep(0.01)
        if pool.discarded:
            break
    assert pool.discarded == [soon] and later in pool._ready
    await pool.drain()


def test_a_container_without_its_own_limit_keeps_the_pools() -> None:
    fake: Any = _Closable()
    policy = pool_policy(get_language("python"), Settings())
    pooled = PooledContainer(fake, fake, "img", policy, 0.0)
    assert pooled.fresh(299.0, 300.0) and not pooled.fresh(300.0, 300.0)
    pooled.max_age_s = 250.0
    assert not pooled.fresh(250.0, 300.0)


class _FakeSession:
    """What `recycle` asks of a session: a wipe (that may fail) and limits."""

    def __init__(self, wipe_error: Exception | None = None) -> None:
        self.wipe_error = wipe_error
        self.limited: tuple[int, int] | None = None
        self.restricted: list[tuple[int, int]] = []

    async def wipe(self) -> None:
        if self.wipe_error is not None:
            raise self.wipe_error

    async def restrict(self, memory_mb: int, processes: int) -> None:
        self.restricted.append((memory_mb, processes))


class _Renamable(_Closable):
    def __init__(self) -> None:
        self.names: list[str] = []

    async def rename(self, name: str) -> None:
        self.names.append(name)


async def _taken(pool: _FakePool) -> PooledContainer:
    pool.start()
    await pool.ready_one()
    taken = pool.take()
    assert taken is not None
    taken.container = _Renamable()  # type: ignore[assignment]
    return taken


@pytest.fixture
def removed(monkeypatch: pytest.MonkeyPatch) -> list[PooledContainer]:
    """What `recycle` removes, instead of asking Docker to."""
    gone: list[PooledContainer] = []

    async def remove(pooled: PooledContainer) -> None:
        gone.append(pooled)

    monkeypatch.setattr(recycle_module, "remove_pooled", remove)
    return gone


async def test_recycle_puts_back_a_wiped_container_with_its_limits_and_a_pool_name(
    removed: list[PooledContainer],
) -> None:
    pool = _FakePool(min_size=1)
    taken = await _taken(pool)
    session = _FakeSession()
    session.limited = (64, 8)  # the run's, lower than the pool's
    taken.renamed = True  # a long use took the submission's name
    await recycle_module.recycle(pool, taken, session)  # type: ignore[arg-type]
    assert session.restricted == [(pool.policy.memory_mb, pool.policy.processes)]
    names = taken.container.names  # type: ignore[attr-defined]
    assert len(names) == 1 and names[0].startswith(POOL_NAME_PREFIX + "python-")
    assert not taken.renamed
    assert removed == [] and pool.size == 1 and pool.lent == 0
    await pool.drain()


class _Releases:
    """What `warm_session` asks of its pool manager: give the container back."""

    docker = None

    def __init__(self) -> None:
        self.released: list[tuple[PooledContainer, object]] = []

    def release(self, pooled: PooledContainer, session: object) -> None:
        self.released.append((pooled, session))


async def test_a_short_use_is_never_renamed_there_or_back(
    removed: list[PooledContainer],
) -> None:
    pool = _FakePool(min_size=1)
    taken = await _taken(pool)
    pools = _Releases()
    name = "streamworker-short-0123456789-a1"
    async with warm_session(pools, taken, taken.policy, name, rename_after_s=5.0) as session:  # type: ignore[arg-type]
        await asyncio.sleep(0.01)
    assert taken.container.names == [] and not taken.renamed  # type: ignore[attr-defined]
    assert pools.released == [(taken, session)]
    await recycle_module.recycle(pool, taken, _FakeSession())  # type: ignore[arg-type]
    assert taken.container.names == []  # type: ignore[attr-defined]
    assert removed == [] and pool.size == 1
    await pool.drain()


async def test_a_long_use_takes_the_submission_name_and_gives_it_back(
    removed: list[PooledContainer],
) -> None:
    pool = _FakePool(min_size=1)
    taken = await _taken(pool)
    pools = _Releases()
    name = "streamworker-long-0123456789-a1"
    async with warm_session(pools, taken, taken.policy, name, rename_after_s=0.01):  # type: ignore[arg-type]
        await asyncio.sleep(0.1)
        assert taken.container.names == [name]  # type: ignore[attr-defined]
    assert taken.renamed
    await recycle_module.recycle(pool, taken, _FakeSession())  # type: ignore[arg-type]
    names = taken.container.names  # type: ignore[attr-defined]
    assert names[0] == name and names[1].startswith(POOL_NAME_PREFIX) and len(names) == 2
    assert not taken.renamed and removed == [] and pool.size == 1
    await pool.drain()


async def test_a_use_ending_while_its_rename_is_under_way_waits_for_it() -> None:
    """The rename finishes before the container goes back (recycle then renames it back,
    never the other way round)."""
    pool = _FakePool(min_size=1)
    taken = await _taken(pool)
    gate = asyncio.Event()

    class _SlowRename(_Renamable):
        async def rename(self, name: str) -> None:
            await gate.wait()
            self.names.append(name)

    taken.container = _SlowRename()  # type: ignore[assignment]
    pools = _Releases()
    use = warm_session(pools, taken, taken.policy, "streamworker-slow-a1", rename_after_s=0)  # type: ignore[arg-type]
    await use.__aenter__()
    await asyncio.sleep(0.01)  # the rename request is out, unanswered
    ending = asyncio.create_task(use.__aexit__(None, None, None))
    await asyncio.sleep(0.01)
    assert not ending.done() and pools.released == []
    gate.set()
    await ending
    assert taken.container.names == ["streamworker-slow-a1"] and taken.renamed  # type: ignore[attr-defined]
    assert len(pools.released) == 1
    await pool.drain()


async def test_recycle_removes_a_container_its_helper_did_not_wipe(
    removed: list[PooledContainer],
) -> None:
    pool = _FakePool(min_size=1)
    taken = await _taken(pool)
    failures = metrics.POOL_RECYCLE_FAILURES.labels("python")._value.get()
    session = _FakeSession(SandboxError("the sandbox helper did not wipe the container"))
    await recycle_module.recycle(pool, taken, session)  # type: ignore[arg-type]
    assert removed == [taken] and pool.size == 0 and pool.lent == 0
    assert taken.container.names == []  # type: ignore[attr-defined]
    assert metrics.POOL_RECYCLE_FAILURES.labels("python")._value.get() == failures + 1
    await pool.drain()


async def test_a_miss_a_container_being_wiped_will_serve_does_not_grow_the_pool(
    removed: list[PooledContainer],
) -> None:
    pool = _FakePool(min_size=1)
    taken = await _taken(pool)
    target = pool.target
    pool.recycling_started(taken)
    assert pool.recycling == 1
    made = pool.made
    waiting = asyncio.create_task(pool.acquire(5.0))  # a miss: the wiped one will come
    await asyncio.sleep(0.01)
    assert pool.target == target and not waiting.done()
    pool.release.release()  # a create started for the waiter would finish now
    await asyncio.sleep(0.02)
    assert pool.made == made and not waiting.done(), "no create for a waiter the wipe serves"
    assert pool.take() is None  # a second miss: nothing is being wiped for it
    assert pool.target == target + 1
    await recycle_module.recycle(pool, taken, _FakeSession())  # type: ignore[arg-type]
    assert await waiting is taken and pool.recycling == 0 and not taken.recycling
    await pool.drain()


async def test_a_failed_wipe_stops_counting_as_coming_back(
    removed: list[PooledContainer],
) -> None:
    pool = _FakePool(min_size=1)
    taken = await _taken(pool)
    pool.recycling_started(taken)
    pool.recycling_started(taken)  # counted once
    assert pool.recycling == 1 and pool.lent == 1
    await recycle_module.recycle(pool, taken, _FakeSession(SandboxError("no wipe")))  # type: ignore[arg-type]
    assert pool.recycling == 0 and pool.lent == 0 and removed == [taken]
    await pool.drain()
