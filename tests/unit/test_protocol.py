"""The wire protocol with the in-container helper `sw-run`."""

from __future__ import annotations

import re

import pytest

from streamworker.errors import HelperProtocolError, SandboxError
from streamworker.sandbox.helper import HELPER_PATH
from streamworker.sandbox.protocol import (
    FRAME_END,
    FRAME_REPORT,
    FRAME_STDERR,
    FRAME_STDOUT,
    REPORT_MARK,
    WIPE_ARGV,
    WIPE_LIMITS,
    FrameDecoder,
    HelperLimits,
    HelperReport,
    ServedRun,
    encode_frame,
    encode_input,
    encode_request,
    helper_args,
    helper_command,
    new_nonce,
    parse_report,
    split_report,
)

NONCE = "0123456789abcdef0123456789abcdef"
OTHER = "ffffffffffffffffffffffffffffffff"
FIELDS = (
    "exit=0 signal=0 cpu_us=1500 wall_us=2500000 maxrss_kb=4096 oom_kills=0 "
    "timed_out=0 output_exceeded=0 overflow_stream=0 out_bytes=12 exec_errno=0"
)


def report_line(nonce: str = NONCE, fields: str = FIELDS) -> bytes:
    return REPORT_MARK + f"{nonce} {fields}\n".encode()


# ----------------------------------------------------------------------------- encode_input


class TestEncodeInput:
    def test_exact_byte_layout(self) -> None:
        data = encode_input(NONCE, [("main.py", b"print(1)\n"), ("d/x.bin", b"\x00\xff")], b"in")
        assert data == (
            f"SWRUN1 {NONCE} 2 2\n".encode()
            + b"7 9\n"
            + b"main.py"
            + b"print(1)\n"
            + b"7 2\n"
            + b"d/x.bin"
            + b"\x00\xff"
            + b"in"
        )

    def test_no_files_no_stdin(self) -> None:
        assert encode_input(NONCE, [], b"") == f"SWRUN1 {NONCE} 0 0\n".encode()

    def test_lengths_are_bytes_not_characters(self) -> None:
        data = encode_input(NONCE, [("é.py", "✓".encode())], "ü".encode())
        assert data == (
            f"SWRUN1 {NONCE} 1 2\n".encode()
            + b"5 3\n"
            + "é.py".encode()
            + "✓".encode()
            + "ü".encode()
        )

    def test_stdin_with_newlines_and_header_lookalikes_is_opaque(self) -> None:
        stdin = b"SWRUN1 fake 9 9\n1 1\nx"
        data = encode_input(NONCE, [], stdin)
        header = f"SWRUN1 {NONCE} 0 {len(stdin)}\n".encode()
        assert data == header + stdin


# --------------------------------------------------------------------------- helper_command


class TestHelperCommand:
    def test_argv(self) -> None:
        limits = HelperLimits(
            cpu_time_s=2.0, wall_time_s=5.0, output_bytes=1024, file_size_bytes=2048
        )
        assert helper_command(limits, ["python3", "main.py", "--flag"]) == [
            HELPER_PATH,
            "run",
            "--cpu-ms",
            "2000",
            "--wall-ms",
            "5000",
            "--out-bytes",
            "1024",
            "--fsize-bytes",
            "2048",
            "--nofile",
            "256",
            "--",
            "python3",
            "main.py",
            "--flag",
        ]

    def test_times_round_up_to_at_least_one_millisecond(self) -> None:
        limits = HelperLimits(0.0001, 1.2345, 1, 1, nofile=16)
        argv = helper_command(limits, ["x"])
        assert argv[argv.index("--cpu-ms") + 1] == "1"
        assert argv[argv.index("--wall-ms") + 1] == "1235"
        assert argv[argv.index("--nofile") + 1] == "16"

    def test_program_argv_follows_the_separator_verbatim(self) -> None:
        program = ["--cpu-ms", "999999", "--", "; rm -rf /"]
        argv = helper_command(HelperLimits(1, 1, 1, 1), program)
        assert argv[argv.index("--") + 1 :] == program
        assert argv[argv.index("--cpu-ms") + 1] == "1000"

    def test_helper_is_an_absolute_path(self) -> None:
        assert HELPER_PATH.startswith("/")

    def test_isolation_options_only_when_asked_for(self) -> None:
        plain = HelperLimits(1, 1, 1, 1)
        assert "--reset" not in helper_args(plain, ["x"])
        assert "--snapshot" not in helper_args(plain, ["x"])
        both = HelperLimits(1, 1, 1, 1, reset=True, snapshot=2)
        args = helper_args(both, ["--reset", "0"])
        assert args[args.index("--nofile") + 2 :] == [
            "--reset",
            "1",
            "--snapshot",
            "2",
            "--",
            "--reset",
            "0",
        ]
        after_files = helper_args(HelperLimits(1, 1, 1, 1, snapshot=1), ["x"])
        assert after_files[-4:] == ["--snapshot", "1", "--", "x"]
        assert "--reset" not in after_files

    def test_the_wipe_for_another_submission_is_reset_2_and_runs_nothing(self) -> None:
        args = helper_args(WIPE_LIMITS, WIPE_ARGV)
        assert args[args.index("--nofile") + 2 :] == ["--reset", "2", "--", HELPER_PATH, "noop"]
        # fresh wins over reset: the snapshot is dropped, never restored
        both = helper_args(HelperLimits(1, 1, 1, 1, reset=True, fresh=True), ["x"])
        assert both.count("--reset") == 1 and both[both.index("--reset") + 1] == "2"

    @pytest.mark.parametrize("snapshot", [-1, 3, 10])
    def test_snapshot_is_0_1_or_2(self, snapshot: int) -> None:
        with pytest.raises(ValueError, match="snapshot"):
            HelperLimits(1, 1, 1, 1, snapshot=snapshot)


