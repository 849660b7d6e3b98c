"""`sw-run serve` on the host (no Docker): request after request on one stream, each
run's figures its own, and a killed runner never puts the stream out of step."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamworker.sandbox import protocol
from streamworker.sandbox.helper import build_helper
from streamworker.sandbox.protocol import HelperLimits, RawRun
from tests.conftest import need

pytestmark = [pytest.mark.integration]

LIMITS = HelperLimits(cpu_time_s=5, wall_time_s=5, output_bytes=100_000, file_size_bytes=1 << 20)
PY = shutil.which("python3") or "python3"


class Served:
    def __init__(self, binary: Path, workdir: Path) -> None:
        self.proc = subprocess.Popen(
            [str(binary), "serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=workdir,
        )

    def run(
        self, argv: list[str], files: list[tuple[str, bytes]] | None = None, stdin: bytes = b""
    ) -> RawRun:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        nonce = protocol.new_nonce()
        self.proc.stdin.write(protocol.encode_request(nonce, LIMITS, argv, files or [], stdin))
        self.proc.stdin.flush()
        decoder = protocol.FrameDecoder()
        run = protocol.ServedRun(nonce)
        while not run.done:
            data = os.read(self.proc.stdout.fileno(), 65536)
            assert data, "the helper's stream ended"
            for kind, payload in decoder.feed(data):
                run.add(kind, payload)
        assert decoder.pending == 0
        return run.raw_run()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    need(
        "a C compiler (cc/gcc) to build the helper", bool(shutil.which("cc") or shutil.which("gcc"))
    )
    workdir = tmp_path / "work"
    workdir.mkdir()
    helper = Served(build_helper(tmp_path / "helper"), workdir)
    yield helper
    if helper.proc.poll() is None:
        helper.proc.kill()
    helper.proc.wait()


def test_runs_one_after_another_with_files_and_stdin(served: Served) -> None:
    first = served.run([PY, "main.py"], [("main.py", b"print(input()[::-1])")], b"abc\n")
    assert first.stdout == b"cba\n" and first.report is not None and first.report.exit_code == 0
    second = served.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (second.stdout, second.stderr) == (b"out\n", b"err\n")
    assert second.report is not None and second.report.exit_code == 3


def test_each_run_reports_its_own_peak_memory_and_cpu(served: Served) -> None:
    big = served.run(
        [PY, "-c", "b = bytearray(80 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1"]
    )
    small = served.run(["true"])
    assert big.report is not None and big.report.memory_kb > 80 * 1024
    assert small.report is not None and small.report.memory_kb < 20 * 1024
    assert small.report.cpu_time_s < big.report.cpu_time_s


def test_a_killed_runner_ends_its_run_without_a_report_and_the_next_runs(served: Served) -> None:
    orphan = "(sleep 0.5; touch late) >/dev/null 2>&1 </dev/null &"
    killed = served.run(["sh", "-c", f"{orphan} kill -9 $PPID; sleep 30"])
    assert killed.report is None and killed.failure is not None
    after = served.run(["sh", "-c", "sleep 1; ls"])
    assert after.report is not None and b"late" not in after.stdout, after


def test_a_background_process_does_not_outlive_its_run(served: Served, tmp_path: Path) -> None:
    served.run(["sh", "-c", "(sleep 0.5; touch late) >/dev/null 2>&1 </dev/null & echo bg"])
    check = served.run(["sh", "-c", "sleep 1; ls"])
    assert b"late" not in check.stdout


def test_an_undeliverable_file_is_answered_without_a_run(served: Served) -> None:
    assert served.run(["true"], [("a", b"1")]).report is not None
    clash = served.run(["touch", "ran"], [("a", b"again"), ("b", b"x" * 100_000)])
    assert clash.report is None and clash.failure is not None and "File exists" in clash.failure
    after = served.run(["ls"])
    assert after.stdout == b"a\n", "the clashing request must not run, nor leave its files"


def test_output_beyond_the_limit_is_cut_and_reported(served: Served) -> None:
    flood = served.run([PY, "-c", "import sys\nwhile True: sys.stdout.write('y' * 65536)"])
    assert flood.report is not None and flood.report.output_exceeded
    assert len(flood.stdout) == LIMITS.output_bytes


def test_end_of_input_stops_the_server(served: Served) -> None:
    assert served.proc.stdin is not None
    served.proc.stdin.close()
    assert served.proc.wait(timeout=5) == 0
