"""Issue 6's targets, checked against rows of the same run. Pure.

Ratios are like for like: the end-to-end p99 is compared with baseline B's p99 (the
check's detail also gives it over B's p50, the stricter reading).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from streamworker.bench.results import Row, find
from streamworker.bench.scenario import (
    BASELINE_B,
    BASELINE_B_PARALLEL,
    E2E_HALF_LOAD,
    E2E_SATURATION,
    EXEC_FLOOR,
    EXECUTOR_WARM,
)
from streamworker.bench.stats import ratio

WARM_P50_MAX = 0.35
E2E_P50_MAX = 0.5
E2E_P99_MAX = 1.5
SATURATION_MIN = 1.0
RSS_MAX_MIB = 250.0
HEADLINE_PROGRAM = "python-hello"


@dataclass(frozen=True)
class TargetCheck:
    """One target: met, not met, or None when it could not be measured (with why)."""

    target: str
    program: str
    met: bool | None
    value: float | None
    limit: float
    detail: str

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["value"] = None if self.value is None else round(self.value, 3)
        return out


def _missing(target: str, program: str, limit: float, what: str) -> TargetCheck:
    return TargetCheck(target, program, None, None, limit, f"not measured: {what}")


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


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
    return TargetCheck(name, prog, _le(value, WARM_P50_MAX), value, WARM_P50_MAX, detail)


def e2e_latency(rows: Sequence[Row], program: str) -> list[TargetCheck]:
    p50_name = "e2e p50 <= 0.5 x B p50 at half saturation"
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
        TargetCheck(
            p50_name,
            program,
            _le(p50, E2E_P50_MAX),
            p50,
            E2E_P50_MAX,
            f"e2e {_ms(lat.p50)} vs B {_ms(base.p50)} ({rate})",
        ),
        TargetCheck(
            p99_name,
            program,
            _le(p99, E2E_P99_MAX),
            p99,
            E2E_P99_MAX,
            f"e2e {_ms(lat.p99)} vs B {_ms(base.p99)}; over B p50: {strict:.2f} ({rate})",
        ),
    ]


def saturation(rows: Sequence[Row], program: str) -> TargetCheck:
    name = "saturation throughput >= 1.0 x B at the same concurrency"
    e2e, b = find(rows, E2E_SATURATION, program), find(rows, BASELINE_B_PARALLEL, program)
    if e2e is None or b is None or e2e.throughput_per_s is None or b.throughput_per_s is None:
        return _missing(name, program, SATURATION_MIN, "no e2e saturation or parallel B row")
    value = ratio(e2e.throughput_per_s, b.throughput_per_s)
    detail = (
        f"e2e {e2e.throughput_per_s:.2f}/s vs B {b.throughput_per_s:.2f}/s "
        f"(concurrency {b.concurrency})"
    )
    met = None if value is None else value >= SATURATION_MIN
    return TargetCheck(name, program, met, value, SATURATION_MIN, detail)


def worker_rss(rows: Sequence[Row]) -> TargetCheck:
    name = "worker peak RSS <= 250 MiB at saturation"
    peaks = [(r.peak_rss_mib, r.program) for r in rows if r.scenario == E2E_SATURATION]
    measured = [(mib, prog) for mib, prog in peaks if mib is not None]
    if not measured:
        return _missing(name, "all", RSS_MAX_MIB, "no e2e saturation phase")
    peak, prog = max(measured)
    return TargetCheck(
        name, "all", peak <= RSS_MAX_MIB, peak, RSS_MAX_MIB, f"{peak:.0f} MiB (during {prog})"
    )


def _le(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


def check_targets(rows: Sequence[Row]) -> list[TargetCheck]:
    """Every target, per program where the target is per program."""
    e2e_programs = [r.program for r in rows if r.scenario == E2E_HALF_LOAD]
    sat_programs = [r.program for r in rows if r.scenario == E2E_SATURATION]
    checks = [warm_p50(rows)]
    for program in e2e_programs or [HEADLINE_PROGRAM]:
        checks.extend(e2e_latency(rows, program))
    for program in sat_programs or [HEADLINE_PROGRAM]:
        checks.append(saturation(rows, program))
    checks.append(worker_rss(rows))
    return checks
