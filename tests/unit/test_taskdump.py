"""The SIGUSR1 task dump names the innermost await of a suspended task."""

from __future__ import annotations

import asyncio
from typing import Any

from streamworker.worker.taskdump import await_chain, dump_tasks


async def _inner(event: asyncio.Event) -> None:
    await event.wait()


async def _outer(event: asyncio.Event) -> None:
    await _inner(event)


async def test_chain_goes_down_to_the_future_a_task_waits_on() -> None:
    event = asyncio.Event()
    task = asyncio.create_task(_outer(event), name="stuck-one")
    await asyncio.sleep(0)
    chain = list(await_chain(task.get_coro()))
    assert "in _outer" in chain[0] and "in _inner" in chain[1]
    assert any("in wait" in step for step in chain)  # asyncio.Event.wait
    assert chain[-1].startswith("waiting on <Future pending")
    event.set()
    await task


async def test_async_generators_are_followed() -> None:
    gate = asyncio.Event()

    async def gen() -> object:
        await gate.wait()
        yield 1

    async def consume() -> list[object]:
        return [item async for item in gen()]

    task = asyncio.create_task(consume(), name="consumer")
    await asyncio.sleep(0)
    chain = list(await_chain(task.get_coro()))
    assert any("in consume" in s for s in chain) and any("in gen" in s for s in chain)
    text = dump_tasks()
    assert "task consumer:" in text and "in gen" in text
    gate.set()
    await task


async def test_an_awaited_task_is_followed_into() -> None:
    event = asyncio.Event()
    inner = asyncio.create_task(_inner(event), name="inner-task")

    async def waiter() -> None:
        await inner

    task = asyncio.create_task(waiter(), name="waiter")
    await asyncio.sleep(0)
    chain = list(await_chain(task.get_coro()))
    assert "awaits task inner-task:" in chain
    assert any("in _inner" in step for step in chain)
    event.set()
    await task


class _Wrapped:
    """An awaitable that delegates to a native coroutine, as Faust's actors do."""

    def __init__(self, coro: Any) -> None:
        self.coro = coro

    def __await__(self) -> Any:
        return (yield from self.coro.__await__())


async def test_a_wrapped_coroutine_is_followed_into() -> None:
    event = asyncio.Event()

    async def actor() -> None:
        await _Wrapped(_inner(event))

    task = asyncio.create_task(actor(), name="actor")
    await asyncio.sleep(0)
    chain = list(await_chain(task.get_coro()))
    assert any("in _inner" in step for step in chain), chain
    event.set()
    await task
