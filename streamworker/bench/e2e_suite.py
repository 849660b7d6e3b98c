"""The end-to-end part: a real worker (one per `--loops` event loop), and per program a
parallel baseline B, submissions one at a time, a saturation burst, then a fixed offered
load at half the saturation throughput.

Order per program: B in parallel first, at the worker's concurrency, so both throughput
figures come from the same minutes; sequential before saturation, so nothing is queued
behind it; then saturation, because the half-load rate is derived from it. With several
workers, each phase runs on each worker in turn before the next phase starts (the order
rotates per program), so drift hits every loop alike.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from streamworker.bench import kafka_floor, rounds
from streamworker.bench.cpu import CpuMeter
from streamworker.bench.e2e import Phase
from streamworker.bench.e2e_workers import BenchWorker, free_port
from streamworker.bench.gateway_load import GatewayProcess, gateway_rows
from streamworker.bench.options import BenchOptions
from streamworker.bench.profile import recording
from streamworker.bench.programs import Program
from streamworker.bench.results import FAILED, Row, parallel_row, sequential_row
from streamworker.bench.scenario import (
    BASELINE_B_PARALLEL,
    E2E_HALF_LOAD,
    E2E_SATURATION,
    E2E_SEQUENTIAL,
    KAFKA_FLOOR_PLAIN,
    KAFKA_FLOOR_TXN,
    Scenario,
)
from streamworker.settings import Settings

log = logging.getLogger(__name__)


def _timeout_s(count: int) -> float:
    """Generous: no phase here should come near it unless the worker is stuck."""
    return 120.0 + 10.0 * count


async def _measured(
    worker: BenchWorker, program: Program, run: Callable[[], Awaitable[Phase]]
) -> tuple[Phase, dict[str, Any]]:
    """Run one phase on `worker`; the phase and its figures (RSS, CPU, pool, loop)."""
    await worker.begin_phase()
    phase = await run()
    runs = len(phase.latencies_s) + len(phase.errors)
    return phase, await worker.end_phase(program.language, runs)


def _phase_row(
    scenario: str, program: Program, phase: Phase, concurrency: int, **extra: Any
) -> Row:
    return parallel_row(
        scenario,
        program.key,
        phase.latencies_s,
        phase.errors,
        phase.elapsed_s,
        concurrency,
        **extra,
    )


async def _parallel_b(
    program: Program, options: BenchOptions, baseline_b: Scenario, conc: int
) -> Row:
    bench_cpu = CpuMeter(os.getpid(), with_children=False)  # not the worker, our child
    bench_cpu.start()
    samples, elapsed = await rounds.parallel(baseline_b, program, options.burst, conc)
    runs = len(samples.latencies_s) + len(samples.errors)
    return parallel_row(
        BASELINE_B_PARALLEL,
        program.key,
        samples.latencies_s,
        samples.errors,
        elapsed,
        conc,
        **bench_cpu.per_run_ms(runs),
    )


async def _sequential(worker: BenchWorker, program: Program, options: BenchOptions) -> Row:
    run = functools.partial(worker.driver.sequential, program, options.iterations, _timeout_s(1))
    phase, figures = await _measured(worker, program, run)
    return sequential_row(E2E_SEQUENTIAL, program.key, phase.latencies_s, phase.errors, **figures)


async def _saturation(
    worker: BenchWorker, program: Program, options: BenchOptions, profile: Path | None
) -> Row:
    async def burst() -> Phase:
        async with recording(worker.process.pid, profile):
            return await worker.driver.burst(program, options.burst, _timeout_s(options.burst))

    phase, figures = await _measured(worker, program, burst)
    return _phase_row(E2E_SATURATION, program, phase, worker.settings.concurrency, **figures)


async def _half_load(
    worker: BenchWorker, program: Program, options: BenchOptions, sat: Row
) -> Row | None:
    """At `--offered-rate`, or half of this worker's saturation (None if that failed)."""
    rate = options.offered_rate_per_s
    if rate is None:
        if sat.status == FAILED or not sat.throughput_per_s:
            return None
        rate = sat.throughput_per_s / 2
    count = max(options.min_offered, round(rate * options.offered_s))
    log.info("e2e %s [%s]: offering %d at %.2f/s", program.key, worker.event_loop, count, rate)
    run = functools.partial(worker.driver.offered, program, rate, count, _timeout_s(count))
    phase, figures = await _measured(worker, program, run)
    conc = worker.settings.concurrency
    return _phase_row(E2E_HALF_LOAD, program, phase, conc, offered_rate_per_s=rate, **figures)


