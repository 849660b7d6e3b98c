"""Per-run resource limits as domain data: what a run may use, and the stock values.

The contract validates a submission's `limits` against these names, the judge applies
them, settings only override their values from the environment. Kept here, below all
three, so that decoding an event needs nothing of the worker's configuration: this
module imports nothing of the project's.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RunLimits:
    """Per-run resource limits in base-ish units named by the contract."""

    cpu_time_s: float
    wall_time_s: float
    memory_mb: int
    processes: int
    output_kb: int
    file_size_kb: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "cpu_time_s": self.cpu_time_s,
            "wall_time_s": self.wall_time_s,
            "memory_mb": self.memory_mb,
            "processes": self.processes,
            "output_kb": self.output_kb,
            "file_size_kb": self.file_size_kb,
        }


LIMIT_NAMES = ("cpu_time_s", "wall_time_s", "memory_mb", "processes", "output_kb", "file_size_kb")
"""The contract's limit names, in the order the contract lists them."""

DEFAULT_LIMITS = RunLimits(
    cpu_time_s=2.0, wall_time_s=5.0, memory_mb=256, processes=64, output_kb=1024, file_size_kb=10240
)
"""What a run gets when the submission asks for nothing."""
MAX_LIMITS = RunLimits(
    cpu_time_s=20.0,
    wall_time_s=60.0,
    memory_mb=2048,
    processes=256,
    output_kb=16384,
    file_size_kb=65536,
)
"""The most a submission may ask for; more is `invalid_submission`."""
COMPILE_LIMITS = RunLimits(
    cpu_time_s=30.0,
    wall_time_s=60.0,
    memory_mb=1024,
    processes=128,
    output_kb=1024,
    file_size_kb=131072,
)
"""What a compile step gets: compilers need more than the programs they build."""
