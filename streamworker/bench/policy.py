"""The submission a benchmark program is, and the container policy `judge()` gives it.

The baselines must run under exactly the container policy the executor uses (a Java
program gets the compiler's memory, for instance). The policy comes from the judge's
own pure `session_request`, the very function `judge()` opens its session with, so
the two cannot drift.
"""

from __future__ import annotations

import json

from streamworker.bench.programs import Program
from streamworker.contract import Submission, decode_submission
from streamworker.judge import check_sizes, run_limits_for, session_request
from streamworker.languages.registry import Language
from streamworker.sandbox.spec import ContainerPolicy
from streamworker.settings import Settings


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


def judged_policy(program: Program, language: Language, settings: Settings) -> ContainerPolicy:
    """The `ContainerPolicy` that `judge()` requests for this program.

    Checked like `judge()` checks it first, so a program the worker would refuse is
    refused here too rather than measured.
    """
    submission = submission_for(program, "bench-policy-probe")
    check_sizes(submission, settings)
    limits = run_limits_for(submission, language, settings)
    return session_request(submission, language, limits, settings).policy
