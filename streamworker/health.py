"""Dependency checks for `/health`: Docker, Kafka, database — each bounded in time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from streamworker.contract import DockerHealthEvent, DockerStatus, iso, now_utc

CHECK_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class HealthReport:
    """The contract's `/health` body: each dependency is "connected" or an error text."""

    docker: str
    kafka: str
    database: str
    timestamp: str

    @property
    def healthy(self) -> bool:
        return self.docker == self.kafka == self.database == "connected"

    def body(self) -> dict[str, str]:
        return {
            "status": "healthy" if self.healthy else "unhealthy",
            "docker": self.docker,
            "kafka": self.kafka,
            "database": self.database,
            "timestamp": self.timestamp,
        }


@dataclass(frozen=True)
class ReadinessReport:
    """`/ready`: may this worker take submissions now? Stricter than `/health`."""

    docker: str
    kafka: str
    consumer: str
    timestamp: str

    @property
    def ready(self) -> bool:
        return (self.docker, self.kafka, self.consumer) == ("healthy", "connected", "assigned")

    def body(self) -> dict[str, str]:
        return {
            "status": "ready" if self.ready else "not_ready",
            "docker": self.docker,
            "kafka": self.kafka,
            "consumer": self.consumer,
            "timestamp": self.timestamp,
        }


def consumer_state(joined: bool, rebalancing: bool) -> str:
    """The consumer's part in readiness: "assigned" once joined and not rebalancing."""
    if not joined:
        return "joining"
    return "rebalancing" if rebalancing else "assigned"


def decide_readiness(
    docker: DockerHealthEvent | None, kafka: str, consumer: str
) -> ReadinessReport:
    """Ready = Docker healthy (so images present), Kafka answering, consumer assigned."""
    if docker is None:
        docker_text = "starting"
    elif docker.status is DockerStatus.HEALTHY:
        docker_text = "healthy"
    else:
        docker_text = f"{docker.status.value}: {docker.reason}"
    return ReadinessReport(docker_text, kafka, consumer, iso(now_utc()) or "")


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
) -> HealthReport:
    (d, _), (k, _), (db, _) = await asyncio.gather(check(docker), check(kafka), check(database))
    return HealthReport(docker=d, kafka=k, database=db, timestamp=iso(now_utc()) or "")