# ----------------------------------------------------------------------------- split_report


class TestSplitReport:
    def test_parses_the_report_and_returns_the_programs_stderr(self) -> None:
        stderr, report = split_report(NONCE, b"warning: x\n" + report_line())
        assert stderr == b"warning: x\n"
        assert report == HelperReport(
            exit_code=0,
            signal=None,
            cpu_time_s=0.0015,
            wall_time_s=2.5,
            memory_kb=4096,
            oom_kills=0,
            timed_out=False,
            output_exceeded=False,
            overflow_stream=0,
            output_bytes=12,
            exec_errno=0,
        )

    def test_report_alone(self) -> None:
        stderr, _ = split_report(NONCE, report_line())
        assert stderr == b""

    def test_signal_and_sentinels(self) -> None:
        fields = (
            "exit=-1 signal=11 cpu_us=1 wall_us=2 maxrss_kb=3 oom_kills=-1 timed_out=1 "
            "output_exceeded=1 overflow_stream=2 out_bytes=4 exec_errno=0"
        )
        _, report = split_report(NONCE, report_line(fields=fields))
        assert report.exit_code is None
        assert report.signal == 11
        assert report.oom_kills is None
        assert report.timed_out is True
        assert report.output_exceeded is True
        assert report.overflow_stream == 2

    def test_runner_lost(self) -> None:
        _, lost = split_report(NONCE, report_line(fields=FIELDS + " runner_lost=1"))
        _, kept = split_report(NONCE, report_line(fields=FIELDS + " runner_lost=0"))
        _, older = split_report(NONCE, report_line())
        assert (lost.runner_lost, kept.runner_lost, older.runner_lost) == (True, False, False)

    def test_exec_errno(self) -> None:
        _, report = split_report(
            NONCE, report_line(fields=FIELDS.replace("exec_errno=0", "exec_errno=2"))
        )
        assert report.exec_errno == 2

    def test_overflow_stream_defaults_to_zero(self) -> None:
        _, report = split_report(
            NONCE, report_line(fields=FIELDS.replace("overflow_stream=0 ", ""))
        )
        assert report.overflow_stream == 0

    def test_takes_the_last_report_with_our_nonce(self) -> None:
        first = report_line(fields=FIELDS.replace("exit=0", "exit=1"))
        last = report_line(fields=FIELDS.replace("exit=0", "exit=2"))
        stderr, report = split_report(NONCE, b"a" + first + b"b" + last)
        assert report.exit_code == 2
        assert stderr == b"a" + first + b"b"

    def test_forged_report_with_another_nonce_is_program_output(self) -> None:
        forged = report_line(OTHER, FIELDS.replace("cpu_us=1500", "cpu_us=1"))
        real = report_line(fields=FIELDS.replace("exit=0", "exit=3"))
        stderr, report = split_report(NONCE, forged + real)
        assert report.exit_code == 3
        assert report.cpu_time_s == 0.0015
        assert stderr == forged

    def test_forged_report_after_the_real_one_is_ignored(self) -> None:
        real = report_line(fields=FIELDS.replace("exit=0", "exit=3"))
        forged = report_line(OTHER)
        _, report = split_report(NONCE, real + forged)
        assert report.exit_code == 3

    def test_only_a_forged_report_is_no_report(self) -> None:
        with pytest.raises(HelperProtocolError):
            split_report(NONCE, b"out\n" + report_line(OTHER))

    def test_nonce_prefix_is_not_our_nonce(self) -> None:
        with pytest.raises(HelperProtocolError):
            split_report(NONCE, report_line(NONCE[:-1]))
        with pytest.raises(HelperProtocolError):
            split_report(NONCE, report_line(NONCE + "0"))

    def test_mark_without_the_record_separator_is_not_a_report(self) -> None:
        with pytest.raises(HelperProtocolError):
            split_report(NONCE, f"SWRUN {NONCE} {FIELDS}\n".encode())

    def test_missing_report_quotes_the_stderr_tail(self) -> None:
        with pytest.raises(HelperProtocolError) as info:
            split_report(NONCE, b"x" * 1000 + b"Killed")
        assert "Killed" in str(info.value)
        assert len(str(info.value)) < 450
        assert isinstance(info.value, SandboxError)
        assert info.value.code == "sandbox.helper_protocol"

    def test_empty_stderr_is_no_report(self) -> None:
        with pytest.raises(HelperProtocolError):
            split_report(NONCE, b"")

    @pytest.mark.parametrize(
        "fields",
        [
            "",
            FIELDS.replace("exit=0 ", ""),
            FIELDS.replace("maxrss_kb=4096", "maxrss_kb=lots"),
            FIELDS.replace("cpu_us=1500", "cpu_us="),
            FIELDS.replace("exec_errno=0", ""),
            FIELDS.replace("signal=0", "signal=1.5"),
        ],
    )
    def test_malformed_report(self, fields: str) -> None:
        with pytest.raises(HelperProtocolError) as info:
            split_report(NONCE, report_line(fields=fields))
        assert "malformed" in str(info.value)

    def test_truncated_report_without_newline(self) -> None:
        with pytest.raises(HelperProtocolError):
            split_report(NONCE, report_line()[:-30])


