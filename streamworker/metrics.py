"""Prometheus metrics: `streamworker_`-prefixed, base units, one registry for the process."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
)

from streamworker import __version__


class Measured(Protocol):
    """One compile or run as metrics read it (the contract's `RunResult` fits)."""

    @property
    def wall_time_s(self) -> float | None: ...

    @property
    def cpu_time_s(self) -> float | None: ...

    @property
    def memory_kb(self) -> int | None: ...


class Judged(Protocol):
    """A judged submission as metrics read it (the judge's `Verdict` fits).

    Structural, so that metrics, which everything may import, imports nothing above it.
    """

    @property
    def compile(self) -> Measured | None: ...

    @property
    def runs(self) -> Sequence[Measured]: ...


disable_created_metrics()  # type: ignore[no-untyped-call]  # drops the *_created series (about half the page)
REGISTRY = CollectorRegistry(auto_describe=True)
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_MEMORY_BUCKETS = tuple(float(mib << 20) for mib in (4, 16, 32, 64, 128, 256, 512, 1024, 2048))

BUILD = Info("streamworker_build", "The worker's version.", registry=REGISTRY)
BUILD.info({"version": __version__})
CONTAINER_FAILURES = Counter(
    "streamworker_container_failures",
    "Container operations that failed, by operation (create, start, remove, limits).",
    ["operation"],
    registry=REGISTRY,
)
RUN_CPU_SECONDS = Histogram(
    "streamworker_run_cpu_seconds",
    "CPU time per stage (compile, run) as measured by the sandbox helper.",
    ["language", "stage"],
    buckets=_DURATION_BUCKETS,
    registry=REGISTRY,
)
RUN_MEMORY_BYTES = Histogram(
    "streamworker_run_memory_peak_bytes",
    "Peak resident memory per stage (compile, run) as measured by the sandbox helper.",
    ["language", "stage"],
    buckets=_MEMORY_BUCKETS,
    registry=REGISTRY,
)
# Computed at scrape time: the running audit writer installs its `lag_seconds`.
AUDIT_LAG_SECONDS = Gauge(
    "streamworker_audit_lag_seconds",
    "Age of the oldest audit event not yet written to the database (0 when none).",
    registry=REGISTRY,
)
AUDIT_QUARANTINED = Counter(
    "streamworker_audit_quarantined",
    "Audit events the database refused, set aside in audit_quarantine (not retried).",
    registry=REGISTRY,
)

SUBMISSIONS = Counter(
    "streamworker_submissions",
    "Submissions answered, by language and overall status.",
    ["language", "status"],
    registry=REGISTRY,
)
EXECUTION_SECONDS = Histogram(
    "streamworker_execution_duration_seconds",
    "Time spent per stage (compile, run) as measured by the sandbox helper.",
    ["language", "stage"],
    buckets=_DURATION_BUCKETS,
    registry=REGISTRY,
)
SUBMISSION_SECONDS = Histogram(
    "streamworker_submission_duration_seconds",
    "Wall time from taking a submission to having its verdict, container included.",
    ["language"],
    buckets=_DURATION_BUCKETS,
    registry=REGISTRY,
)
IN_FLIGHT = Gauge(
    "streamworker_runs_in_flight", "Submissions being judged right now.", registry=REGISTRY
)
DUPLICATES = Counter(
    "streamworker_duplicate_submissions",
    "Submissions seen again after being answered, by what was done (skipped, republished).",
    ["action"],
    registry=REGISTRY,
)
DLQ = Counter(
    "streamworker_dead_letters", "Events sent to the dead-letter topic.", registry=REGISTRY
)
RESULTS_FITTED = Counter(
    "streamworker_results_fitted",
    "Result events whose kept outputs were cut to fit under the Kafka message limit.",
    registry=REGISTRY,
)
OUTPUTS_REJECTED = Counter(
    "streamworker_outputs_rejected",
    "Output records Kafka refused (e.g. too large); the event got a smaller answer.",
    registry=REGISTRY,
)
AUDIT_LAG = Gauge(
    "streamworker_audit_lag_events",
    "Audit events accepted but not yet written to the database (queued or being written).",
    registry=REGISTRY,
)
AUDIT_FAILURES = Counter(
    "streamworker_audit_write_failures",
    "Failed attempts to write audit events (retried, or bisected when refused).",
    registry=REGISTRY,
)
AUDIT_SQLITE_QUICK = Counter(
    "streamworker_audit_sqlite_quick",
    "Short SQLite audit steps tried on the event loop's own connection, by outcome: "
    "inline, or busy (SQLite's lock was taken; the audit thread did it instead).",
    ["outcome"],
    registry=REGISTRY,
)
POOL_SIZE = Gauge(
    "streamworker_pool_ready_containers",
    "Warm containers ready to take, by language.",
    ["language"],
    registry=REGISTRY,
)
POOL_TARGET = Gauge(
    "streamworker_pool_target_containers",
    "Warm containers a pool keeps ready or in creation (rate-based size, raised by misses).",
    ["language"],
    registry=REGISTRY,
)
POOL_ARRIVAL_RATE = Gauge(
    "streamworker_pool_arrival_rate",
    "Takes per second a pool sizes itself for (exponentially weighted, decays when idle).",
    ["language"],
    registry=REGISTRY,
)
POOL_HITS = Counter(
    "streamworker_pool_hits",
    "Submissions that took a warm container.",
    ["language"],
    registry=REGISTRY,
)
POOL_MISSES = Counter(
    "streamworker_pool_misses",
    "Submissions that found no warm container ready (they wait for one, then run cold).",
    ["language"],
    registry=REGISTRY,
)
POOL_REUSES = Counter(
    "streamworker_pool_reuses",
    "Used containers wiped by their helper and put back into their pool.",
    ["language"],
    registry=REGISTRY,
)
POOL_RECYCLE_FAILURES = Counter(
    "streamworker_pool_recycle_failures",
    "Used containers that could not be wiped, reset or renamed, and were removed instead.",
    ["language"],
    registry=REGISTRY,
)
POOL_WAIT_SECONDS = Histogram(
    "streamworker_pool_wait_duration_seconds",
    "How long a miss waited for the pool; outcome served or cold (gave up, ran cold).",
    ["language", "outcome"],
    buckets=_DURATION_BUCKETS,
    registry=REGISTRY,
)
POOL_REFILL_SECONDS = Histogram(
    "streamworker_pool_refill_duration_seconds",
    "Time to create and start one warm container.",
    ["language"],
    buckets=_DURATION_BUCKETS,
    registry=REGISTRY,
)
BUDGET_USED_BYTES = Gauge(
    "streamworker_memory_budget_used_bytes",
    "Container memory limits reserved by runs in flight (bounded by the memory budget).",
    registry=REGISTRY,
)
DOCKER_UP = Gauge(
    "streamworker_docker_up", "1 when the Docker daemon answers pings.", registry=REGISTRY
)
DOCKER_PING_SECONDS = Gauge(
    "streamworker_docker_ping_seconds", "Latency of the last Docker ping.", registry=REGISTRY
)

DOCKER_STATUS = Gauge(
    "streamworker_docker_status",
    "1 for the current Docker-health status (healthy, degraded, unhealthy), 0 for the others.",
    ["status"],
    registry=REGISTRY,
)
DOCKER_CONTAINER_EVENTS = Counter(
    "streamworker_docker_container_events",
    "Daemon events for streamworker's containers, by action (oom, die).",
    ["action"],
    registry=REGISTRY,
)
DOCKER_EVENT_STREAM_BREAKS = Counter(
    "streamworker_docker_event_stream_breaks",
    "Times the daemon's event stream broke after connecting (daemon stopped or restarted).",
    registry=REGISTRY,
)
CALLBACK_DELIVERIES = Counter(
    "streamworker_callback_deliveries",
    "Gateway callbacks by how they ended (delivered, refused, rejected, dead).",
    ["outcome"],
    registry=REGISTRY,
)
CALLBACK_SECONDS = Histogram(
    "streamworker_callback_duration_seconds",
    "Wall time of one callback attempt: DNS, connect, request and reading the answer.",
    buckets=_DURATION_BUCKETS,
    registry=REGISTRY,
)


GATEWAY_REQUESTS = Counter(
    "streamworker_gateway_requests",
    "Gateway HTTP requests by API (judge0, piston, other) and status code.",
    ["api", "code"],
    registry=REGISTRY,
)
GATEWAY_REQUEST_SECONDS = Histogram(
    "streamworker_gateway_request_duration_seconds",
    "Gateway request time, `wait=true` included (it waits for the result).",
    ["api"],
    buckets=_DURATION_BUCKETS,
    registry=REGISTRY,
)
GATEWAY_IN_FLIGHT = Gauge(
    "streamworker_gateway_in_flight",
    "Submissions this gateway replica produced and has not yet seen answered.",
    registry=REGISTRY,
)
GATEWAY_PREFIXES = ("streamworker_gateway_", "streamworker_callback_", "streamworker_build")
"""What a gateway's /metrics shows: its own families, not the worker's (a gateway has no
Docker, so the worker's `streamworker_docker_up` would read 0 and page someone)."""


def render_gateway() -> bytes:
    """The gateway's page: only the families whose names start with `GATEWAY_PREFIXES`."""
    names = [
        sample.name
        for family in REGISTRY.collect()
        if family.name.startswith(GATEWAY_PREFIXES)
        for sample in family.samples
    ]
    return generate_latest(REGISTRY.restricted_registry(names))


def observe_verdict(language: str, verdict: Judged, elapsed_s: float) -> None:
    """Time the submission and each of its stages' wall time, CPU time and peak memory."""
    SUBMISSION_SECONDS.labels(language).observe(elapsed_s)
    stages = [("compile", verdict.compile)] if verdict.compile is not None else []
    for stage, run in [*stages, *(("run", r) for r in verdict.runs)]:
        if run.wall_time_s is not None:
            EXECUTION_SECONDS.labels(language, stage).observe(run.wall_time_s)
        if run.cpu_time_s is not None:
            RUN_CPU_SECONDS.labels(language, stage).observe(run.cpu_time_s)
        if run.memory_kb is not None:
            RUN_MEMORY_BYTES.labels(language, stage).observe(run.memory_kb * 1024)


def render() -> bytes:
    return generate_latest(REGISTRY)
