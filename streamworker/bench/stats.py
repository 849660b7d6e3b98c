"""Pure statistics for the benchmark: nearest-rank percentiles, summaries and ratios.

Nearest-rank (not interpolation) so every reported percentile is a latency that was
actually measured; the price is that with 30 samples p99 *is* the maximum, which the
report says rather than hides.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(samples: Sequence[float], pct: float) -> float:
    """The nearest-rank `pct`-th percentile: the smallest sample with at least pct % at or below.

    Rank = ceil(pct / 100 * n), 1-based; pct 0 gives the minimum. Raises on no samples.
    """
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0 <= pct <= 100:
        raise ValueError(f"percentile must be within 0..100, got {pct}")
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Summary:
    """Latency figures of one scenario, in seconds (the report converts to ms)."""

    n: int
    p50: float
    p95: float
    p99: float
    mean: float
    min: float
    max: float

    def as_ms(self) -> dict[str, float | int]:
        return {
            "n": self.n,
            "p50": round(self.p50 * 1000, 1),
            "p95": round(self.p95 * 1000, 1),
            "p99": round(self.p99 * 1000, 1),
            "mean": round(self.mean * 1000, 1),
            "min": round(self.min * 1000, 1),
            "max": round(self.max * 1000, 1),
        }


def summarize(samples: Sequence[float]) -> Summary:
    """Percentiles, mean and range of a non-empty list of durations."""
    if not samples:
        raise ValueError("summary of no samples")
    return Summary(
        n=len(samples),
        p50=percentile(samples, 50),
        p95=percentile(samples, 95),
        p99=percentile(samples, 99),
        mean=math.fsum(samples) / len(samples),
        min=min(samples),
        max=max(samples),
    )


def ratio(value: float | None, baseline: float | None) -> float | None:
    """value / baseline, or None when either is missing or the baseline is not positive."""
    if value is None or baseline is None or baseline <= 0:
        return None
    return value / baseline


def throughput_per_s(count: int, elapsed_s: float) -> float:
    """Completed submissions per second over a span; 0 for an empty or instant span."""
    if count <= 0 or elapsed_s <= 0:
        return 0.0
    return count / elapsed_s