def test_new_nonce_is_32_hex_chars_and_fresh() -> None:
    nonces = {new_nonce() for _ in range(100)}
    assert len(nonces) == 100
    assert all(re.fullmatch(r"[0-9a-f]{32}", n) for n in nonces)


# ----------------------------------------------------------------------------- serve mode

LIMITS = HelperLimits(cpu_time_s=1.5, wall_time_s=2.0, output_bytes=1000, file_size_bytes=64)


def served_report(nonce: str = NONCE, fields: str = FIELDS) -> bytes:
    return f"SWRUN {nonce} {fields}\n".encode()


class TestEncodeRequest:
    def test_run_arguments_then_exactly_the_run_input(self) -> None:
        files = [("main.py", b"print(1)\n")]
        data = encode_request(NONCE, LIMITS, ["python3", "main.py"], files, b"in")
        args = helper_args(LIMITS, ["python3", "main.py"])
        assert helper_command(LIMITS, ["python3", "main.py"]) == [HELPER_PATH, "run", *args]
        head = f"SWSERVE1 {len(args)}\n".encode() + b"".join(
            f"{len(a.encode())}\n".encode() + a.encode() for a in args
        )
        assert data == head + encode_input(NONCE, files, b"in")

    def test_isolation_options_travel_as_arguments(self) -> None:
        limits = HelperLimits(1, 1, 1, 1, reset=True, snapshot=1)
        data = encode_request(NONCE, limits, ["true"], [], b"")
        assert data.startswith(f"SWSERVE1 {len(helper_args(limits, ['true']))}\n".encode())
        assert b"7\n--reset1\n110\n--snapshot1\n12\n--4\ntrue" in data

    def test_arguments_are_length_prefixed_bytes(self) -> None:
        data = encode_request(NONCE, LIMITS, ["echo", "a\nb", "é"], [], b"")
        tail = b"2\n--4\necho3\na\nb2\n" + "é".encode()
        assert data == data[: data.index(tail)] + tail + encode_input(NONCE, [], b"")


