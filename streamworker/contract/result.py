"""The result side: run objects and result events, encoded and read back."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from streamworker.contract.status import SCHEMA_VERSION, Status, judge0_status_id
from streamworker.contract.times import iso, parse_iso


@dataclass(frozen=True)
class RunResult:
    """One run object of a result event."""

    test_case_id: str | None
    status: Status
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    exit_code: int | None = None
    signal: str | None = None
    cpu_time_s: float | None = None
    wall_time_s: float | None = None
    memory_kb: int | None = None
    stdout_bytes: int | None = None
    """Bytes the program wrote to stdout (as relayed, before any cut for the result)."""
    stderr_bytes: int | None = None
    stdout_b64: str | None = None
    """Base64 of exactly the kept stdout bytes, only when they are not valid UTF-8."""
    stderr_b64: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "test_case_id": self.test_case_id,
            "status": self.status.value,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "stdout_truncated": self.stdout_truncated,
            "stderr_truncated": self.stderr_truncated,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "cpu_time_s": self.cpu_time_s,
            "wall_time_s": self.wall_time_s,
            "memory_kb": self.memory_kb,
            "stdout_bytes": self.stdout_bytes,
            "stderr_bytes": self.stderr_bytes,
        }
        # Present only when the text fields cannot carry the bytes (additive to v1).
        if self.stdout_b64 is not None:
            out["stdout_b64"] = self.stdout_b64
        if self.stderr_b64 is not None:
            out["stderr_b64"] = self.stderr_b64
        return out

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> RunResult:
        """The inverse of `to_dict` (for results read back from the log or the topic)."""
        return cls(
            test_case_id=obj.get("test_case_id"),
            status=Status(obj["status"]),
            stdout=obj.get("stdout") or "",
            stderr=obj.get("stderr") or "",
            stdout_truncated=bool(obj.get("stdout_truncated")),
            stderr_truncated=bool(obj.get("stderr_truncated")),
            exit_code=obj.get("exit_code"),
            signal=obj.get("signal"),
            cpu_time_s=obj.get("cpu_time_s"),
            wall_time_s=obj.get("wall_time_s"),
            memory_kb=obj.get("memory_kb"),
            stdout_bytes=obj.get("stdout_bytes"),
            stderr_bytes=obj.get("stderr_bytes"),
            stdout_b64=obj.get("stdout_b64"),
            stderr_b64=obj.get("stderr_b64"),
        )


@dataclass(frozen=True)
class Runtime:
    image: str | None = None
    image_id: str | None = None


@dataclass(frozen=True)
class ResultEvent:
    """A result event; `status` is the overall verdict."""

    submission_id: str
    status: Status
    language: str | None
    worker_id: str
    received_at: datetime
    started_at: datetime | None
    finished_at: datetime
    message: str | None = None
    runtime: Runtime = field(default_factory=Runtime)
    compile: RunResult | None = None
    runs: tuple[RunResult, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    attempt: int = 1
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    schema_version: int = SCHEMA_VERSION

    @property
    def judge0_status_id(self) -> int:
        signal = None
        if self.status is Status.RUNTIME_ERROR:
            culprit = next((r for r in self.runs if r.status is self.status), None)
            signal = culprit.signal if culprit else None
        return judge0_status_id(self.status, signal)

    def to_dict(self) -> dict[str, Any]:
        return {
            "submission_id": self.submission_id,
            "schema_version": self.schema_version,
            "event_id": self.event_id,
            "status": self.status.value,
            "judge0_status_id": self.judge0_status_id,
            "message": self.message,
            "language": self.language,
            "runtime": {"image": self.runtime.image, "image_id": self.runtime.image_id},
            "compile": self.compile.to_dict() if self.compile else None,
            "runs": [r.to_dict() for r in self.runs],
            "metadata": dict(self.metadata),
            "worker_id": self.worker_id,
            "attempt": self.attempt,
            "received_at": iso(self.received_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
        }

    def encode(self) -> bytes:
        return json.dumps(
            self.to_dict(), ensure_ascii=False, separators=(",", ":"), allow_nan=False
        ).encode()

    @classmethod
    def decode(cls, obj: Mapping[str, Any]) -> ResultEvent:
        """A result event from its JSON object (as `to_dict` made it); `event_id` kept, so
        a republished result is the same event. Raises KeyError/ValueError when malformed.
        """
        rt = obj.get("runtime") or {}
        compiled = obj.get("compile")
        return cls(
            submission_id=str(obj["submission_id"]),
            status=Status(obj["status"]),
            language=obj.get("language"),
            worker_id=str(obj.get("worker_id") or ""),
            received_at=parse_iso(obj["received_at"]),
            started_at=parse_iso(obj["started_at"]) if obj.get("started_at") else None,
            finished_at=parse_iso(obj["finished_at"]),
            message=obj.get("message"),
            runtime=Runtime(rt.get("image"), rt.get("image_id")),
            compile=RunResult.from_dict(compiled) if compiled else None,
            runs=tuple(RunResult.from_dict(r) for r in obj.get("runs") or ()),
            metadata=dict(obj.get("metadata") or {}),
            attempt=int(obj.get("attempt", 1)),
            event_id=str(obj["event_id"]),
            schema_version=int(obj.get("schema_version", SCHEMA_VERSION)),
        )


def overall_status(runs: tuple[RunResult, ...] | list[RunResult]) -> Status:
    """The first non-accepted run's status, else accepted."""
    for run in runs:
        if run.status is not Status.ACCEPTED:
            return run.status
    return Status.ACCEPTED
