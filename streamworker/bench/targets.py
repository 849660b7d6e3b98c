"""Issue 14's targets, checked against rows of the same run. Pure.

Judged on python hello (`HEADLINE_PROGRAM`); the other programs' checks are reported
beside it (`judged` False), since where the program's own run is most of B no sandbox
can meet a ratio to B. Ratios are like for like: e2e p99 over B's p99 (the detail also
gives it over B's p50, the stricter reading), the sequential e2e p50 over A's, since
`docker run --rm` is what a caller submitting one at a time would otherwise do. With
several event loops, only one loop's e2e rows are judged (`check_targets`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from streamworker.bench.results import Row, find
from streamworker.bench.scenario import (
    BASELINE_A,
    BASELINE_B,
    BASELINE_B_PARALLEL,
    E2E_HALF_LOAD,
    E2E_SATURATION,
    E2E_SEQUENTIAL,
    EXEC_FLOOR,
    EXECUTOR_WARM,
)
from streamworker.bench.stats import ratio

WARM_P50_MAX = 0.35
E2E_P50_MAX = 0.30
E2E_P99_MAX = 1.5
SEQUENTIAL_P50_MAX_OF_A = 0.30
SATURATION_MIN = 1.0
WORKER_CPU_MS_MAX = 10.0
RSS_MAX_MIB = 150.0
HEADLINE_PROGRAM = "python-hello"
E2E_SCENARIOS = (E2E_SEQUENTIAL, E2E_SATURATION, E2E_HALF_LOAD)


@dataclass(frozen=True)
class TargetCheck:
    """One target: met, not met, or None when it could not be measured (with why).

    `judged` is False for a program reported beside the headline one."""

    target: str
    program: str
    met: bool | None
    value: float | None
    limit: float
    detail: str
    judged: bool = True

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["value"] = None if self.value is None else round(self.value, 3)
        return out


def _judged(program: str) -> bool:
    return program in (HEADLINE_PROGRAM, "all")


def _check(
    target: str, program: str, met: bool | None, value: float | None, limit: float, detail: str
) -> TargetCheck:
    return TargetCheck(target, program, met, value, limit, detail, _judged(program))


def _missing(target: str, program: str, limit: float, what: str) -> TargetCheck:
    return _check(target, program, None, None, limit, f"not measured: {what}")


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _le(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


def warm_p50(rows: Sequence[Row]) -> TargetCheck:
    name, prog = "warm executor p50 <= 0.35 x B p50", HEADLINE_PROGRAM
    warm, b = find(rows, EXECUTOR_WARM, prog), find(rows, BASELINE_B, prog)
    if warm is None or b is None or warm.latency is None or b.latency is None:
        return _missing(name, prog, WARM_P50_MAX, "no warm executor or baseline B row")
    value = ratio(warm.latency.p50, b.latency.p50)
    detail = f"warm {_ms(warm.latency.p50)} vs B {_ms(b.latency.p50)}"
    floor = find(rows, EXEC_FLOOR, prog)
    if floor is not None and floor.latency is not None:
        # One exec into a running container is the least any single-use warm run costs.
        floor_ratio = ratio(floor.latency.p50, b.latency.p50) or 0.0
        detail += f"; floor D (one exec) {_ms(floor.latency.p50)} = {floor_ratio:.2f} x B"
    return _check(name, prog, _le(value, WARM_P50_MAX), value, WARM_P50_MAX, detail)


def e2e_latency(rows: Sequence[Row], program: str) -> list[TargetCheck]:
    p50_name = "e2e p50 <= 0.30 x B p50 at half saturation"
    p99_name = "e2e p99 <= 1.5 x B p99 at half saturation"
    e2e, b = find(rows, E2E_HALF_LOAD, program), find(rows, BASELINE_B, program)
    if e2e is None or b is None or e2e.latency is None or b.latency is None:
        return [
            _missing(p50_name, program, E2E_P50_MAX, "no e2e or baseline B row"),
            _missing(p99_name, program, E2E_P99_MAX, "no e2e or baseline B row"),
        ]
    lat, base = e2e.latency, b.latency
    rate = f"offered {e2e.offered_rate_per_s or 0:.2f}/s"
    p50 = ratio(lat.p50, base.p50)
    p99 = ratio(lat.p99, base.p99)
    strict = ratio(lat.p99, base.p50) or 0.0
    return [
        _check(
            p50_name,
            program,
            _le(p50, E2E_P50_MAX),
            p50,
            E2E_P50_MAX,
            f"e2e {_ms(lat.p50)} vs B {_ms(base.p50)} ({rate})",
        ),
        _check(
            p99_name,
            program,
            _le(p99, E2E_P99_MAX),
            p99,
            E2E_P99_MAX,
            f"e2e {_ms(lat.p99)} vs B {_ms(base.p99)}; over B p50: {strict:.2f} ({rate})",
        ),
    ]


def e2e_sequential(rows: Sequence[Row], program: str) -> TargetCheck:
    name = "e2e sequential p50 <= 0.30 x A p50 (docker run --rm)"
    e2e, a = find(rows, E2E_SEQUENTIAL, program), find(rows, BASELINE_A, program)
    if e2e is None or a is None or e2e.latency is None or a.latency is None:
        return _missing(name, program, SEQUENTIAL_P50_MAX_OF_A, "no e2e sequential or A row")
    value = ratio(e2e.latency.p50, a.latency.p50)
    detail = f"e2e one at a time {_ms(e2e.latency.p50)} vs A {_ms(a.latency.p50)}"
    b = find(rows, BASELINE_B, program)
    if b is not None and b.latency is not None:
        detail += f"; over B p50: {ratio(e2e.latency.p50, b.latency.p50) or 0.0:.2f}"
    limit = SEQUENTIAL_P50_MAX_OF_A
    return _check(name, program, _le(value, limit), value, limit, detail)


def saturation(rows: Sequence[Row], program: str) -> TargetCheck:
    name = "e2e saturation throughput >= 1.0 x B parallel at the same concurrency"
    e2e, b = find(rows, E2E_SATURATION, program), find(rows, BASELINE_B_PARALLEL, program)
    if e2e is None or b is None or e2e.throughput_per_s is None or b.throughput_per_s is None:
        return _missing(name, program, SATURATION_MIN, "no e2e saturation or parallel B row")
    value = ratio(e2e.throughput_per_s, b.throughput_per_s)
    detail = (
        f"e2e {e2e.throughput_per_s:.2f}/s vs B {b.throughput_per_s:.2f}/s "
        f"(concurrency {b.concurrency})"
    )
    met = None if value is None else value >= SATURATION_MIN
    return _check(name, program, met, value, SATURATION_MIN, detail)


def worker_cpu(rows: Sequence[Row], program: str) -> TargetCheck:
    """The worker's own CPU per submission at saturation; dockerd's part is only detail."""
    name = "worker CPU per submission <= 10 ms at saturation"
    sat = find(rows, E2E_SATURATION, program)
    if sat is None or sat.driver_cpu_ms_per_run is None:
        return _missing(name, program, WORKER_CPU_MS_MAX, "no e2e saturation CPU figure")
    value = sat.driver_cpu_ms_per_run
    dockerd = sat.dockerd_cpu_ms_per_run
    detail = f"worker {value:.1f} ms per submission" + (
        "" if dockerd is None else f" (dockerd+containerd {dockerd:.1f} ms, not counted)"
    )
    # The same run's raw driver: a machine-independent reading of the absolute limit.
    b = find(rows, BASELINE_B_PARALLEL, program)
    if b is not None and b.driver_cpu_ms_per_run:
        raw = b.driver_cpu_ms_per_run
        detail += (
            f"; raw aiodocker driver (B x{b.concurrency}) {raw:.1f} ms, worker/B {value / raw:.2f}"
        )
    return _check(name, program, value <= WORKER_CPU_MS_MAX, value, WORKER_CPU_MS_MAX, detail)


def worker_rss(rows: Sequence[Row]) -> TargetCheck:
    name = "worker peak RSS <= 150 MiB (every e2e phase)"
    peaks = [(r.peak_rss_mib, r.scenario, r.program) for r in rows if r.scenario in E2E_SCENARIOS]
    measured = [(mib, scen, prog) for mib, scen, prog in peaks if mib is not None]
    if not measured:
        return _missing(name, "all", RSS_MAX_MIB, "no e2e phase")
    peak, scenario, prog = max(measured)
    detail = f"{peak:.0f} MiB (during {scenario} of {prog})"
    return _check(name, "all", peak <= RSS_MAX_MIB, peak, RSS_MAX_MIB, detail)


def _e2e_programs(rows: Sequence[Row]) -> list[str]:
    """Programs with e2e rows, the headline first; the headline alone if there are none."""
    found = dict.fromkeys(r.program for r in rows if r.scenario in E2E_SCENARIOS)
    return [HEADLINE_PROGRAM, *(p for p in found if p != HEADLINE_PROGRAM)]


def check_targets(rows: Sequence[Row], loop: str | None = None) -> list[TargetCheck]:
    """Every target, per program where the target is per program. With `loop`, e2e rows
    of any other event loop are left out (rows without a loop always count)."""
    kept = [r for r in rows if loop is None or r.event_loop in (None, loop)]
    checks = [warm_p50(kept)]
    for program in _e2e_programs(kept):
        checks.extend(e2e_latency(kept, program))
        checks.append(e2e_sequential(kept, program))
        checks.append(saturation(kept, program))
        checks.append(worker_cpu(kept, program))
    checks.append(worker_rss(kept))
    return checks
