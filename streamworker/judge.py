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
from streamworker.limits import RunLimits
from streamworker.sandbox.policy import SessionRequest, container_policy, time_budget_s
from streamworker.sandbox.protocol import HelperLimits, RawRun
from streamworker.settings import Settings
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

    def session(self, request: SessionRequest) -> AbstractAsyncContextManager[RunSession]: ...


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


SNAPSHOT_AFTER_FILES = 1
"""The helper saves the workdir right after writing the request's files."""
SNAPSHOT_AFTER_RUN = 2
"""The helper saves the workdir after the run (a compile's output)."""


def case_limits(limits: HelperLimits, index: int, *, delivers_files: bool) -> HelperLimits:
    """The limits of test case `index`, with what keeps the cases apart.

    Every case starts from the program as delivered (or as compiled: the compile saved
    its workdir) and nothing else: the first run saves the delivered files, each later
    run has the helper wipe the workdir, /tmp and /dev/shm and restore that snapshot, so
    no case sees what an earlier one wrote — in a warm container as in a cold one.
    """
    if index > 0:
        return dataclasses.replace(limits, reset=True)
    if delivers_files:
        return dataclasses.replace(limits, snapshot=SNAPSHOT_AFTER_FILES)
    return limits


async def compile_program(
    session: RunSession,
    submission: Submission,
    language: Language,
    files: list[tuple[str, bytes]],
    entrypoint: str,
    settings: Settings,
) -> RunResult:
    """Compile in the session; the helper saves the workdir after it for the cases."""
    assert language.compile is not None
    compile_limits = settings.compile_limits
    limits = dataclasses.replace(helper_limits(compile_limits), snapshot=SNAPSHOT_AFTER_RUN)
    raw = await session.exec(expand(language.compile, entrypoint), limits, files=files)
    return run_result(
        raw,
        compile_limits,
        test_case_id=None,
        expected_output=None,
        compare=submission.compare,
        keep_bytes=settings.result_output_kb * 1024,
    )


def compile_failure(compile_result: RunResult) -> tuple[Status, str, RunResult]:
    """A failed compile's verdict status, message and compile object."""
    status = (
        Status.INTERNAL_ERROR
        if compile_result.status is Status.INTERNAL_ERROR
        else Status.COMPILATION_ERROR
    )
    why = (
        "the compiler could not be started"
        if status is Status.INTERNAL_ERROR
        else f"compilation failed ({compile_result.status.value})"
    )
    return status, why, dataclasses.replace(compile_result, status=status)


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


def check_sizes(submission: Submission, settings: Settings) -> None:
    """The configured source and test-case maxima, checked again before any container.

    Decoding refuses both already, but against whatever budgets its caller passed (the
    contract's by default); this keeps the operator's settings binding either way.
    """
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


def session_request(
    submission: Submission,
    language: Language,
    limits: RunLimits,
    settings: Settings,
    attempt: int = 1,
) -> SessionRequest:
    """What judging `submission` with `limits` asks of the sandbox.

    Pure, so the benchmarks run their baselines under exactly the container the
    worker would ask for, without judging anything.
    """
    compile_limits = settings.compile_limits
    return SessionRequest(
        submission_id=submission.submission_id,
        attempt=attempt,
        language=language,
        policy=container_policy(language, limits, compile_limits, settings),
        budget_s=time_budget_s(language, limits, compile_limits, len(submission.test_cases)),
    )


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
    request = session_request(submission, language, limits, settings, attempt)
    policy = request.policy
    keep = settings.result_output_kb * 1024
    image = sandbox.image_for(language)
    started_at = now_utc()
    begin = time.monotonic()
    async with sandbox.session(request) as session:
        compile_result: RunResult | None = None
        pending_files: list[tuple[str, bytes]] = files
        if language.compile is not None:
            compile_result = await compile_program(
                session, submission, language, files, entrypoint, settings
            )
            pending_files = []
            if compile_result.status is not Status.ACCEPTED:
                status, why, failed = compile_failure(compile_result)
                return Verdict(status, why, failed, (), image, session.image_id, started_at)
            if (policy.memory_mb, policy.processes) != (limits.memory_mb, limits.processes):
                # Compilers get more; each run gets exactly its own limits back.
                await session.restrict(limits.memory_mb, limits.processes)
        cases = submission.test_cases or (None,)
        runs: list[RunResult] = []
        heap_mb = language.heap_mb(limits.memory_mb)
        argv = [*expand(language.run, entrypoint, heap_mb), *submission.args]
        run_limits = helper_limits(limits)
        for index, case in enumerate(cases):
            stdin = case.stdin_bytes if case else submission.stdin_bytes
            expected = case.expected_output if case else submission.expected_output
            step = case_limits(run_limits, index, delivers_files=bool(pending_files))
            raw = await session.exec(argv, step, files=pending_files, stdin=stdin)
            pending_files = []
            runs.append(
                run_result(
                    raw,
                    limits,
                    test_case_id=case.id if case else None,
                    expected_output=expected,
                    compare=submission.compare,
                    keep_bytes=keep,
                    oom_stderr=language.oom_stderr,
                )
            )
            if raw.kind is not None and raw.kind.ends_container:
                break  # the run took its container with it: no later case can run
        status = overall_status(runs)
        message: str | None = None
        if status is Status.INTERNAL_ERROR:
            message = "the program could not be started in the sandbox"
        if len(runs) < len(cases):
            message = (
                f"the sandbox container ended with test case {len(runs)} "
                f"({runs[-1].status.value}); the {len(cases) - len(runs)} later case(s) "
                "were not run"
            )
        log.debug(
            "judged %s (%s): %s in %.3fs",
            submission.submission_id,
            language.id,
            status.value,
            time.monotonic() - begin,
        )
        return Verdict(
            status, message, compile_result, tuple(runs), image, session.image_id, started_at
        )
