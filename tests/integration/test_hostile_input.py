"""Hostile input through the real Kafka, Docker and PostgreSQL, against ONE worker.

Each group sends several hostile events as an outside producer would, waits (bounded)
for their outcomes on a read_committed consumer, checks every event got exactly one
answer (a result with its submission id) and/or one DLQ record as its case requires, then
sends a benign `print(1)` that must be answered within 15 s. The last test checks the
worker never restarted (same pid, no "restarting the worker in place" in its log), every
answered submission has an `executions` row in PostgreSQL and the audit lag is back to 0.

Groups run in file order, the ones that could wedge a worker last, so a failure early on
does not hide the later cases' verdicts; every assertion names the case, what it expected
and what was seen, and the worker's state (pid, restarts so far).
"""

from __future__ import annotations

import base64
import hashlib
import random
import textwrap
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.integration.hostile_util import (
    BROKER_LIMIT,
    PRODUCER_LIMIT,
    Case,
    Check,
    Need,
    Outcomes,
    RawHeaderKey,
    Seen,
    Worker,
    delete_topics,
    describe,
    effective,
    evaluate,
    json_event,
    pad_to_estimate,
    remove_containers_of,
    seen,
    send_cases,
    settled,
    start_worker,
    stop_worker,
    wait_execution_rows,
    wait_metric,
    wait_no_containers,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BENIGN_WITHIN_S = 15.0
MAX_SOURCE_BYTES = 1024 * 1024
"""The server's default source budget (`STREAMWORKER_MAX_SOURCE_BYTES`)."""
FAST = {"wall_time_s": 2, "cpu_time_s": 1}


def src(code: str) -> str:
    return textwrap.dedent(code).lstrip()


@dataclass
class Suite:
    """The module's worker, its outcome reader, and everything sent so far."""

    tag: str
    worker: Worker
    outcomes: Outcomes
    bootstrap: str
    pg_url: str
    sent: list[Case] = field(default_factory=list)
    before: str = ""

    def sid(self, name: str) -> str:
        return f"h-{self.tag}-{name}"

    def case(
        self,
        name: str,
        *,
        result: Need = Need.ONE,
        dlq: Need = Need.NONE,
        check: Check | None = None,
        raw: bytes | None = None,
        **event: Any,
    ) -> Case:
        """A case keyed by its submission id; the event is `event` as JSON, or `raw`."""
        sid = self.sid(name)
        value = raw if raw is not None else json_event({"submission_id": sid, **event})
        return Case(name, sid.encode(), value, sid, result, dlq, check)

    async def run_group(self, group: str, cases: list[Case], timeout_s: float) -> list[str]:
        """Send `cases`, wait (bounded) for their outcomes, then a benign submission; the
        problems found, each naming its case."""
        self.before = self.worker.state()
        problems = await send_cases(self.bootstrap, self.worker.submissions, cases)
        self.sent.extend(cases)
        await self.outcomes.wait_until(
            lambda: all(settled(self.outcomes, c) for c in cases), timeout_s
        )
        await self.outcomes.catch_up()
        for case in cases:
            problems.extend(evaluate(self.outcomes, case))
            # What each case got, shown by `pytest -rA` (or `-s`) even when it passes.
            notes = f" [{'; '.join(case.notes)}]" if case.notes else ""
            print(f"[{group}] {case.name}: {describe(seen(self.outcomes, effective(case)))}{notes}")
        problems.extend(await self.benign(group))
        return problems

    def verdict(self, group: str, problems: list[str]) -> None:
        assert not problems, (
            f"group {group!r}: {len(problems)} problem(s)\n  - "
            + "\n  - ".join(problems)
            + f"\n(before the group: {self.before}; now: {self.worker.state()})"
            + f"\nworker log: {self.worker.log_path}; tail:\n{self.worker.log_tail(2500)}"
        )

    async def benign(self, group: str) -> list[str]:
        """`print(1)` after the group: answered `accepted` within BENIGN_WITHIN_S."""
        case = self.case(
            f"benign-after-{group}",
            check=lambda got: expect_run(got, 0, status="accepted", stdout="1\n"),
            language="python",
            source="print(1)\n",
        )
        problems = await send_cases(self.bootstrap, self.worker.submissions, [case])
        self.sent.append(case)
        arrived = await self.outcomes.wait_until(
            lambda: settled(self.outcomes, case), BENIGN_WITHIN_S
        )
        if not arrived:
            return [*problems, f"{case.name}: not answered within {BENIGN_WITHIN_S:.0f}s"]
        return [*problems, *evaluate(self.outcomes, case)]


@pytest_asyncio.fixture(scope="module")
async def suite(
    kafka_bootstrap: str,
    docker_available: None,
    pg_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Suite]:
    tag = f"hostile{uuid.uuid4().hex[:8]}"
    data_dir: Path = tmp_path_factory.mktemp(tag) / "data"
    worker = await start_worker(tag, kafka_bootstrap, pg_url, data_dir)
    outcomes = Outcomes(kafka_bootstrap, worker.results, worker.dlq)
    try:
        await outcomes.start()
        yield Suite(tag[len("hostile") :], worker, outcomes, kafka_bootstrap, pg_url)
    finally:
        await outcomes.stop()
        await stop_worker(worker)
        await remove_containers_of(worker.env["STREAMWORKER_WORKER_ID"])
        await delete_topics(kafka_bootstrap, [f"{tag}.", worker.env["STREAMWORKER_APP_ID"]])


# --------------------------------------------------------------------------- checks


def result_of(got: Seen) -> dict[str, Any]:
    assert got.result is not None
    return got.result


def expect_status(got: Seen, *allowed: str) -> list[str]:
    status = result_of(got).get("status")
    return [] if status in allowed else [f"status {status!r}, expected one of {allowed}"]


def expect_invalid(got: Seen, naming: str | None = None) -> list[str]:
    problems = expect_status(got, "invalid_submission")
    result = result_of(got)
    message = str(result.get("message") or "")
    if naming is not None and naming not in message:
        problems.append(f"message {message[:200]!r} does not name the field {naming!r}")
    if result.get("runs") not in ([], None):
        problems.append(f"an invalid submission has runs: {result.get('runs')!r:.200}")
    return problems


def expect_run(got: Seen, index: int, **want: Any) -> list[str]:
    """Run `index` exists and each field in `want` equals the given value."""
    runs = result_of(got).get("runs") or []
    if index >= len(runs):
        return [f"no run #{index} (the result has {len(runs)} run object(s))"]
    run = runs[index]
    return [
        f"run #{index} ({run.get('test_case_id')!r}) {key} = {run.get(key)!r:.200}, "
        f"expected {value!r:.200}"
        for key, value in want.items()
        if run.get(key) != value
    ]


def stream_fitted(run: dict[str, Any], stream: str, original: bytes, where: str) -> list[str]:
    """A kept stream is a prefix of the original, flagged truncated iff cut, with its
    original size in `<stream>_bytes`."""
    problems = []
    kept = str(run.get(stream) or "").encode()
    if run.get(f"{stream}_bytes") != len(original):
        problems.append(
            f"{where} {stream}_bytes = {run.get(f'{stream}_bytes')!r}, expected {len(original)}"
        )
    if not original.startswith(kept):
        problems.append(f"{where} {stream} kept is not a prefix of what was written")
    cut = len(kept) < len(original)
    if bool(run.get(f"{stream}_truncated")) != cut:
        problems.append(
            f"{where} {stream}_truncated = {run.get(f'{stream}_truncated')!r} "
            f"but {len(kept)}/{len(original)} bytes kept"
        )
    return problems


# --------------------------------------------------------------------------- groups


async def test_random_garbage_gives_one_dead_letter_each(suite: Suite) -> None:
    rng = random.Random(20261129)
    cases = []
    for i in range(20):
        value = rng.randbytes(rng.randint(1, 400))
        key = f"h-{suite.tag}-garbage-{i:02d}".encode()
        cases.append(Case(f"garbage-{i:02d}", key, value, None, Need.NONE, Need.ONE))
    suite.verdict("garbage", await suite.run_group("garbage", cases, 30))


async def test_exit_codes_outputs_binary_io_and_case_isolation(suite: Suite) -> None:
    everything = bytes(range(256))
    low, high = bytes(range(128)), bytes(range(128, 256))
    digest = src("""
        import hashlib, sys
        data = sys.stdin.buffer.read()
        print(len(data), hashlib.sha256(data).hexdigest())
    """)

    def line(data: bytes) -> str:
        return f"{len(data)} {hashlib.sha256(data).hexdigest()}\n"

    def binary_stdout(got: Seen) -> list[str]:
        problems = expect_status(got, "accepted")
        runs = result_of(got).get("runs") or [{}]
        encoded = runs[0].get("stdout_b64")
        if encoded is None:
            return [*problems, "run #0 has no stdout_b64 (stdout is not valid UTF-8)"]
        if base64.b64decode(encoded) != everything:
            problems.append(f"stdout_b64 decodes to {base64.b64decode(encoded)[:40]!r}…")
        if runs[0].get("stdout_bytes") != 256:
            problems.append(f"stdout_bytes = {runs[0].get('stdout_bytes')!r}, expected 256")
        return problems

    isolation = src("""
        import os, sys
        if sys.stdin.read().strip() == "write":
            with open("/tmp/x", "w") as fh:
                fh.write("1")
            with open("y", "w") as fh:
                fh.write("1")
            print("wrote")
        else:
            print(os.path.exists("/tmp/x"), os.path.exists("y"))
    """)
    cases = [
        suite.case(
            "exit-256",
            check=lambda got: [
                *expect_status(got, "accepted"),
                *expect_run(got, 0, status="accepted", exit_code=0),
            ],
            language="python",
            source="import sys\nsys.exit(256)\n",
        ),
        suite.case(
            "os-exit-255",
            check=lambda got: [
                *expect_status(got, "runtime_error"),
                *expect_run(got, 0, status="runtime_error", exit_code=255, signal=None),
            ],
            language="python",
            source="import os\nos._exit(255)\n",
        ),
        suite.case(
            "no-trailing-newline",
            check=lambda got: [
                *expect_status(got, "accepted"),
                *expect_run(got, 0, stdout="no newline"),
            ],
            language="python",
            source="import sys\nsys.stdout.write('no newline')\n",
        ),
        suite.case(
            "stderr-only",
            check=lambda got: [
                *expect_status(got, "accepted"),
                *expect_run(got, 0, stdout="", stderr="only stderr\n"),
            ],
            language="python",
            source="import sys\nsys.stderr.write('only stderr\\n')\n",
        ),
        suite.case(
            "binary-stdout",
            check=binary_stdout,
            language="python",
            source="import sys\nsys.stdout.buffer.write(bytes(range(256)))\n",
        ),
        suite.case(
            "binary-stdin",
            check=lambda got: [
                *expect_status(got, "accepted"),
                *expect_run(got, 0, stdout=line(everything)),
            ],
            language="python",
            source=digest,
            stdin_b64=base64.b64encode(everything).decode(),
        ),
        suite.case(
            "binary-stdin-per-case",
            check=lambda got: [
                *expect_status(got, "accepted"),
                *expect_run(got, 0, test_case_id="low", stdout=line(low)),
                *expect_run(got, 1, test_case_id="high", stdout=line(high)),
            ],
            language="python",
            source=digest,
            test_cases=[
                {"id": "low", "stdin_b64": base64.b64encode(low).decode()},
                {"id": "high", "stdin_b64": base64.b64encode(high).decode()},
            ],
        ),
        suite.case(
            "case-isolation",
            check=lambda got: [
                *expect_run(got, 0, test_case_id="write", stdout="wrote\n"),
                *expect_run(got, 1, test_case_id="check", stdout="False False\n"),
                *expect_status(got, "accepted"),
            ],
            language="python",
            source=isolation,
            test_cases=[{"id": "write", "stdin": "write"}, {"id": "check", "stdin": "check"}],
        ),
    ]
    suite.verdict("programs", await suite.run_group("programs", cases, 30))


async def test_oversized_args_and_entrypoint_are_invalid_naming_the_field(suite: Suite) -> None:
    argv = "import sys\nprint(len(sys.argv))\n"
    cases = [
        suite.case(
            "args-300",
            dlq=Need.MAYBE,
            check=lambda got: expect_invalid(got, naming="args"),
            language="python",
            source=argv,
            args=[f"a{i}" for i in range(300)],
        ),
        suite.case(
            "arg-70kb",
            dlq=Need.MAYBE,
            check=lambda got: expect_invalid(got, naming="args"),
            language="python",
            source=argv,
            args=["x" * (70 * 1024)],
        ),
        suite.case(
            "entrypoint-300-bytes",
            dlq=Need.MAYBE,
            check=lambda got: expect_invalid(got, naming="entrypoint"),
            language="python",
            source="print(1)\n",
            entrypoint="d" * 297 + ".py",
        ),
    ]
    suite.verdict("fields", await suite.run_group("fields", cases, 30))


async def test_signals_to_the_helper_and_memory_fill(suite: Suite) -> None:
    stop_parent = src("""
        import os, signal, sys, time
        if sys.stdin.read().strip() == "stop":
            os.kill(os.getppid(), signal.SIGSTOP)
            time.sleep(30)
        print("after")
    """)
    kill_all = "import os, signal, time\nos.kill(-1, signal.SIGKILL)\ntime.sleep(0.5)\n"
    stop_all = "import os, signal, time\nos.kill(-1, signal.SIGSTOP)\ntime.sleep(30)\n"

    def stopped_parent(got: Seen) -> list[str]:
        runs = result_of(got).get("runs") or []
        problems = expect_run(got, 0, test_case_id="stop", status="time_limit_exceeded")
        if len(runs) != 2:
            problems.append(f"{len(runs)} run object(s), expected 2 (one per test case)")
        else:
            problems.extend(expect_run(got, 1, test_case_id="after"))
        return [*problems, *expect_status(got, "time_limit_exceeded")]

    cases = [
        suite.case(
            "sigstop-parent",
            check=stopped_parent,
            language="python",
            source=stop_parent,
            limits=FAST,
            test_cases=[{"id": "stop", "stdin": "stop"}, {"id": "after", "stdin": "go"}],
        ),
        *(
            suite.case(
                f"kill-all-sigkill-{n}",
                check=lambda got: expect_status(got, "runtime_error"),
                language="python",
                source=kill_all,
                limits=FAST,
            )
            for n in (1, 2)
        ),
        suite.case(
            "kill-all-sigstop",
            check=lambda got: expect_status(got, "time_limit_exceeded"),
            language="python",
            source=stop_all,
            limits=FAST,
        ),
        suite.case(
            "memory-fill-64mb",
            check=lambda got: [
                *expect_status(got, "memory_limit_exceeded"),
                *expect_run(got, 0, status="memory_limit_exceeded"),
            ],
            language="python",
            source="b = bytearray()\nwhile True:\n    b += bytearray(1 << 20)\n",
            limits={**FAST, "memory_mb": 64},
        ),
    ]
    suite.verdict("signals", await suite.run_group("signals", cases, 45))


async def test_nul_in_every_string_field(suite: Suite) -> None:
    count = "import sys\nd = sys.stdin.buffer.read()\nprint(len(d), d.count(0))\n"
    cases = [
        suite.case(
            "nul-language",
            dlq=Need.MAYBE,
            check=lambda got: expect_status(got, "invalid_submission"),
            language="python\u0000",
            source="print(1)\n",
        ),
        suite.case(
            "nul-metadata",
            check=lambda got: [
                *expect_status(got, "accepted"),
                *(
                    []
                    if result_of(got).get("metadata") == {"k\u0000ey": "v\u0000al"}
                    else [f"metadata echoed as {result_of(got).get('metadata')!r}"]
                ),
            ],
            language="python",
            source="print(1)\n",
            metadata={"k\u0000ey": "v\u0000al"},
        ),
        suite.case(
            "nul-stdin",
            check=lambda got: [
                *expect_status(got, "accepted"),
                *expect_run(got, 0, stdout="3 1\n"),
            ],
            language="python",
            source=count,
            stdin="a\u0000b",
        ),
        suite.case(
            "nul-source",
            check=lambda got: expect_status(got, "accepted", "runtime_error"),
            language="python",
            source="print(1)\n# \u0000\n",
        ),
        suite.case(
            "nul-expected-output",
            check=lambda got: expect_status(got, "wrong_answer"),
            language="python",
            source="print(1)\n",
            expected_output="1\u0000\n",
        ),
        suite.case(
            "nul-test-case-id",
            check=lambda got: [
                *expect_status(got, "accepted"),
                *expect_run(got, 0, test_case_id="case\u00001", stdout="1\n"),
            ],
            language="python",
            source="print(1)\n",
            test_cases=[{"id": "case\u00001", "stdin": ""}],
        ),
        suite.case(
            "prints-nul",
            check=lambda got: [
                *expect_status(got, "accepted"),
                *expect_run(got, 0, stdout="a\u0000b\n"),
            ],
            language="python",
            source="import sys\nsys.stdout.write('a\\0b\\n')\n",
        ),
    ]
    problems = await suite.run_group("nul", cases, 30)
    # The audit log took all of them: executions rows, and the writer is not stuck.
    sids = [c.sid for c in cases if c.sid and suite.outcomes.results.get(c.sid)]
    rows = await wait_execution_rows(suite.pg_url, sids, 15)
    problems.extend(
        f"{sid}: no executions row with a status (row status: {rows.get(sid)!r})"
        for sid in sids
        if not rows.get(sid)
    )
    lag = await wait_metric(suite.worker, "streamworker_audit_lag_events", 0.0, 10)
    if lag != 0.0:
        problems.append(f"streamworker_audit_lag_events = {lag!r}, expected 0 (audit stalled)")
    suite.verdict("nul", problems)


async def test_decoder_budgets(suite: Suite) -> None:
    nesting_sid = suite.sid("metadata-nesting-5000")
    nesting = (
        f'{{"submission_id": "{nesting_sid}", "language": "python", "source": "print(1)", '
        f'"metadata": {{"deep": {"[" * 5000}{"]" * 5000}}}}}'
    ).encode()
    utf8_sid = suite.sid("invalid-utf8")
    bad_utf8 = (
        f'{{"submission_id": "{utf8_sid}", "language": "python", "source": "print(1)", '
        f'"stdin": "'.encode()
        + b"\xff\xfe\xc3\x28\xed\xa0\x80"
        + b'"}'
    )

    def invalid_utf8(got: Seen) -> list[str]:
        return expect_status(got, "invalid_submission") if got.answers else []

    cases = [
        suite.case(
            "metadata-nesting-5000",
            dlq=Need.ONE,
            check=lambda got: expect_invalid(got),
            raw=nesting,
        ),
        suite.case(
            "metadata-10000-keys",
            dlq=Need.MAYBE,
            check=lambda got: expect_invalid(got),
            language="python",
            source="print(1)\n",
            metadata={f"k{i:05d}": i for i in range(10000)},
        ),
        suite.case(
            "invalid-utf8", result=Need.MAYBE, dlq=Need.ONE, check=invalid_utf8, raw=bad_utf8
        ),
    ]
    suite.verdict("decoder", await suite.run_group("decoder", cases, 30))


async def test_large_outputs_are_fitted_into_one_result(suite: Suite) -> None:
    control = bytes([1]) * 65536
    ctrl_source = src("""
        import sys
        sys.stdout.buffer.write(b"\\x01" * 65536)
        sys.stderr.buffer.write(b"\\x01" * 65536)
    """)
    line = b"a" * 65535 + b"\n"

    def fitted(got: Seen, streams: dict[str, bytes], cases: int) -> list[str]:
        problems = expect_status(got, "accepted")
        answer = got.answers[0]
        if answer.size > 1024 * 1024:
            problems.append(f"the result is {answer.size} bytes, above 1 MiB")
        runs = result_of(got).get("runs") or []
        if len(runs) != cases:
            problems.append(f"{len(runs)} run object(s), expected {cases}")
        cut = 0
        for i, run in enumerate(runs):
            if run.get("test_case_id") != f"c{i}":
                problems.append(f"run #{i} test_case_id = {run.get('test_case_id')!r}")
            for stream, original in streams.items():
                problems.extend(stream_fitted(run, stream, original, f"run #{i}"))
                cut += bool(run.get(f"{stream}_truncated"))
        if not cut:
            problems.append("nothing was cut, yet the full outputs cannot fit in 1 MiB")
        return problems[:12] + ([f"(+{len(problems) - 12} more)"] if len(problems) > 12 else [])

    cases = [
        suite.case(
            "control-chars-64k-2-cases",
            check=lambda got: fitted(got, {"stdout": control, "stderr": control}, 2),
            language="python",
            source=ctrl_source,
            test_cases=[{"id": "c0"}, {"id": "c1"}],
        ),
        suite.case(
            "64-cases-64k-each",
            check=lambda got: fitted(got, {"stdout": line}, 64),
            language="python",
            source="import sys\nsys.stdout.write('a' * 65535 + '\\n')\n",
            limits={"output_kb": 65},
            test_cases=[{"id": f"c{i}"} for i in range(64)],
        ),
    ]
    suite.verdict("sizing", await suite.run_group("sizing", cases, 60))


async def test_events_at_and_over_the_kafka_size_limits(suite: Suite) -> None:
    def source_event(sid: str) -> Callable[[int], bytes]:
        return lambda n: json_event(
            {"submission_id": sid, "language": "python", "source": "print(1)\n#" + "x" * n}
        )

    at_limit = suite.sid("event-at-producer-limit")
    over_plain = suite.sid("event-over-broker-limit")
    over_gzip = suite.sid("event-over-broker-limit-gzip")
    huge_lang = suite.sid("language-1mib")
    lang_fallback = suite.sid("language-900kb")

    def over_budget(got: Seen) -> list[str]:
        return expect_invalid(got, naming="source")

    def short_invalid(got: Seen) -> list[str]:
        problems = expect_invalid(got)
        message = str(result_of(got).get("message") or "")
        if len(message.encode()) >= 1024:
            problems.append(f"message is {len(message.encode())} bytes, expected < 1 KiB")
        return problems

    over = BROKER_LIMIT + 4096
    language_case = Case(
        "language-1mib",
        huge_lang.encode(),
        json_event({"submission_id": huge_lang, "language": "a" * (1 << 20), "source": "1"}),
        huge_lang,
        Need.ONE,
        Need.MAYBE,
        short_invalid,
        max_request_size=4 << 20,
        compression="gzip",
        broker="may_refuse",
        fallback=Case(
            "language-900kb",
            lang_fallback.encode(),
            json_event({"submission_id": lang_fallback, "language": "a" * 900_000, "source": "1"}),
            lang_fallback,
            Need.ONE,
            Need.MAYBE,
            short_invalid,
        ),
    )
    cases = [
        Case(
            "event-at-producer-limit",
            at_limit.encode(),
            pad_to_estimate(at_limit.encode(), source_event(at_limit), PRODUCER_LIMIT),
            at_limit,
            Need.ONE,
            Need.MAYBE,
            lambda got: expect_status(got, "accepted", "invalid_submission"),
        ),
        Case(
            "event-over-broker-limit",
            over_plain.encode(),
            pad_to_estimate(over_plain.encode(), source_event(over_plain), over),
            over_plain,
            Need.ONE,
            Need.MAYBE,
            over_budget,
            max_request_size=4 << 20,
            broker="refuses",
        ),
        Case(
            "event-over-broker-limit-gzip",
            over_gzip.encode(),
            pad_to_estimate(over_gzip.encode(), source_event(over_gzip), over),
            over_gzip,
            Need.ONE,
            Need.MAYBE,
            over_budget,
            max_request_size=4 << 20,
            compression="gzip",
        ),
        language_case,
    ]
    assert len(cases[2].value) > MAX_SOURCE_BYTES, "the gzip case must exceed the source budget"
    suite.verdict("kafka-limits", await suite.run_group("kafka-limits", cases, 60))


async def test_records_kafka_accepts_but_clients_choke_on(suite: Suite) -> None:
    """A header key that is not UTF-8 (aiokafka's reader raises on it, on every fetch of
    the partition) and a tombstone (null value)."""
    hello = {"language": "python", "source": "print('hi')\n"}
    header_case = suite.case(
        "header-key-not-utf8",
        check=lambda got: expect_run(got, 0, status="accepted", stdout="hi\n"),
        **hello,
    )
    header_case.headers = [(RawHeaderKey("k"), b"v"), ("fine", b"1")]
    tombstone = suite.case("tombstone", result=Need.NONE, dlq=Need.ONE, raw=b"")
    tombstone.tombstone = True
    cases = [header_case, tombstone]
    suite.verdict("kafka-records", await suite.run_group("kafka-records", cases, 60))


async def test_the_worker_survived_and_the_audit_caught_up(suite: Suite) -> None:
    await suite.outcomes.catch_up()
    problems = []
    worker = suite.worker
    if worker.process.poll() is not None:
        problems.append(f"the worker exited with {worker.process.returncode}")
    if worker.restarts():
        problems.append(
            f"the worker restarted in place {worker.restarts()} time(s) "
            "('restarting the worker in place' in its log)"
        )
    cases = [effective(c) for c in suite.sent]
    for case in cases:
        answers = suite.outcomes.results.get(case.sid or "", [])
        dead = suite.outcomes.dead.get(case.key, [])
        if len(answers) > 1 or len(dead) > 1:
            problems.append(
                f"{case.name}: {len(answers)} results and {len(dead)} DLQ records by now "
                f"(event ids {[a.value.get('event_id') for a in answers]})"
            )
    if suite.outcomes.unreadable:
        problems.append(
            f"results that are not JSON or carry no submission id: {suite.outcomes.unreadable}"
        )
    answered = sorted({c.sid for c in cases if c.sid and suite.outcomes.results.get(c.sid)})
    rows = await wait_execution_rows(suite.pg_url, answered, 20)
    missing = [s for s in answered if not rows.get(s)]
    if missing:
        problems.append(
            f"{len(missing)}/{len(answered)} answered submissions have no executions row "
            f"with a status: {missing}"
        )
    lag = await wait_metric(worker, "streamworker_audit_lag_events", 0.0, 20)
    if lag != 0.0:
        problems.append(f"streamworker_audit_lag_events = {lag!r}, expected 0")
    # Every submission's container (named after it) is gone once it is answered.
    left = await wait_no_containers(f"streamworker-{suite.sid('')}", 20)
    if left:
        problems.append(f"containers left behind for this suite's submissions: {left}")
    assert not problems, (
        "after all groups:\n  - "
        + "\n  - ".join(problems)
        + f"\n{worker.state()}\nworker log tail:\n{worker.log_tail(2500)}"
    )
