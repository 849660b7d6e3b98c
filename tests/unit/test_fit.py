"""Fitting result events under the Kafka message limit (pure)."""

from __future__ import annotations

import base64
import dataclasses
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from streamworker.contract import ResultEvent, RunResult, Status
from streamworker.fit import fit_result, json_text_len, water_level
from streamworker.verdict import decode_output

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def run(stdout: bytes = b"", stderr: bytes = b"", case: str = "1") -> RunResult:
    out, err = decode_output(stdout, 1 << 20), decode_output(stderr, 1 << 20)
    return RunResult(
        test_case_id=case,
        status=Status.ACCEPTED,
        stdout=out.text,
        stderr=err.text,
        stdout_b64=out.b64,
        stderr_b64=err.b64,
        stdout_bytes=len(stdout),
        stderr_bytes=len(stderr),
        exit_code=0,
        cpu_time_s=0.01,
        wall_time_s=0.02,
        memory_kb=1000,
    )


def result(*runs: RunResult) -> ResultEvent:
    return ResultEvent(
        submission_id="s1",
        status=Status.ACCEPTED,
        language="python",
        worker_id="w",
        received_at=T0,
        started_at=T0,
        finished_at=T0,
        runs=runs,
        event_id="e",
    )


def test_json_text_len_counts_escapes() -> None:
    assert json_text_len('a\x01\n"\\é€😀') == 1 + 6 + 2 + 2 + 2 + 2 + 3 + 4


def test_water_level() -> None:
    assert water_level([100, 10], 50) == 50
    assert water_level([100, 100], 50) == 75
    assert water_level([100, 60, 10], 60) == 50
    assert water_level([10], 100) == 0


def test_a_result_that_fits_is_unchanged() -> None:
    small = result(run(b"hi\n"))
    assert fit_result(small, 10_000) is small


def test_control_bytes_are_cut_until_the_event_fits() -> None:
    # The case: 64 KiB of \x01 on both streams, two cases: ~1.57 MB encoded.
    noisy = b"\x01" * 65536
    big = result(run(noisy, noisy, "1"), run(noisy, noisy, "2"))
    assert len(big.encode()) > 1_500_000
    fitted = fit_result(big, 200_000)
    assert len(fitted.encode()) <= 200_000
    for before, after in zip(big.runs, fitted.runs, strict=True):
        assert after.stdout_truncated and after.stderr_truncated
        assert (after.status, after.exit_code, after.cpu_time_s, after.memory_kb) == (
            before.status,
            before.exit_code,
            before.cpu_time_s,
            before.memory_kb,
        )
        assert after.stdout_bytes == 65536 and after.stderr_bytes == 65536
        assert noisy.decode().startswith(after.stdout)
    # Cut to a common level: no stream starves while another keeps everything.
    lengths = [len(r.stdout) for r in fitted.runs] + [len(r.stderr) for r in fitted.runs]
    assert max(lengths) - min(lengths) <= 1


def test_the_largest_output_is_cut_first() -> None:
    big = result(run(b"x" * 100_000, b"small"), run(b"y" * 1000))
    fitted = fit_result(big, 50_000)
    assert len(fitted.encode()) <= 50_000
    assert fitted.runs[0].stderr == "small" and not fitted.runs[0].stderr_truncated
    assert fitted.runs[1].stdout == "y" * 1000 and not fitted.runs[1].stdout_truncated
    assert fitted.runs[0].stdout_truncated


def test_binary_output_keeps_an_exact_prefix() -> None:
    data = bytes(range(256)) * 400
    fitted = fit_result(result(run(data)), 20_000)
    out = fitted.runs[0]
    assert len(fitted.encode()) <= 20_000
    assert out.stdout_b64 is not None and out.stdout_truncated
    kept = base64.b64decode(out.stdout_b64)
    assert kept and data.startswith(kept)
    assert out.stdout == kept.decode("utf-8", "replace")


def test_compile_output_is_cut_too() -> None:
    compiled = dataclasses.replace(run(b"", b"error: " * 50_000), test_case_id=None)
    big = dataclasses.replace(result(), compile=compiled, status=Status.COMPILATION_ERROR)
    fitted = fit_result(big, 10_000)
    assert len(fitted.encode()) <= 10_000
    assert fitted.compile is not None and fitted.compile.stderr_truncated
    assert fitted.status is Status.COMPILATION_ERROR


def test_what_cannot_be_cut_is_returned_as_is() -> None:
    bare = result(run())
    assert fit_result(bare, 10) == bare


outputs = st.one_of(st.binary(max_size=3000), st.text(max_size=3000).map(str.encode))


@settings(max_examples=60, deadline=None)
@given(
    streams=st.lists(st.tuples(outputs, outputs), min_size=1, max_size=6),
    limit=st.integers(min_value=2_500, max_value=40_000),
)
def test_fitted_results_fit_and_keep_prefixes(
    streams: list[tuple[bytes, bytes]], limit: int
) -> None:
    big = result(*(run(o, e, str(i)) for i, (o, e) in enumerate(streams)))
    fitted = fit_result(big, limit)
    assert len(fitted.encode()) <= limit
    for before, after in zip(big.runs, fitted.runs, strict=True):
        assert after.status is before.status and after.stdout_bytes == before.stdout_bytes
        for stream in ("stdout", "stderr"):
            if not getattr(after, f"{stream}_truncated"):
                assert getattr(after, stream) == getattr(before, stream)
            b64 = getattr(after, f"{stream}_b64")
            if b64 is not None:
                original = base64.b64decode(getattr(before, f"{stream}_b64"))
                assert original.startswith(base64.b64decode(b64))
            else:
                assert getattr(before, stream).startswith(getattr(after, stream))