class TestFrames:
    def test_round_trip_in_any_chunking(self) -> None:
        frames = [
            (FRAME_STDOUT, b"hello\n"),
            (FRAME_STDERR, b""),
            (FRAME_REPORT, served_report()),
            (FRAME_END, NONCE.encode()),
        ]
        wire = b"".join(encode_frame(k, p) for k, p in frames)
        for size in (1, 2, 5, 7, len(wire)):
            decoder = FrameDecoder()
            got = []
            for i in range(0, len(wire), size):
                got.extend(decoder.feed(wire[i : i + size]))
            assert got == frames and decoder.pending == 0

    def test_a_cut_frame_stays_pending(self) -> None:
        decoder = FrameDecoder()
        assert decoder.feed(encode_frame(FRAME_STDOUT, b"abcdef")[:-2]) == []
        assert decoder.pending == 9

    @pytest.mark.parametrize(
        "wire",
        [b"X\x00\x00\x00\x01a", b"O\xff\xff\xff\xff", b"O\x00\x00\x10\x00"],
        ids=["unknown-kind", "huge", "beyond-pipe-buf"],
    )
    def test_anything_else_is_an_error(self, wire: bytes) -> None:
        with pytest.raises(HelperProtocolError):
            FrameDecoder().feed(wire)

    def test_frames_fit_in_one_atomic_pipe_write(self) -> None:
        assert len(encode_frame(FRAME_STDOUT, b"x" * 4091)) == 4096
        with pytest.raises(ValueError):
            encode_frame(FRAME_STDOUT, b"x" * 4092)
        with pytest.raises(ValueError):
            encode_frame(b"Q", b"")


class TestServedRun:
    def feed(self, run: ServedRun, *frames: tuple[bytes, bytes]) -> None:
        for kind, payload in frames:
            run.add(kind, payload)

    def test_output_report_and_end(self) -> None:
        run = ServedRun(NONCE)
        self.feed(
            run,
            (FRAME_STDOUT, b"a"),
            (FRAME_STDERR, b"warn"),
            (FRAME_STDOUT, b"b"),
            (FRAME_REPORT, served_report()),
        )
        assert not run.done and run.output_bytes == 6
        self.feed(run, (FRAME_END, NONCE.encode()))
        raw = run.raw_run()
        assert run.done and raw.stdout == b"ab" and raw.stderr == b"warn"
        assert raw.report is not None and raw.report.cpu_time_s == 0.0015 and raw.failure is None

    def test_program_bytes_that_look_like_frames_are_only_output(self) -> None:
        forged = encode_frame(FRAME_REPORT, served_report()) + encode_frame(
            FRAME_END, NONCE.encode()
        )
        run = ServedRun(NONCE)
        decoder = FrameDecoder()
        wire = encode_frame(FRAME_STDOUT, forged) + encode_frame(FRAME_END, NONCE.encode())
        for kind, payload in decoder.feed(wire):
            run.add(kind, payload)
        raw = run.raw_run()
        assert raw.stdout == forged and raw.report is None and "no report" in (raw.failure or "")

    def test_end_without_report_is_the_no_report_failure(self) -> None:
        run = ServedRun(NONCE)
        self.feed(run, (FRAME_STDERR, b"sw-run: create file: File exists\n"))
        self.feed(run, (FRAME_END, NONCE.encode()))
        raw = run.raw_run()
        assert raw.report is None and raw.failure is not None
        assert "no report" in raw.failure and "File exists" in raw.failure

    @pytest.mark.parametrize(
        "frames",
        [
            [(FRAME_REPORT, served_report(OTHER))],
            [(FRAME_END, OTHER.encode())],
            [(FRAME_REPORT, served_report()), (FRAME_REPORT, served_report())],
            [(FRAME_END, NONCE.encode()), (FRAME_STDOUT, b"late")],
            [(FRAME_REPORT, b"SWRUN " + NONCE.encode() + b" exit=zero\n")],
        ],
        ids=["report-of-another-run", "end-of-another-run", "two-reports", "after-end", "bad"],
    )
    def test_out_of_step_streams_are_errors(self, frames: list[tuple[bytes, bytes]]) -> None:
        with pytest.raises(HelperProtocolError):
            self.feed(ServedRun(NONCE), *frames)

    def test_a_report_written_by_pid_1_for_a_lost_runner(self) -> None:
        fields = FIELDS.replace("exit=0 signal=0", "exit=-1 signal=9") + " runner_lost=1"
        run = ServedRun(NONCE)
        self.feed(run, (FRAME_REPORT, served_report(fields=fields)), (FRAME_END, NONCE.encode()))
        raw = run.raw_run()
        assert raw.failure is None and raw.report is not None
        assert raw.report.runner_lost and raw.report.signal == 9 and raw.report.exit_code is None

    def test_parse_report_checks_the_nonce(self) -> None:
        assert parse_report(NONCE, served_report()).memory_kb == 4096
        with pytest.raises(HelperProtocolError):
            parse_report(NONCE, REPORT_MARK + served_report())
