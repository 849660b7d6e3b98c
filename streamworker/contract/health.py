"""The Docker-health event a worker publishes about its daemon."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from streamworker.contract.status import SCHEMA_VERSION
from streamworker.contract.times import iso


class DockerStatus(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"


@dataclass(frozen=True)
class DockerHealthEvent:
    """A Docker-health event (`streamworker.docker-health`, key = worker id)."""

    worker_id: str
    status: DockerStatus
    reason: str | None
    reachable: bool
    connection: str
    version: str | None
    api_version: str | None
    ping_ms: float | None
    containers_running: int | None
    missing_images: tuple[str, ...]
    observed_at: datetime
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "worker_id": self.worker_id,
            "schema_version": self.schema_version,
            "status": self.status.value,
            "reason": self.reason,
            "docker": {
                "reachable": self.reachable,
                "connection": self.connection,
                "version": self.version,
                "api_version": self.api_version,
                "ping_ms": self.ping_ms,
                "containers_running": self.containers_running,
                "missing_images": list(self.missing_images),
            },
            "observed_at": iso(self.observed_at),
        }

    def encode(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False).encode()
