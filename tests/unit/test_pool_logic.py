"""Pure parts of warm pools and the memory budget."""

from __future__ import annotations

import asyncio

import aiodocker
import pytest

from streamworker.languages.registry import get_language
from streamworker.sandbox.budget import MemoryBudget
from streamworker.sandbox.pool import _remove, _wait_gone, fits, max_budget_s, pool_policy
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
    assert max_budget_s(settings) > settings.max_limits.wall_time_s * settings.max_test_cases


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
    await _remove(container)  # type: ignore[arg-type]
    assert container.inspections_left == 0 and container.deletes == 1


async def test_removal_wait_is_bounded() -> None:
    container = _RemovingContainer(inspections_left=10_000)
    await asyncio.wait_for(_wait_gone(container, timeout_s=0.3), 2.0)  # type: ignore[arg-type]
    assert container.inspections_left > 0
