"""What one run asks of the sandbox: its container policy, its time budget, the request.

One pure definition for every caller. The judge asks for a container with it, the warm
pool creates containers that fit what the judge will ask (a pooled container is only
taken when the create-time settings match exactly), and the benchmarks run their
baselines under it: computed in three places, the three drifted apart silently.

It lives in `sandbox` rather than above it because the pool, inside `sandbox`, needs
it; it reads only languages, limits and settings, which sit below.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from streamworker.contract import resolve_limits
from streamworker.languages.registry import Language
from streamworker.limits import RunLimits
from streamworker.sandbox.protocol import WORKER_GRACE_S
from streamworker.sandbox.spec import ContainerPolicy
from streamworker.settings import Settings

RUN_SLACK_S = 1.0
"""Per test case on top of its wall time and the helper's grace: container round trips."""


@dataclass(frozen=True)
class SessionRequest:
    """Everything a sandbox needs to open one submission attempt's session.

    One frozen value rather than five loose parameters, so every sandbox (Docker, the
    benchmarks', the tests' fakes) takes the same thing and a new field is one change.
    """

    submission_id: str
    attempt: int
    language: Language
    policy: ContainerPolicy
    """The create-time caps: enough for the compile, when the language compiles."""
    budget_s: float
    """The longest the whole attempt can legitimately take (its container's deadline)."""


def container_policy(
    language: Language, limits: RunLimits, compile_limits: RunLimits, settings: Settings
) -> ContainerPolicy:
    """The caps of the container that compiles (if need be) and runs with `limits`.

    A compiler gets more memory and processes than the program; the container is made
    for the larger, and the judge narrows it to `limits` after the compile. The file
    size ulimit cannot change on a live container, so it is the larger of both always.
    """
    compiled = language.compiled
    return ContainerPolicy(
        memory_mb=max(limits.memory_mb, compile_limits.memory_mb if compiled else 0),
        processes=max(limits.processes, compile_limits.processes if compiled else 0),
        workspace_mb=settings.workspace_mb,
        file_size_kb=max(limits.file_size_kb, compile_limits.file_size_kb),
    )


def time_budget_s(
    language: Language, limits: RunLimits, compile_limits: RunLimits, cases: int
) -> float:
    """The longest a submission can legitimately take (its container's deadline)."""
    return _budget_s(language.compiled, limits, compile_limits, cases)


def max_time_budget_s(settings: Settings) -> float:
    """The longest any submission may take: compiled, every case at the maximum.

    A warm container is made before anyone knows what it will run, so its deadline
    must cover the worst submission of any language.
    """
    return _budget_s(True, settings.max_limits, settings.compile_limits, settings.max_test_cases)


def _budget_s(compiled: bool, limits: RunLimits, compile_limits: RunLimits, cases: int) -> float:
    """A compile (when there is one) plus each case, each with the helper's grace; a
    submission without test cases still runs once."""
    per_run = limits.wall_time_s + WORKER_GRACE_S + RUN_SLACK_S
    compile_s = compile_limits.wall_time_s + WORKER_GRACE_S if compiled else 0.0
    return compile_s + per_run * max(1, cases)


def pool_policy(language: Language, settings: Settings) -> ContainerPolicy:
    """The create-time policy of a language's warm pool: what a default submission gets.

    Its memory and process caps are adjusted on take; the file size cap cannot be, so
    the pool makes it as large as any submission may ask.
    """
    default_run = resolve_limits(
        {}, settings.default_limits, settings.max_limits, floor=language.limits_floor
    )
    widest = dataclasses.replace(default_run, file_size_kb=settings.max_limits.file_size_kb)
    return container_policy(language, widest, settings.compile_limits, settings)
