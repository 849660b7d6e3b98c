"""Where every asyncio task is waiting, down to the innermost await (for a hung worker).

`kill -USR1 <worker pid>` writes this to the log. asyncio's own task stacks stop at the
task's outer coroutine, so a stalled agent shows as "agent.py: await coro"; this walks
each coroutine's `cr_await` chain (and async generators' `ag_await`) to the frame that
is actually suspended.
"""

from __future__ import annotations

import asyncio
import gc
import types
from collections.abc import Iterator
from typing import Any


def await_chain(awaitable: Any) -> Iterator[str]:
    """`file:line in function` for each suspended frame, outermost first."""
    seen: set[int] = set()
    current = awaitable
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frame = getattr(current, "cr_frame", None) or getattr(current, "ag_frame", None)
        frame = frame or getattr(current, "gi_frame", None)
        if isinstance(frame, types.FrameType):
            code = frame.f_code
            yield f"{code.co_filename}:{frame.f_lineno} in {code.co_name}"
        elif isinstance(current, asyncio.Task):
            yield f"awaits task {current.get_name()}:"
            current = current.get_coro()
            continue
        elif isinstance(current, asyncio.Future):
            yield f"waiting on {_short(current)}"
            return
        else:
            yield f"in {_short(current)}"
        nxt = (
            getattr(current, "cr_await", None)
            or getattr(current, "ag_await", None)
            or getattr(current, "gi_yieldfrom", None)
        )
        current = _unwrap(nxt) if nxt is not None else None


# What a chain step can be: something with a suspended frame, or the future at its end.
_FOLLOWED = (
    asyncio.Future,
    types.CoroutineType,
    types.AsyncGeneratorType,
    types.GeneratorType,
)

_FRAMES = ("cr_frame", "ag_frame", "gi_frame")  # coroutine-likes of other types


def _unwrap(obj: Any) -> Any:
    """The generator or future behind an await's helper object.

    `async for` awaits an `async_generator_asend`, `await future` a future iterator and
    `yield from coro.__await__()` (Faust's actors) a `coroutine_wrapper`; none exposes
    what it wraps, but each holds a reference to it.
    """
    if isinstance(obj, _FOLLOWED) or any(hasattr(obj, f) for f in _FRAMES):
        return obj
    return next((ref for ref in gc.get_referents(obj) if isinstance(ref, _FOLLOWED)), obj)


def _short(obj: Any, limit: int = 200) -> str:
    text = repr(obj)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def dump_tasks(loop: asyncio.AbstractEventLoop | None = None) -> str:
    """Every pending task of `loop` (the running one by default) with its await chain."""
    tasks = asyncio.all_tasks(loop or asyncio.get_running_loop())
    blocks = []
    for task in sorted(tasks, key=lambda t: t.get_name()):
        lines = [f"task {task.get_name()}:"]
        lines.extend(f"  {step}" for step in await_chain(task.get_coro()))
        blocks.append("\n".join(lines))
    return f"{len(blocks)} asyncio task(s)\n" + "\n".join(blocks)
