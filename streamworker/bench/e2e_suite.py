"""The end-to-end part: one real worker, and per program a parallel baseline B, a
saturation burst, then a fixed offered load at half the saturation throughput.

Order per program: B in parallel first, at the worker's concurrency, so both throughput
figures come from the same minutes; then saturation, because the half-load rate is
derived from it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import tempfile
from collections.abc import Sequence
from pathlib import Path

from streamworker.bench import rounds
from streamworker.bench.cpu import CpuMeter
from streamworker.bench.e2e import KafkaDriver, Phase
from streamworker.bench.gateway_load import GatewayProcess, gateway_rows
from streamworker.bench.options import BenchOptions
from streamworker.bench.profile import recording
from streamworker.bench.programs import Program
from streamworker.bench.results import FAILED, Row, parallel_row
from streamworker.bench.rss import RssSampler, status_kb
from streamworker.bench.scenario import (
    BASELINE_B_PARALLEL,
    E2E_HALF_LOAD,
    E2E_SATURATION,
    Scenario,
)
from streamworker.bench.worker import WorkerProcess, isolated_settings
from streamworker.settings import Settings

log = logging.getLogger(__name__)


def _timeout_s(count: int) -> float:
    """Generous: no phase here should come near it unless the worker is stuck."""
    return 120.0 + 10.0 * count


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _phase_row(
    scenario: str, program: Program, phase: Phase, concurrency: int, **extra: float | None
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


async def _program_rows(
    program: Program,
    options: BenchOptions,
    settings: Settings,
    baseline_b: Scenario,
    driver: KafkaDriver,
    sampler: RssSampler,
    worker_cpu: CpuMeter,
    profile: Path | None = None,
) -> list[Row]:
    conc = settings.concurrency
    for _ in range(options.e2e_warmup):
        await driver.one(program, _timeout_s(1))
    bench_cpu = CpuMeter(os.getpid(), with_children=False)  # not the worker, our child
    bench_cpu.start()
    b_samples, b_elapsed = await rounds.parallel(baseline_b, program, options.burst, conc)
    rows = [
        parallel_row(
            BASELINE_B_PARALLEL,
            program.key,
            b_samples.latencies_s,
            b_samples.errors,
            b_elapsed,
            conc,
            **bench_cpu.per_run_ms(len(b_samples.latencies_s) + len(b_samples.errors)),
        )
    ]
    sampler.reset()
    worker_cpu.start()
    async with recording(sampler.pid, profile):
        burst = await driver.burst(program, options.burst, _timeout_s(options.burst))
    sat = _phase_row(
        E2E_SATURATION,
        program,
        burst,
        conc,
        peak_rss_mib=sampler.peak_kb / 1024,
        **worker_cpu.per_run_ms(options.burst),
    )
    rows.append(sat)
    rate = options.offered_rate_per_s
    if rate is None:
        if sat.status == FAILED or not sat.throughput_per_s:
            return rows
        rate = sat.throughput_per_s / 2
    count = max(options.min_offered, round(rate * options.offered_s))
    log.info("e2e %s: offering %d at %.2f/s", program.key, count, rate)
    sampler.reset()
    worker_cpu.start()
    half = await driver.offered(program, rate, count, _timeout_s(count))
    rows.append(
        _phase_row(
            E2E_HALF_LOAD,
            program,
            half,
            conc,
            offered_rate_per_s=rate,
            peak_rss_mib=sampler.peak_kb / 1024,
            **worker_cpu.per_run_ms(count),
        )
    )
    return rows


async def run_e2e(
    settings: Settings,
    programs: Sequence[Program],
    options: BenchOptions,
    baseline_b: Scenario,
) -> tuple[list[Row], dict[str, object]]:
    """All end-to-end rows, and facts about the worker (settings, lifetime peak RSS)."""
    with tempfile.TemporaryDirectory(prefix="sw-bench-worker-") as tmp:
        worker_settings = isolated_settings(settings, Path(tmp), _free_port())
        if options.prewarm_worker_pools:
            languages = tuple(dict.fromkeys(p.language for p in programs))
            worker_settings = dataclasses.replace(worker_settings, pool_languages=languages)
        worker = WorkerProcess(worker_settings)
        await worker.start()
        sampler = RssSampler(worker.pid)
        sampler.start()
        worker_cpu = CpuMeter(worker.pid, with_children=True)
        driver = KafkaDriver(worker_settings)
        gateway = GatewayProcess(worker_settings, _free_port(), Path(tmp) / "gateway.log")
        rows: list[Row] = []
        try:
            await driver.start()
            for index, program in enumerate(programs):
                rows.extend(
                    await _program_rows(
                        program,
                        options,
                        worker_settings,
                        baseline_b,
                        driver,
                        sampler,
                        worker_cpu,
                        options.profile_path if index == 0 else None,
                    )
                )
            hello = [p for p in programs if p.kind == "hello"]
            if options.gateway and hello:
                await gateway.start()
                for program in hello:
                    rows.extend(
                        await gateway_rows(
                            program,
                            options,
                            worker_settings,
                            driver,
                            gateway.url,
                            _timeout_s(options.burst),
                        )
                    )
            hwm_kb = status_kb(worker.pid, "VmHWM")
        except Exception:
            log.error("e2e failed; worker log tail:\n%s", worker.log_tail())
            raise
        finally:
            await sampler.stop()
            await gateway.stop()
            await driver.stop()
            await worker.stop()
    facts: dict[str, object] = {
        "concurrency": worker_settings.concurrency,
        "processing_guarantee": worker_settings.processing_guarantee,
        "commit_interval_s": worker_settings.commit_interval_s,
        "commit_after_ack_s": worker_settings.commit_after_ack_s,
        "pool_languages": list(worker_settings.pool_languages),
        "pool_min_size": worker_settings.pool_min_size,
        "pool_max_size": worker_settings.pool_max_size,
        "topic_partitions": worker_settings.topic_partitions,
        "lifetime_peak_rss_mib": None if hwm_kb is None else round(hwm_kb / 1024, 1),
    }
    return rows, facts
