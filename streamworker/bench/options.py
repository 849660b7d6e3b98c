"""What one benchmark run does: programs, iterations, and the end-to-end load shape."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class BenchOptions:
    """Defaults are the full benchmark; `quick()` is the smoke-test size."""

    languages: tuple[str, ...] = ("python", "c", "java")
    kinds: tuple[str, ...] = ("hello", "cpu")
    iterations: int = 30
    """Measured runs per in-process scenario per program, and per sequential e2e phase."""
    warmup: int = 3
    """Interleaved rounds run first and discarded (image cache, JIT, pool fill)."""
    e2e: bool = True
    burst: int = 40
    """Submissions in the saturation burst, and in the parallel baseline-B burst."""
    offered_s: float = 30.0
    """How long the half-saturation phase offers load."""
    min_offered: int = 20
    """At least this many submissions in the half-saturation phase (slow languages)."""
    offered_rate_per_s: float | None = None
    """Fixed offered load; None means half the saturation throughput just measured."""
    e2e_warmup: int = 3
    """Submissions per program sent through the worker first and discarded."""
    gateway: bool = True
    """Also drive the worker through the HTTP gateway (hello programs), paired with Kafka."""
    gateway_rounds: int = 3
    """Bursts each way, alternating HTTP and Kafka."""
    profile_path: Path | None = None
    """Record the worker with py-spy during the first saturation burst (a flame graph)."""
    loops: tuple[str, ...] = ()
    """Event loops to run a bench worker each with, phases alternating between them;
    empty means one worker on the loop the environment selects."""
    prewarm_worker_pools: bool = True
    """Start the bench worker with warm pools for the benchmarked languages."""
    json_path: Path | None = None
    command: str = "streamworker bench"
    """Recorded in the JSON, so a result says how to reproduce it."""

    @classmethod
    def quick(cls, **overrides: Any) -> BenchOptions:
        """A few iterations and small bursts: minutes become seconds, numbers get noisy."""
        small = cls(
            iterations=3,
            warmup=1,
            burst=8,
            offered_s=5.0,
            min_offered=5,
            e2e_warmup=1,
            gateway_rounds=1,
        )
        return dataclasses.replace(small, **overrides)

    def worker_loops(self, default: str) -> tuple[str, ...]:
        """The bench workers' event loops, `default` being the environment's."""
        return self.loops or (default,)

    def judged_loop(self, default: str) -> str:
        """The loop whose e2e rows the targets are judged on: the environment's if it
        runs, else the first one asked for."""
        loops = self.worker_loops(default)
        return default if default in loops else loops[0]

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["json_path"] = str(self.json_path) if self.json_path else None
        out["profile_path"] = str(self.profile_path) if self.profile_path else None
        return out
