"""Judging one submission: compile once, run each case, compare, decide. No Docker types.

The sandbox is reached through the small `Sandbox`/`RunSession` protocols so this logic
is testable with a fake.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from streamworker.contract import (
    RunResult,
    Status,
    Submission,
    now_utc,
    overall_status,
    resolve_limits,
)
from streamworker.errors import InvalidEvent
from streamworker.languages.registry import Language, expand
from streamworker.sandbox.protocol import WORKER_GRACE_S, HelperLimits, RawRun
from streamworker.sandbox.spec import ContainerPolicy
from streamworker.settings import RunLimits, Settings
from streamworker.verdict import run_result

log = logging.getLogger(__name__)


class RunSession(Protocol):
    image_id: str

    async def exec(
        self,
        argv: Sequence[str],
        limits: HelperLimits,
        files: Sequence[tuple[str, bytes]] = (),
        stdin: bytes = b"",
    ) -> RawRun: ...

    async def restrict(self, memory_mb: int, processes: int) -> None: ...


class Sandbox(Protocol):
    def image_for(self, language: Language) -> str: ...

    def session(
        self,
        *,
        submission_id: str,
        attempt: int,
        language: Language,
        policy: ContainerPolicy,
        budget_s: float,
    ) -> AbstractAsyncContextManager[RunSession]: ...


@dataclass(frozen=True)
class Verdict:
    """What judging produced; the app wraps it into a result event."""

    status: Status
    message: str | None
    compile: RunResult | None
    runs: tuple[RunResult, ...]
    image: str | None
    image_id: str | None
    started_at: datetime | None


def helper_limits(limits: RunLimits) -> HelperLimits:
    return HelperLimits(
        cpu_time_s=limits.cpu_time_s,
        wall_time_s=limits.wall_time_s,
        output_bytes=limits.output_kb * 1024,
        file_size_bytes=limits.file_size_kb * 1024,
    )


def program_files(
    submission: Submission, language: Language
) -> tuple[list[tuple[str, bytes]], str]:
    """The files to deliver and the entrypoint path, with size and count checks."""
    if submission.from_source:
        # With a single `source`, `entrypoint` names the file it is written to.
        name = submission.entrypoint or language.source_file
        files = [(name, submission.files[0].content)]
    else:
        files = [(f.path, f.content) for f in submission.files]
    paths = [path for path, _ in files]
    entrypoint = submission.entrypoint or (
        language.source_file if language.source_file in paths else paths[0]
    )
    return files, entrypoint


def time_budget_s(
    language: Language, limits: RunLimits, compile_limits: RunLimits, cases: int
) -> float:
    """The longest a submission can legitimately take (its container's deadline)."""
    per_run = limits.wall_time_s + WORKER_GRACE_S + 1.0
    compile_s = compile_limits.wall_time_s + WORKER_GRACE_S if language.compiled else 0.0
    return compile_s + per_run * max(1, cases)


def check_sizes(submission: Submission, settings: Settings) -> None:
    total = sum(len(f.content) for f in submission.files)
    if total > settings.max_source_bytes:
        fld = "source" if submission.from_source else "files"
        raise InvalidEvent(
            f"is {total} bytes, above the maximum {settings.max_source_bytes}",
            field=fld,
            submission_id=submission.submission_id,
        )
    if len(submission.test_cases) > settings.max_test_cases:
        raise InvalidEvent(
            f"has {len(submission.test_cases)} cases, above the maximum {settings.max_test_cases}",
            field="test_cases",
            submission_id=submission.submission_id,
        )


def run_limits_for(submission: Submission, language: Language, settings: Settings) -> RunLimits:
    """Submission limits over the language floor over server defaults; maxima enforced."""
    try:
        return resolve_limits(
            submission.limits,
            settings.default_limits,
            settings.max_limits,
            floor=language.limits_floor,
        )
    except InvalidEvent as exc:
        raise InvalidEvent(
            exc.detail, field=exc.field, submission_id=submission.submission_id
        ) from exc


async def judge(
    submission: Submission,
    language: Language,
    settings: Settings,
    sandbox: Sandbox,
    attempt: int = 1,
) -> Verdict:
    """Compile once (if the language compiles), then run each test case in order."""
    check_sizes(submission, settings)
    limits = run_limits_for(submission, language, settings)
    files, entrypoint = program_files(submission, language)
    compile_limits = settings.compile_limits
    container_memory = max(limits.memory_mb, compile_limits.memory_mb if language.compiled else 0)
    policy = ContainerPolicy(
        memory_mb=container_memory,
        processes=max(limits.processes, compile_limits.processes if language.compiled else 0),
        workspace_mb=settings.workspace_mb,
        file_size_kb=max(limits.file_size_kb, compile_limits.file_size_kb),
    )
    keep = settings.result_output_kb * 1024
    image = sandbox.image_for(language)
    started_at = now_utc()
    begin = time.monotonic()
    async with sandbox.session(
        submission_id=submission.submission_id,
        attempt=attempt,
        language=language,
        policy=policy,
        budget_s=time_budget_s(language, limits, compile_limits, len(submission.test_cases)),
    ) as session:
        compile_result: RunResult | None = None
        pending_files: list[tuple[str, bytes]] = files
        if language.compile is not None:
            raw = await session.exec(
                expand(language.compile, entrypoint), helper_limits(compile_limits), files=files
            )
            pending_files = []
            compile_result = run_result(
                raw,
                compile_limits,
                test_case_id=None,
                expected_output=None,
                compare=submission.compare,
                keep_bytes=keep,
            )
            if compile_result.status is not Status.ACCEPTED:
                status = (
                    Status.INTERNAL_ERROR
                    if compile_result.status is Status.INTERNAL_ERROR
                    else Status.COMPILATION_ERROR
                )
                failed = dataclasses.replace(compile_result, status=status)
                why = (
                    "the compiler could not be started"
                    if status is Status.INTERNAL_ERROR
                    else f"compilation failed ({compile_result.status.value})"
                )
                return Verdict(status, why, failed, (), image, session.image_id, started_at)
            if (container_memory, policy.processes) != (limits.memory_mb, limits.processes):
                # Compilers get more; each run gets exactly its own limits back.
                await session.restrict(limits.memory_mb, limits.processes)
        cases = submission.test_cases or (None,)
        runs: list[RunResult] = []
        argv = [*expand(language.run, entrypoint), *submission.args]
        for case in cases:
            stdin = case.stdin if case else submission.stdin
            expected = case.expected_output if case else submission.expected_output
            raw = await session.exec(
                argv, helper_limits(limits), files=pending_files, stdin=stdin.encode("utf-8")
            )
            pending_files = []
            runs.append(
                run_result(
                    raw,
                    limits,
                    test_case_id=case.id if case else None,
                    expected_output=expected,
                    compare=submission.compare,
                    keep_bytes=keep,
                )
            )
        status = overall_status(runs)
        message: str | None = None
        if status is Status.INTERNAL_ERROR:
            message = "the program could not be started in the sandbox"
        log.info(
            "judged %s (%s): %s in %.3fs",
            submission.submission_id,
            language.id,
            status.value,
            time.monotonic() - begin,
        )
        return Verdict(
            status, message, compile_result, tuple(runs), image, session.image_id, started_at
        )