async def _program_rows(
    program: Program,
    options: BenchOptions,
    baseline_b: Scenario,
    workers: Sequence[BenchWorker],
    profile: Path | None = None,
) -> list[Row]:
    """One program's e2e rows; `profile` records the first worker's saturation burst."""
    for worker in workers:
        for _ in range(options.e2e_warmup):
            await worker.driver.one(program, _timeout_s(1))
    rows = [await _parallel_b(program, options, baseline_b, workers[0].settings.concurrency)]
    for worker in workers:
        rows.append(await _sequential(worker, program, options))
    saturations = []
    for index, worker in enumerate(workers):
        sat = await _saturation(worker, program, options, profile if index == 0 else None)
        saturations.append(sat)
        rows.append(sat)
    for worker, sat in zip(workers, saturations, strict=True):
        half = await _half_load(worker, program, options, sat)
        if half is not None:
            rows.append(half)
    return rows


async def _gateway_rows(
    worker: BenchWorker, programs: Sequence[Program], options: BenchOptions, tmp: Path
) -> list[Row]:
    """HTTP gateway vs Kafka bursts for the hello programs, on `worker` only."""
    hello = [p for p in programs if p.kind == "hello"]
    if not options.gateway or not hello:
        return []
    gateway = GatewayProcess(worker.settings, free_port(), tmp / "gateway.log")
    rows: list[Row] = []
    try:
        await gateway.start()
        for program in hello:
            timeout = _timeout_s(options.burst)
            pair = await gateway_rows(
                program, options, worker.settings, worker.driver, gateway.url, timeout
            )
            rows.extend(dataclasses.replace(row, event_loop=worker.event_loop) for row in pair)
    finally:
        await gateway.stop()
    return rows


async def _kafka_floor_rows(settings: Settings, count: int) -> list[Row]:
    """The commit-latency floor (`kafka_floor`): Kafka alone, before any program."""
    try:
        plain, txn = await kafka_floor.measure(settings, count)
    except Exception as exc:  # reported as a failed row; the e2e part goes on
        log.warning("the Kafka floor could not be measured: %s", exc)
        error = [f"{type(exc).__name__}: {exc}"]
        return [
            sequential_row(name, "kafka", [], error)
            for name in (KAFKA_FLOOR_PLAIN, KAFKA_FLOOR_TXN)
        ]
    return [
        sequential_row(KAFKA_FLOOR_PLAIN, "kafka", plain.latencies_s, plain.errors),
        sequential_row(KAFKA_FLOOR_TXN, "kafka", txn.latencies_s, txn.errors),
    ]


def _rotated(workers: Sequence[BenchWorker], by: int) -> list[BenchWorker]:
    shift = by % len(workers)
    return [*workers[shift:], *workers[:shift]]


async def run_e2e(
    settings: Settings,
    programs: Sequence[Program],
    options: BenchOptions,
    baseline_b: Scenario,
) -> tuple[list[Row], dict[str, object]]:
    """All end-to-end rows, and facts about the workers (settings, lifetime peak RSS)."""
    loops = options.worker_loops(settings.event_loop)
    judged = options.judged_loop(settings.event_loop)
    base = settings
    if options.prewarm_worker_pools:
        languages = tuple(dict.fromkeys(p.language for p in programs))
        base = dataclasses.replace(settings, pool_languages=languages)
    with tempfile.TemporaryDirectory(prefix="sw-bench-worker-") as tmp:
        ordered = [judged, *(loop for loop in loops if loop != judged)]
        workers = [BenchWorker(base, loop, Path(tmp) / loop) for loop in ordered]
        rows: list[Row] = []
        try:
            for worker in workers:
                await worker.start()
            rows.extend(await _kafka_floor_rows(settings, options.iterations))
            for index, program in enumerate(programs):
                profile = options.profile_path if index == 0 else None
                turn = _rotated(workers, index)
                rows.extend(await _program_rows(program, options, baseline_b, turn, profile))
            rows.extend(await _gateway_rows(workers[0], programs, options, Path(tmp)))
        except Exception:
            for worker in workers:
                log.error(
                    "e2e failed; %s worker log tail:\n%s",
                    worker.event_loop,
                    worker.process.log_tail(),
                )
            raise
        finally:
            for worker in workers:
                try:
                    await worker.stop()
                except Exception:  # still stop the others; the first error stays the one raised
                    log.exception("stopping the %s bench worker failed", worker.event_loop)
    facts: dict[str, object] = {**workers[0].facts(), "judged_event_loop": judged}
    if len(workers) > 1:
        facts["workers"] = [worker.facts() for worker in workers]
    return rows, facts
