"""Pool figures per e2e phase: parsing the worker's metrics page and the difference of
two scrapes, checked against the names the worker really exposes."""

from __future__ import annotations

from prometheus_client import generate_latest

from streamworker import metrics
from streamworker.bench.pool_metrics import PoolCounts, phase_counts, pool_counts, pools_short

_BEFORE = """\
# HELP streamworker_pool_hits_total Submissions that took a warm container.
# TYPE streamworker_pool_hits_total counter
streamworker_pool_hits_total{language="python"} 10.0
streamworker_pool_hits_total{language="c"} 4.0
# HELP streamworker_pool_misses_total Submissions that found no warm container ready.
# TYPE streamworker_pool_misses_total counter
streamworker_pool_misses_total{language="python"} 2.0
# HELP streamworker_pool_wait_duration_seconds How long a miss waited for the pool.
# TYPE streamworker_pool_wait_duration_seconds histogram
streamworker_pool_wait_duration_seconds_bucket{language="python",outcome="served",le="+Inf"} 2.0
streamworker_pool_wait_duration_seconds_count{language="python",outcome="served"} 2.0
streamworker_pool_wait_duration_seconds_sum{language="python",outcome="served"} 0.4
"""

_AFTER = """\
# TYPE streamworker_pool_hits_total counter
streamworker_pool_hits_total{language="python"} 45.0
streamworker_pool_hits_total{language="c"} 9.0
# TYPE streamworker_pool_misses_total counter
streamworker_pool_misses_total{language="python"} 7.0
# TYPE streamworker_pool_wait_duration_seconds histogram
streamworker_pool_wait_duration_seconds_count{language="python",outcome="served"} 6.0
streamworker_pool_wait_duration_seconds_sum{language="python",outcome="served"} 1.1
streamworker_pool_wait_duration_seconds_count{language="python",outcome="cold"} 1.0
streamworker_pool_wait_duration_seconds_sum{language="python",outcome="cold"} 2.0
# TYPE streamworker_pool_reuses_total counter
streamworker_pool_reuses_total{language="python"} 30.0
"""


def test_counts_of_one_language() -> None:
    assert pool_counts(_BEFORE, "python") == PoolCounts(hits=10, misses=2, waits=2)
    assert pool_counts(_AFTER, "python") == PoolCounts(45, 7, 7, 1, 30)
    assert pool_counts(_AFTER, "c") == PoolCounts(hits=9)
    assert pool_counts(_AFTER, "java") == PoolCounts()
    assert pool_counts("", "python") == PoolCounts()


def test_a_phase_is_the_difference_of_two_scrapes() -> None:
    delta = phase_counts(_BEFORE, _AFTER, "python")
    assert delta == PoolCounts(hits=35, misses=5, waits=5, cold_waits=1, reuses=30)
    assert delta is not None and delta.cell() == "35/5/5/30"
    assert delta.as_dict() == {
        "hits": 35,
        "misses": 5,
        "waits": 5,
        "cold_waits": 1,
        "reuses": 30,
    }
    assert phase_counts(None, _AFTER, "python") is None
    assert phase_counts(_BEFORE, None, "python") is None


def test_the_worker_exposes_the_names_parsed() -> None:
    language = "bench-pool-metrics-test"  # a label no other test or worker uses
    before = generate_latest(metrics.REGISTRY).decode()
    metrics.POOL_HITS.labels(language).inc(3)
    metrics.POOL_MISSES.labels(language).inc(2)
    metrics.POOL_WAIT_SECONDS.labels(language, "served").observe(0.1)
    metrics.POOL_WAIT_SECONDS.labels(language, "cold").observe(2.0)
    metrics.POOL_REUSES.labels(language).inc(4)
    after = generate_latest(metrics.REGISTRY).decode()
    assert phase_counts(before, after, language) == PoolCounts(3, 2, 2, 1, 4)


def test_pools_short_of_their_floor_by_the_ready_gauge() -> None:
    page = """\
# TYPE streamworker_pool_ready_containers gauge
streamworker_pool_ready_containers{language="python"} 5.0
streamworker_pool_ready_containers{language="c"} 4.0
"""
    assert pools_short(page, 5, ["python", "c", "java"]) == ["c", "java"]
    assert pools_short(page, 4, ["python", "c"]) == []
    assert pools_short("", 1, ["python"]) == ["python"]


def test_the_ready_gauge_name_is_the_workers() -> None:
    metrics.POOL_SIZE.labels("pool-metrics-test").set(3)
    page = generate_latest(metrics.REGISTRY).decode()
    assert pools_short(page, 3, ["pool-metrics-test"]) == []
    assert pools_short(page, 4, ["pool-metrics-test"]) == ["pool-metrics-test"]
