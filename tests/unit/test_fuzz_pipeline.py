"""Property tests of the whole pipeline: whatever the event and whatever the program
prints, `Pipeline.handle` returns exactly one outcome and never raises, and every result
it builds can be published (encodes, fits the message budget)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamworker.fit import budget_for
from streamworker.pipeline import Pipeline, Source
from streamworker.retry import RetryPolicy
from streamworker.sandbox.protocol import RawRun
from streamworker.settings import Settings
from tests.unit.conftest import ExecCall, FakeSandbox, MemoryAudit, make_raw

FUZZ = settings(
    max_examples=80,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SOURCE = Source("streamworker.submissions", 0, 1, b"k")
BUDGET = budget_for(40_000, 40_000)

texts = st.text(max_size=40)
values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), texts),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(texts, children, max_size=3)
    ),
    max_leaves=8,
)
event_shaped = st.fixed_dictionaries(
    {"submission_id": st.from_regex(r"[A-Za-z0-9._:-]{1,20}", fullmatch=True)},
    optional={
        "language": st.one_of(st.sampled_from(["python", "c", "java", "nope"]), texts),
        "source": texts,
        "stdin": texts,
        "args": st.lists(texts, max_size=4),
        "test_cases": st.lists(
            st.fixed_dictionaries({}, optional={"stdin": texts, "expected_output": texts}),
            max_size=3,
        ),
        "limits": st.dictionaries(st.sampled_from(["memory_mb", "cpu_time_s", "x"]), values),
        "metadata": values,
        "compare": st.sampled_from(["exact", "trailing_whitespace", "other"]),
    },
)
events = st.one_of(
    st.binary(max_size=300),
    values.map(lambda v: json.dumps(v).encode()),
    event_shaped.map(lambda e: json.dumps(e).encode()),
)
outputs = st.tuples(st.binary(max_size=30_000), st.binary(max_size=30_000), st.integers(0, 300))


@FUZZ
@given(event=events, output=outputs)
def test_one_outcome_whatever_the_event_and_the_output(
    event: bytes, output: tuple[bytes, bytes, int]
) -> None:
    stdout, stderr, exit_code = output

    def respond(call: ExecCall, index: int) -> RawRun:
        return make_raw(stdout=stdout, stderr=stderr, exit_code=exit_code % 256)

    pipeline = Pipeline(
        Settings(worker_id="w"),
        FakeSandbox(respond),
        MemoryAudit(),
        RetryPolicy(base_delay_s=0.0),
        budget=BUDGET,
    )
    outcome = asyncio.run(pipeline.handle(event, SOURCE))
    assert not outcome.skipped and outcome.republish is None
    assert outcome.result is not None or outcome.dead_letter is not None
    if outcome.dead_letter is not None:
        assert len(outcome.dead_letter.value) <= BUDGET.dead_letter_bytes
    if outcome.result is not None:
        published: Any = asyncio.run(pipeline.record_result(outcome.result))
        assert len(published.encode()) <= BUDGET.result_bytes
        json.loads(published.encode())
