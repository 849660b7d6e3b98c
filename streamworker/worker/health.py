"""Dependency checks for `/health`: Docker, Kafka, database — each bounded in time.

Plus the audit log's own state (`AuditHealth`): a lagging or quarantining audit makes
`/health` say `degraded`, still with HTTP 200 — the worker keeps serving, and a liveness
probe that restarted it would only drop the records it still has queued.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from streamworker.audit.status import AuditHealth
from streamworker.contract import DockerHealthEvent, DockerStatus, iso, now_utc

CHECK_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class HealthReport:
    """The contract's `/health` body: each dependency is "connected" or an error text.

    `audit` ("ok" or "degraded: <reasons>") is in the body once the caller knows it.
    """

    docker: str
    kafka: str
    database: str
    timestamp: str
    audit: str | None = None

    @property
    def status(self) -> str:
        """ "unhealthy" when a dependency is down, else "degraded" or "healthy"."""
        if not self.docker == self.kafka == self.database == "connected":
            return "unhealthy"
        return "degraded" if self.audit not in (None, "ok") else "healthy"

    @property
    def healthy(self) -> bool:
        """Serving (HTTP 200): healthy or degraded, not unhealthy."""
        return self.status != "unhealthy"

    def body(self) -> dict[str, str]:
        body = {
            "status": self.status,
            "docker": self.docker,
            "kafka": self.kafka,
            "database": self.database,
            "timestamp": self.timestamp,
        }
        if self.audit is not None:
            body["audit"] = self.audit
        return body


@dataclass(frozen=True)
class ReadinessReport:
    """`/ready`: may this worker take submissions now? Stricter than `/health`.

    A degraded audit is reported (`audit`) but does not make the worker unready: audit
    writes are off the critical path, and a fleet that stopped consuming because its
    database refused one record would turn a quarantine into an outage.
    """

    docker: str
    kafka: str
    consumer: str
    timestamp: str
    audit: str | None = None

    @property
    def ready(self) -> bool:
        return (self.docker, self.kafka, self.consumer) == ("healthy", "connected", "assigned")

    def body(self) -> dict[str, str]:
        body = {
            "status": "ready" if self.ready else "not_ready",
            "docker": self.docker,
            "kafka": self.kafka,
            "consumer": self.consumer,
            "timestamp": self.timestamp,
        }
        if self.audit is not None:
            body["audit"] = self.audit
        return body


def consumer_state(joined: bool, rebalancing: bool) -> str:
    """The consumer's part in readiness: "assigned" once joined and not rebalancing."""
    if not joined:
        return "joining"
    return "rebalancing" if rebalancing else "assigned"


def decide_readiness(
    docker: DockerHealthEvent | None,
    kafka: str,
    consumer: str,
    audit: AuditHealth | None = None,
) -> ReadinessReport:
    """Ready = Docker healthy (so images present), Kafka answering, consumer assigned."""
    if docker is None:
        docker_text = "starting"
    elif docker.status is DockerStatus.HEALTHY:
        docker_text = "healthy"
    else:
        docker_text = f"{docker.status.value}: {docker.reason}"
    audit_text = audit.text() if audit is not None else None
    return ReadinessReport(docker_text, kafka, consumer, iso(now_utc()) or "", audit_text)


async def check(
    probe: Callable[[], Awaitable[object]], timeout_s: float = CHECK_TIMEOUT_S
) -> tuple[str, float]:
    """Run one probe: ("connected", seconds) or (error text, seconds)."""
    begin = time.monotonic()
    try:
        async with asyncio.timeout(timeout_s):
            await probe()
    except TimeoutError:
        return f"timeout after {timeout_s:g}s", time.monotonic() - begin
    except Exception as exc:  # any failure is a finding, not a crash
        text = str(exc) or type(exc).__name__
        return f"{type(exc).__name__}: {text}"[:300], time.monotonic() - begin
    return "connected", time.monotonic() - begin


async def gather_health(
    docker: Callable[[], Awaitable[object]],
    kafka: Callable[[], Awaitable[object]],
    database: Callable[[], Awaitable[object]],
    audit: Callable[[], Awaitable[AuditHealth]] | None = None,
) -> HealthReport:
    """Probe the dependencies (and the audit state, when given) concurrently."""

    async def audit_text() -> str | None:
        if audit is None:
            return None
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                return (await audit()).text()
        except Exception as exc:  # a finding, like any probe's failure
            return f"unknown: {type(exc).__name__}: {exc}"[:300]

    (d, _), (k, _), (db, _), audited = await asyncio.gather(
        check(docker), check(kafka), check(database), audit_text()
    )
    return HealthReport(d, k, db, iso(now_utc()) or "", audited)
