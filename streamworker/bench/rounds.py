"""Running scenarios: interleaved rounds for latency, a bounded-concurrency burst for
throughput. Timing lives here, around `run_once`, identically for every scenario."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from streamworker.bench.programs import Program
from streamworker.bench.scenario import Scenario

log = logging.getLogger(__name__)


@dataclass
class Samples:
    """Kept latencies (seconds) and errors of one scenario and program."""

    latencies_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def run_id(scenario: str, program: Program) -> str:
    """A unique submission id / container name for one run."""
    return f"bench-{scenario.split('_')[-1]}-{program.key}-{uuid.uuid4().hex[:10]}"


async def timed(scenario: Scenario, program: Program) -> tuple[float, str | None]:
    """(seconds, error or None) of one run. Any failure is an error sample, never a crash:
    a benchmark reports what broke rather than dying after ten minutes of work."""
    began = time.perf_counter()
    try:
        await scenario.run_once(program, run_id(scenario.name, program))
    except Exception as exc:
        return time.perf_counter() - began, f"{type(exc).__name__}: {exc}"
    return time.perf_counter() - began, None


async def interleaved(
    scenarios: Sequence[Scenario], programs: Sequence[Program], warmup: int, iterations: int
) -> dict[tuple[str, str], Samples]:
    """Round-robin: every round runs every program under every scenario once.

    Drift (a busy neighbour, page cache, thermal) thus hits all scenarios alike. The
    starting scenario rotates each round, so none always runs right after the same
    other one. The first `warmup` rounds are discarded.
    """
    samples = {(s.name, p.key): Samples() for s in scenarios for p in programs}
    total = warmup + iterations
    for rnd in range(total):
        began = time.perf_counter()
        shift = rnd % len(scenarios)
        order = [*scenarios[shift:], *scenarios[:shift]]
        for program in programs:
            for scenario in order:
                elapsed, error = await timed(scenario, program)
                await scenario.settle()
                if rnd < warmup:
                    continue
                kept = samples[(scenario.name, program.key)]
                if error is None:
                    kept.latencies_s.append(elapsed)
                else:
                    log.warning("%s %s failed: %s", scenario.name, program.key, error)
                    kept.errors.append(error)
        phase = "warm-up" if rnd < warmup else "measured"
        log.info("round %d/%d (%s) took %.1fs", rnd + 1, total, phase, time.perf_counter() - began)
    return samples


async def parallel(
    scenario: Scenario, program: Program, count: int, concurrency: int
) -> tuple[Samples, float]:
    """`count` runs with at most `concurrency` at once; (samples, wall seconds)."""
    gate = asyncio.Semaphore(concurrency)
    samples = Samples()

    async def one() -> None:
        async with gate:
            elapsed, error = await timed(scenario, program)
        if error is None:
            samples.latencies_s.append(elapsed)
        else:
            samples.errors.append(error)

    began = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    return samples, time.perf_counter() - began
