"""What `judge()` would ask the sandbox for, captured from `judge()` itself.

The baselines must run under exactly the container policy the executor uses (a Java
program gets the compiler's memory, for instance). Rather than re-deriving that policy
here, where it could drift from `judge.py`, we call `judge()` with a probe sandbox that
records the request and stops before anything runs.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from streamworker.bench.programs import Program
from streamworker.contract import Submission, decode_submission
from streamworker.judge import RunSession, judge
from streamworker.languages.registry import Language
from streamworker.sandbox.spec import ContainerPolicy
from streamworker.settings import Settings


class _Captured(Exception):
    def __init__(self, policy: ContainerPolicy) -> None:
        super().__init__("policy captured")
        self.policy = policy


class _PolicyProbe:
    """A `judge.Sandbox` that raises the requested policy at session entry."""

    def image_for(self, language: Language) -> str:
        return f"probe/{language.id}"

    @asynccontextmanager
    async def session(
        self,
        *,
        submission_id: str,
        attempt: int,
        language: Language,
        policy: ContainerPolicy,
        budget_s: float,
    ) -> AsyncIterator[RunSession]:
        raise _Captured(policy)
        yield  # pragma: no cover - makes this an async generator


def submission_for(program: Program, submission_id: str) -> Submission:
    """The contract submission for a benchmark program, decoded like any event."""
    return decode_submission(submission_event(program, submission_id))


def submission_event(program: Program, submission_id: str) -> bytes:
    """The submission event's bytes as an upstream producer would send them."""
    event = {
        "submission_id": submission_id,
        "language": program.language,
        "source": program.source,
        "expected_output": program.expected_stdout,
    }
    return json.dumps(event).encode()


async def judged_policy(
    program: Program, language: Language, settings: Settings
) -> ContainerPolicy:
    """The `ContainerPolicy` that `judge()` requests for this program."""
    try:
        await judge(
            submission_for(program, "bench-policy-probe"), language, settings, _PolicyProbe()
        )
    except _Captured as captured:
        return captured.policy
    raise RuntimeError("judge() finished without opening a sandbox session")
