"""Shared fakes for the unit tests: helper reports, raw runs and a scripted sandbox.

The fake sandbox implements the `Sandbox`/`RunSession` protocols of `streamworker.judge`
and records every call, so the judge and the pipeline are tested without Docker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from streamworker.audit.prior import Prior, prior_from
from streamworker.audit.store import AuditRecord
from streamworker.languages.registry import Language
from streamworker.sandbox.policy import SessionRequest
from streamworker.sandbox.protocol import HelperLimits, HelperReport, RawRun
from streamworker.settings import Settings


def make_report(**overrides: Any) -> HelperReport:
    """A helper report for a clean, fast run; override any figure."""
    values: dict[str, Any] = {
        "exit_code": 0,
        "signal": None,
        "cpu_time_s": 0.01,
        "wall_time_s": 0.02,
        "memory_kb": 1000,
        "oom_kills": 0,
        "timed_out": False,
        "output_exceeded": False,
        "overflow_stream": 0,
        "output_bytes": 0,
        "exec_errno": 0,
    }
    values.update(overrides)
    return HelperReport(**values)


def make_raw(
    stdout: bytes = b"",
    stderr: bytes = b"",
    report: HelperReport | None = None,
    failure: str | None = None,
    **report_overrides: Any,
) -> RawRun:
    """A raw run; a report is made from `report_overrides` unless `failure` is given."""
    if report is None and failure is None:
        report = make_report(**report_overrides)
    return RawRun(stdout, stderr, report, failure)


@dataclass
class ExecCall:
    argv: list[str]
    limits: HelperLimits
    files: list[tuple[str, bytes]]
    stdin: bytes


Responder = Callable[[ExecCall, int], RawRun]
"""Given an exec call and its index (0-based, per session), what the sandbox returns."""


def echo_stdin(call: ExecCall, index: int) -> RawRun:
    """Default behaviour: the program prints its stdin and exits 0."""
    return make_raw(stdout=call.stdin)


@dataclass
class FakeSession:
    responder: Responder
    image_id: str = "sha256:fake"
    calls: list[ExecCall] = field(default_factory=list)
    restrictions: list[tuple[int, int]] = field(default_factory=list)
    """Each `restrict(memory_mb, processes)` call, in order."""
    restricted_after: list[int] = field(default_factory=list)
    """How many execs had run when each `restrict` was called."""

    async def exec(
        self,
        argv: Sequence[str],
        limits: HelperLimits,
        files: Sequence[tuple[str, bytes]] = (),
        stdin: bytes = b"",
    ) -> RawRun:
        call = ExecCall(list(argv), limits, list(files), stdin)
        self.calls.append(call)
        return self.responder(call, len(self.calls) - 1)

    async def restrict(self, memory_mb: int, processes: int) -> None:
        self.restrictions.append((memory_mb, processes))
        self.restricted_after.append(len(self.calls))


@dataclass
class FakeSandbox:
    """Records sessions; `responder` scripts exec results, `error` fails session entry."""

    responder: Responder = echo_stdin
    error: BaseException | None = None
    sessions: list[FakeSession] = field(default_factory=list)
    opened: list[SessionRequest] = field(default_factory=list)
    closed: int = 0

    def image_for(self, language: Language) -> str:
        return f"fake-runtime-{language.id}"

    @asynccontextmanager
    async def session(self, request: SessionRequest) -> AsyncIterator[FakeSession]:
        self.opened.append(request)
        if self.error is not None:
            raise self.error
        session = FakeSession(self.responder)
        self.sessions.append(session)
        try:
            yield session
        finally:
            self.closed += 1

    @property
    def calls(self) -> list[ExecCall]:
        return [call for session in self.sessions for call in session.calls]


@dataclass
class MemoryAudit:
    """An in-memory audit sink that records every `submit()`."""

    records: list[AuditRecord] = field(default_factory=list)

    unknown: bool = False
    """When True, `prior` answers None, as when the database is down."""

    def submit(self, record: AuditRecord) -> None:
        self.records.append(record)

    async def prior(self, submission_id: str) -> Prior | None:
        if self.unknown:
            return None
        return prior_from(r for r in self.records if r.submission_id == submission_id)

    async def settle(self, submission_id: str, timeout_s: float | None = None) -> bool:
        return not self.unknown

    def kinds(self) -> list[str]:
        return [str(r.kind) for r in self.records]


INTERPRETED = Language(
    id="fakepy",
    name="Fake interpreted",
    packages=(),
    source_file="main.fp",
    run=("fakepy", "{entrypoint}"),
)
COMPILED = Language(
    id="fakec",
    name="Fake compiled",
    packages=(),
    source_file="main.fc",
    compile=("fakecc", "-o", "main", "{entrypoint}"),
    run=("./main",),
)


@pytest.fixture
def settings() -> Settings:
    return Settings(worker_id="w-test")


@pytest.fixture
def sandbox() -> FakeSandbox:
    return FakeSandbox()


@pytest.fixture
def audit() -> MemoryAudit:
    return MemoryAudit()


@pytest.fixture
def fakes() -> SimpleNamespace:
    """The factories and fake classes, for tests that need more than the default instances."""
    return SimpleNamespace(
        make_report=make_report,
        make_raw=make_raw,
        FakeSandbox=FakeSandbox,
        FakeSession=FakeSession,
        MemoryAudit=MemoryAudit,
        interpreted=INTERPRETED,
        compiled=COMPILED,
    )
