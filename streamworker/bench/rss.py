"""Peak resident memory of a process and its descendants, sampled from `/proc`.

`VmHWM` is a per-process lifetime peak and cannot be summed across processes, so a
phase's peak is the largest *sum* of `VmRSS` over the tree seen while sampling (every
50 ms by default); the worker's own lifetime `VmHWM` is recorded alongside.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

PROC = Path("/proc")


def status_kb(pid: int, field: str, proc: Path = PROC) -> int | None:
    """A `kB` field (VmRSS, VmHWM) of /proc/<pid>/status; None if the process is gone."""
    try:
        text = (proc / str(pid) / "status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return None


def children_of(proc: Path = PROC) -> dict[int, list[int]]:
    """Parent pid → child pids for every process now visible."""
    tree: dict[int, list[int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: fields start after the last ')'.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def tree_pids(root: int, proc: Path = PROC) -> list[int]:
    """`root` and all its descendants."""
    tree = children_of(proc)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(tree.get(pid, []))
    return found


def tree_rss_kb(root: int, proc: Path = PROC) -> int:
    return sum(status_kb(pid, "VmRSS", proc) or 0 for pid in tree_pids(root, proc))


class RssSampler:
    """Samples a process tree's RSS in the background; `peak_kb` since the last `reset`."""

    def __init__(self, pid: int, interval_s: float = 0.05) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.peak_kb = 0
        self._task: asyncio.Task[None] | None = None

    def reset(self) -> None:
        self.peak_kb = tree_rss_kb(self.pid)

    def start(self) -> None:
        self.reset()
        self._task = asyncio.create_task(self._sample(), name="bench-rss-sampler")

    async def _sample(self) -> None:
        while True:
            # /proc reads are fast enough not to need a thread at this rate.
            self.peak_kb = max(self.peak_kb, tree_rss_kb(self.pid))
            await asyncio.sleep(self.interval_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
