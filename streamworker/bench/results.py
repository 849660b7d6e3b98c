"""One row of the results table and its ratios to baseline B. Pure."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from streamworker.bench.pool_metrics import PoolCounts
from streamworker.bench.scenario import (
    BASELINE_A,
    BASELINE_B,
    BASELINE_B_PARALLEL,
    E2E_HALF_LOAD,
    E2E_SATURATION,
    E2E_SEQUENTIAL,
)
from streamworker.bench.stats import Summary, ratio, summarize, throughput_per_s

OK = "ok"
FAILED = "failed"
NOT_AVAILABLE = "not available"

PARALLEL_SCENARIOS = frozenset({BASELINE_B_PARALLEL, E2E_SATURATION, E2E_HALF_LOAD})
"""Rows whose throughput is compared with B run at the worker's concurrency."""


@dataclass(frozen=True)
class Row:
    """One scenario and program: latency summary, throughput, errors and, for e2e rows,
    the worker's RSS, CPU, pool figures and event loop."""

    scenario: str
    program: str
    status: str
    latency: Summary | None = None
    throughput_per_s: float | None = None
    concurrency: int = 1
    errors: int = 0
    first_error: str | None = None
    offered_rate_per_s: float | None = None
    peak_rss_mib: float | None = None
    driver_cpu_ms_per_run: float | None = None
    """CPU of the process driving Docker (the worker; the bench for parallel B)."""
    dockerd_cpu_ms_per_run: float | None = None
    pool: PoolCounts | None = None
    """Pool hits, misses and waits of the phase's language during the phase (e2e rows)."""
    event_loop: str | None = None
    """The bench worker's event loop (e2e rows)."""
    note: str = ""


def sequential_row(
    scenario: str,
    program: str,
    latencies_s: Sequence[float],
    errors: Sequence[str],
    **extra: Any,
) -> Row:
    """A one-at-a-time scenario: throughput is back-to-back runs per second (1 / mean)."""
    if not latencies_s:
        return Row(
            scenario, program, FAILED, errors=len(errors), first_error=_first(errors), **extra
        )
    return Row(
        scenario,
        program,
        OK,
        latency=summarize(latencies_s),
        throughput_per_s=throughput_per_s(len(latencies_s), math.fsum(latencies_s)),
        errors=len(errors),
        first_error=_first(errors),
        **extra,
    )


def parallel_row(
    scenario: str,
    program: str,
    latencies_s: Sequence[float],
    errors: Sequence[str],
    elapsed_s: float,
    concurrency: int,
    **extra: Any,
) -> Row:
    """A concurrent phase: throughput is completed runs over the phase's wall time."""
    if not latencies_s:
        return Row(
            scenario, program, FAILED, errors=len(errors), first_error=_first(errors), **extra
        )
    return Row(
        scenario,
        program,
        OK,
        latency=summarize(latencies_s),
        throughput_per_s=throughput_per_s(len(latencies_s), elapsed_s),
        concurrency=concurrency,
        errors=len(errors),
        first_error=_first(errors),
        **extra,
    )


def _first(errors: Sequence[str]) -> str | None:
    return errors[0][:300] if errors else None


def find(rows: Sequence[Row], scenario: str, program: str) -> Row | None:
    for row in rows:
        if row.scenario == scenario and row.program == program and row.status == OK:
            return row
    return None


def ratios(row: Row, rows: Sequence[Row]) -> dict[str, float | None]:
    """Latency percentiles over B's (sequential) and throughput over B's at equal concurrency."""
    b = find(rows, BASELINE_B, row.program)
    b_thr = find(
        rows, BASELINE_B_PARALLEL if row.scenario in PARALLEL_SCENARIOS else BASELINE_B, row.program
    )
    lat, base = row.latency, (b.latency if b else None)
    return {
        "p50": ratio(lat.p50 if lat else None, base.p50 if base else None),
        "p95": ratio(lat.p95 if lat else None, base.p95 if base else None),
        "p99": ratio(lat.p99 if lat else None, base.p99 if base else None),
        # At a fixed offered load throughput is the offered rate, not a capacity: no ratio.
        "throughput": None
        if row.scenario == E2E_HALF_LOAD
        else ratio(row.throughput_per_s, b_thr.throughput_per_s if b_thr else None),
    }


def ratio_to_a(row: Row, rows: Sequence[Row]) -> float | None:
    """p50 over A's (`docker run --rm`) p50, for the sequential e2e row only: what a
    caller without streamworker would do one submission at a time."""
    a = find(rows, BASELINE_A, row.program)
    if row.scenario != E2E_SEQUENTIAL or a is None or a.latency is None or row.latency is None:
        return None
    return ratio(row.latency.p50, a.latency.p50)


def row_dict(row: Row, rows: Sequence[Row]) -> dict[str, Any]:
    """The JSON form of a row, latencies in milliseconds, with its ratios to B."""
    return {
        "scenario": row.scenario,
        "program": row.program,
        "status": row.status,
        "latency_ms": row.latency.as_ms() if row.latency else None,
        "throughput_per_s": _round(row.throughput_per_s, 3),
        "concurrency": row.concurrency,
        "offered_rate_per_s": _round(row.offered_rate_per_s, 3),
        "peak_rss_mib": _round(row.peak_rss_mib, 1),
        "driver_cpu_ms_per_run": _round(row.driver_cpu_ms_per_run, 1),
        "dockerd_cpu_ms_per_run": _round(row.dockerd_cpu_ms_per_run, 1),
        "errors": row.errors,
        "first_error": row.first_error,
        "ratio_to_b": {k: _round(v, 3) for k, v in ratios(row, rows).items()},
        "ratio_to_a": {"p50": _round(ratio_to_a(row, rows), 3)},
        "pool": row.pool.as_dict() if row.pool else None,
        "event_loop": row.event_loop,
        "note": row.note,
    }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
