"""CPU seconds used by a process (tree), from `/proc/<pid>/stat`.

On 2 cores, throughput is bounded by who burns the CPU per run: the process driving
Docker (the worker, or the bench for baseline B) and dockerd itself. Recording both per
run is what explains a throughput gap instead of merely showing it.
"""

from __future__ import annotations

import os
from pathlib import Path

from streamworker.bench.rss import PROC, tree_pids

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int, proc: Path = PROC) -> float:
    """User + system CPU of one process (0 if it is gone)."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    # After the command name: state is field 3 of stat(5); utime and stime are 14 and 15.
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S


def tree_cpu_s(root: int, proc: Path = PROC) -> float:
    return sum(process_cpu_s(pid, proc) for pid in tree_pids(root, proc))


def find_pid(command: str, proc: Path = PROC) -> int | None:
    """The first process whose `comm` is `command` (e.g. dockerd), if visible."""
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == command:
                    return int(entry.name)
            except OSError:
                continue
    return None


class CpuMeter:
    """CPU of the process driving Docker and of dockerd (with containerd, its child) over
    one phase, per completed run. Container processes themselves are not counted."""

    def __init__(self, driver_pid: int, with_children: bool, proc: Path = PROC) -> None:
        self.driver_pid = driver_pid
        self.with_children = with_children
        self.dockerd_pid = find_pid("dockerd", proc)
        self.proc = proc
        self._start = (0.0, 0.0)

    def _now(self) -> tuple[float, float]:
        dockerd = tree_cpu_s(self.dockerd_pid, self.proc) if self.dockerd_pid else 0.0
        if self.with_children:
            return tree_cpu_s(self.driver_pid, self.proc), dockerd
        return process_cpu_s(self.driver_pid, self.proc), dockerd

    def start(self) -> None:
        self._start = self._now()

    def per_run_ms(self, runs: int) -> dict[str, float | None]:
        """{'driver_cpu_ms_per_run', 'dockerd_cpu_ms_per_run'} since `start`."""
        driver, dockerd = self._now()
        if runs <= 0:
            return {"driver_cpu_ms_per_run": None, "dockerd_cpu_ms_per_run": None}
        return {
            "driver_cpu_ms_per_run": (driver - self._start[0]) * 1000 / runs,
            "dockerd_cpu_ms_per_run": (dockerd - self._start[1]) * 1000 / runs
            if self.dockerd_pid
            else None,
        }
