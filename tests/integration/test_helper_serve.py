"""`sw-run serve`: request after request on one stream, each run's figures its own, a
bad request answered (never the end of the server), a runner the program stops or kills
replaced by PID 1's own report, and test cases isolated by reset and snapshot.

Most tests run the helper on the host (no Docker). What needs the helper to be a
container's PID 1 (`kill(-1)` from the program, emptying /tmp on reset) runs it as the
main process of a hardened container of the python runtime image, with the helper
built from this checkout mounted over the image's own."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from streamworker.sandbox import protocol
from streamworker.sandbox.helper import HELPER_PATH, build_helper
from streamworker.sandbox.protocol import HelperLimits, RawRun
from tests.conftest import docker_ok, image_env, need

pytestmark = [pytest.mark.integration]

LIMITS = HelperLimits(cpu_time_s=5, wall_time_s=5, output_bytes=100_000, file_size_bytes=1 << 20)
PY = shutil.which("python3") or "python3"
SLACK_S = 1.0
"""PID 1's deadline past the wall limit (SUPERVISE_SLACK_MS in sw_run.c)."""


class Served:
    """A running `sw-run serve` (on the host or as a container's main process)."""

    def __init__(self, argv: list[str], cwd: Path | None = None) -> None:
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd
        )
        self.decoder = protocol.FrameDecoder()

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def frames(self) -> list[tuple[bytes, bytes]]:
        """The frames of one answer, up to and including its end frame."""
        assert self.proc.stdout is not None
        got: list[tuple[bytes, bytes]] = []
        while not got or got[-1][0] != protocol.FRAME_END:
            data = os.read(self.proc.stdout.fileno(), 65536)
            assert data, f"the helper's stream ended after {got!r}: {self.last_words()}"
            got.extend(self.decoder.feed(data))
        assert self.decoder.pending == 0
        return got

    def last_words(self) -> str:
        """Why the stream ended: the exit status and stderr (of `docker run` too)."""
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            return "the process is still running"
        assert self.proc.stderr is not None
        return f"exit {code}, stderr {self.proc.stderr.read()[-4000:]!r}"

    def run(
        self,
        argv: list[str],
        files: list[tuple[str, bytes]] | None = None,
        stdin: bytes = b"",
        limits: HelperLimits = LIMITS,
    ) -> RawRun:
        nonce = protocol.new_nonce()
        self.send(protocol.encode_request(nonce, limits, argv, files or [], stdin))
        run = protocol.ServedRun(nonce)
        for kind, payload in self.frames():
            run.add(kind, payload)
        assert run.done
        return run.raw_run()

    def start(self, argv: list[str], limits: HelperLimits = LIMITS) -> None:
        """Send a request and read nothing yet."""
        self.send(protocol.encode_request(protocol.new_nonce(), limits, argv, [], b""))

    def hang_up(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    def assert_serves(self) -> None:
        """The server is still up and in step: a plain request runs."""
        after = self.run(["sh", "-c", "echo still here"])
        assert after.stdout == b"still here\n" and after.report is not None, after
        assert after.report.exit_code == 0 and not after.report.runner_lost


@pytest.fixture(scope="module")
def helper_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The helper built from this checkout's source (once: a static build takes seconds)."""
    need(
        "a C compiler (cc/gcc) to build the helper", bool(shutil.which("cc") or shutil.which("gcc"))
    )
    return build_helper(tmp_path_factory.mktemp("helper"))


@pytest.fixture
def served(tmp_path: Path, helper_binary: Path) -> Iterator[Served]:
    workdir = tmp_path / "work"
    workdir.mkdir()
    helper = Served([str(helper_binary), "serve"], workdir)
    yield helper
    if helper.proc.poll() is None:
        helper.proc.kill()
    helper.proc.wait()


RUNTIME_IMAGE = (
    image_env().get("STREAMWORKER_IMAGE_PREFIX", "streamworker-runtime") + "/python:bookworm"
)


@pytest.fixture
def contained(request: pytest.FixtureRequest, helper_binary: Path) -> Iterator[Served]:
    """`sw-run serve` as PID 1 of a container hardened like a pooled sandbox (uid 65534,
    no capabilities, read-only root, tmpfs work dir and /tmp, Docker's init off).
    Indirect parameter: a pids limit set once PID 1 serves (else 256 from the start).
    A limit of 2 from the start leaves runc's own start-up tasks no room: the likeliest
    reason a CI run once saw the container end before the helper answered."""
    pids_later = getattr(request, "param", None)
    need("Docker", docker_ok())
    have_image = subprocess.run(
        ["docker", "image", "inspect", RUNTIME_IMAGE], capture_output=True, check=False
    )
    need(f"the runtime image {RUNTIME_IMAGE}", have_image.returncode == 0)
    name = f"sw-helper-test-{uuid.uuid4().hex[:10]}"
    tmpfs = "rw,exec,nosuid,nodev,size=64m"
    argv = [
        "docker", "run", "-i", "--rm", "--name", name,
        "--user", "65534:65534", "--workdir", "/workspace",
        "--network", "none", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--read-only", "--ipc", "private", "--shm-size", "16m",
        "--tmpfs", f"/workspace:{tmpfs},uid=65534,gid=65534,mode=0700",
        "--tmpfs", f"/tmp:{tmpfs},mode=1777",
        "--memory", "512m", "--pids-limit", "256",
        "-v", f"{helper_binary}:{HELPER_PATH}:ro",
        "--entrypoint", HELPER_PATH, RUNTIME_IMAGE, "serve",
    ]  # fmt: skip
    helper = Served(argv)
    if pids_later is not None:
        helper.assert_serves()
        subprocess.run(
            ["docker", "update", "--pids-limit", str(pids_later), name],
            capture_output=True,
            check=True,
        )
    yield helper
    if helper.proc.poll() is None and helper.proc.stdin is not None:
        helper.proc.stdin.close()  # end of input: the helper exits, the container goes
        with contextlib.suppress(subprocess.TimeoutExpired):
            helper.proc.wait(timeout=10)
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    if helper.proc.poll() is None:
        helper.proc.kill()
    helper.proc.wait()


# ----------------------------------------------------------------------------- basics


def test_runs_one_after_another_with_files_and_stdin(served: Served) -> None:
    first = served.run([PY, "main.py"], [("main.py", b"print(input()[::-1])")], b"abc\n")
    assert first.stdout == b"cba\n" and first.report is not None and first.report.exit_code == 0
    assert not first.report.runner_lost
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


LONG = replace(LIMITS, cpu_time_s=60, wall_time_s=60)


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_a_hangup_mid_run_kills_the_run_and_ends_the_server(served: Served, tmp_path: Path) -> None:
    """A worker that goes away mid-run (killed, restarted) can read no output and send no
    request: the helper ends the run at once instead of letting it run to its limits."""
    marker = tmp_path / "work" / "pid"
    script = "import os, time\nopen('pid', 'w').write(str(os.getpid()))\ntime.sleep(50)"
    served.start([PY, "-c", script], limits=LONG)
    deadline = time.monotonic() + 10
    while not (marker.exists() and marker.read_text()) and time.monotonic() < deadline:
        time.sleep(0.02)
    program = int(marker.read_text())
    began = time.monotonic()
    served.hang_up()
    assert served.proc.wait(timeout=5) == 0
    assert time.monotonic() - began < 5
    while not _gone(program) and time.monotonic() - began < 5:
        time.sleep(0.02)
    assert _gone(program), "the program outlived the hangup"


def test_a_run_that_ends_by_itself_is_answered_and_a_later_hangup_ends_the_server(
    served: Served,
) -> None:
    """The watch is on during runs only: between them the end of input ends it as ever,
    and a run that ends by itself is answered in full."""
    served.assert_serves()
    quick = served.run(["sh", "-c", "sleep 0.3; echo done"])
    assert quick.stdout == b"done\n" and quick.report is not None
    served.hang_up()
    assert served.proc.wait(timeout=5) == 0


# ---------------------------------------------------------------- bad requests: answered


def test_the_contracts_budgets_fit(served: Served) -> None:
    """300 program arguments, one of 64 KiB, a 255-byte path: all within the limits."""
    args = [f"a{i}" for i in range(299)] + ["x" * 65536]
    path = "d/" + "p" * 253
    run = served.run(
        ["sh", "-c", 'echo $#; printf %s "${300}" | wc -c; cat "$0"', path, *args],
        [(path, b"file\n")],
    )
    assert run.report is not None and run.report.exit_code == 0, run
    assert run.stdout == b"300\n65536\nfile\n"


def test_stdin_up_to_its_budget_and_beyond(served: Served) -> None:
    big = served.run(["wc", "-c"], stdin=b"x" * (9 << 20))
    assert big.report is not None and big.stdout.strip() == str(9 << 20).encode(), big
    over = served.run(["wc", "-c"], stdin=b"x" * ((64 << 20) + 1))
    assert over.report is None and b"stdin larger than 64 MiB" in over.stderr, over
    served.assert_serves()


def argv_of(n: int) -> list[str]:
    return ["true", *(str(i) for i in range(n - 1))]


@pytest.mark.parametrize(
    ("argv", "files", "stdin", "why"),
    [
        (argv_of(600), [], b"", "more than 512 arguments"),
        (["echo", "x" * 70_000], [], b"", "argument longer than 64 KiB"),
        (["true"], [("p" * 300, b"content")], b"in", "longer than 255 bytes"),
        (["true"], [("../escape", b"content")], b"", "unsafe file path"),
        (["true"], [(f"f{i}", b"") for i in range(65)], b"", "more than 64 files"),
    ],
    ids=["600-args", "70KB-arg", "300-byte-path", "unsafe-path", "65-files"],
)
def test_a_bad_request_is_answered_and_the_next_runs(
    served: Served, argv: list[str], files: list[tuple[str, bytes]], stdin: bytes, why: str
) -> None:
    bad = served.run(argv, files, stdin)
    assert bad.report is None and bad.stdout == b"", bad
    assert bad.stderr.startswith(b"sw-run: ") and why in bad.stderr.decode(), bad.stderr
    served.assert_serves()
    assert served.run(["ls"]).stdout == b"", "a refused request writes no file"


def request_with(nonce: str, args: list[bytes], tail: bytes = b"") -> bytes:
    head = f"SWSERVE1 {len(args)}\n".encode()
    body = b"".join(f"{len(a)}\n".encode() + a for a in args)
    return head + body + (tail or protocol.encode_input(nonce, [], b""))


@pytest.mark.parametrize(
    "args",
    [
        [b"--cpu-ms", b"1", b"--bogus", b"1", b"--", b"true"],
        [b"--wall-ms", b"-5", b"--", b"true"],
        [b"--snapshot", b"3", b"--", b"true"],
        [b"--cpu-ms", b"1"],
        [b"--", b"tr\x00ue"],
        [],
    ],
    ids=["unknown-option", "negative", "snapshot-3", "no-command", "nul", "no-args"],
)
def test_bad_arguments_are_answered_and_the_next_runs(served: Served, args: list[bytes]) -> None:
    nonce = protocol.new_nonce()
    served.send(request_with(nonce, args))
    frames = served.frames()
    assert [k for k, _ in frames] == [protocol.FRAME_STDERR, protocol.FRAME_END]
    assert frames[0][1].startswith(b"sw-run: ") and frames[1][1] == nonce.encode()
    served.assert_serves()


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"SWSERVE1 two\n2\n--\n",
        b"SWSERVE1 " + b"9" * 200 + b"\n",
        b"\x00\xff" * 5000 + b"\n",
    ],
    ids=["http", "bad-count", "long-line", "binary"],
)
def test_a_garbage_header_is_answered_and_the_next_request_runs(
    served: Served, garbage: bytes
) -> None:
    served.send(garbage)
    frames = served.frames()
    assert [k for k, _ in frames] == [protocol.FRAME_STDERR, protocol.FRAME_END]
    assert frames[0][1] == b"sw-run: bad request header\n" and frames[1][1] == b""
    served.assert_serves()
    assert served.proc.poll() is None


def test_lost_framing_inside_a_request_skips_to_the_next_request(served: Served) -> None:
    nonce = protocol.new_nonce()
    bad_file_header = f"SWRUN1 {nonce} 1 0\n".encode() + b"five 1\nxx\nmore junk\n"
    served.send(request_with(nonce, [b"--", b"true"], bad_file_header))
    frames = served.frames()
    assert frames == [
        (protocol.FRAME_STDERR, b"sw-run: bad file header\n"),
        (protocol.FRAME_END, nonce.encode()),
    ]
    served.assert_serves()


def test_reset_is_refused_unless_pid_1(served: Served) -> None:
    """On a host, emptying /tmp would be a disaster: only a container's PID 1 resets."""
    refused = served.run(["true"], limits=replace(LIMITS, reset=True))
    assert refused.report is None and b"PID 1" in refused.stderr
    served.assert_serves()


# ---------------------------------------------------------- the runner out of reach

QUICK = replace(LIMITS, wall_time_s=2)


def test_a_runner_stopped_by_its_program_is_replaced_by_pid_1(served: Served) -> None:
    stop = "import os, signal, time\nos.kill(os.getppid(), signal.SIGSTOP)\ntime.sleep(30)"
    started = time.monotonic()
    stopped = served.run([PY, "-c", stop], limits=QUICK)
    took = time.monotonic() - started
    assert stopped.report is not None, stopped
    assert stopped.report.timed_out and not stopped.report.runner_lost
    assert stopped.report.signal == signal.SIGKILL and stopped.report.exit_code is None
    assert QUICK.wall_time_s + SLACK_S - 0.1 <= took < QUICK.wall_time_s + SLACK_S + 1.5
    served.assert_serves()


def test_a_runner_killed_by_its_program_is_reported_lost(served: Served) -> None:
    orphan = "(sleep 0.5; touch late) >/dev/null 2>&1 </dev/null &"
    killed = served.run(["sh", "-c", f"{orphan} kill -9 $PPID; sleep 30"])
    assert killed.report is not None, killed
    assert killed.report.runner_lost and not killed.report.timed_out
    assert killed.report.signal == signal.SIGKILL and killed.report.exit_code is None
    assert killed.report.wall_time_s < 2
    after = served.run(["sh", "-c", "sleep 1; ls"])
    assert after.report is not None and b"late" not in after.stdout, after


@pytest.mark.parametrize(
    "script",
    [
        "kill -STOP $$",
        "sleep 30 & kill -STOP $!; wait",
        "(kill -STOP $$) & sleep 30",
    ],
    ids=["itself", "its-child", "by-its-child"],
)
def test_a_stopped_program_ends_with_the_runners_report(served: Served, script: str) -> None:
    started = time.monotonic()
    run = served.run(["sh", "-c", script], limits=QUICK)
    assert run.report is not None and run.report.timed_out and not run.report.runner_lost
    assert time.monotonic() - started < QUICK.wall_time_s + SLACK_S
    served.assert_serves()


# ------------------------------------------------------------------- as a container's PID 1


def test_in_a_container_bad_requests_and_lost_runners_leave_pid_1_serving(
    contained: Served,
) -> None:
    contained.send(b"garbage\n")
    assert contained.frames()[0] == (protocol.FRAME_STDERR, b"sw-run: bad request header\n")
    contained.assert_serves()
    big = contained.run(["echo", "x" * 70_000])
    assert big.report is None and b"longer than 64 KiB" in big.stderr
    contained.assert_serves()
    stop = "import os, signal, time\nos.kill(os.getppid(), signal.SIGSTOP)\ntime.sleep(30)"
    stopped = contained.run(["python3", "-c", stop], limits=QUICK)
    assert stopped.report is not None and stopped.report.timed_out, stopped
    contained.assert_serves()
    killed = contained.run(["python3", "-c", "import os\nos.kill(os.getppid(), 9)"])
    assert killed.report is not None and killed.report.runner_lost, killed
    contained.assert_serves()


def test_in_a_container_a_hangup_mid_run_ends_the_container(contained: Served) -> None:
    """The worker's attach stream gone mid-run (`StdinOnce`): PID 1 kills the run and
    exits, so the container ends now, not when the 50 s program would."""
    script = "import time\nprint('started', flush=True)\ntime.sleep(50)"
    contained.start(["python3", "-c", script], limits=LONG)
    assert contained.proc.stdout is not None
    seen = b""
    deadline = time.monotonic() + 20
    while b"started" not in seen and time.monotonic() < deadline:
        seen += os.read(contained.proc.stdout.fileno(), 65536)
    assert b"started" in seen, seen
    began = time.monotonic()
    contained.hang_up()
    contained.proc.wait(timeout=15)
    assert time.monotonic() - began < 15


PROCESSES = (
    "import json, os\n"
    "me = os.getpid()\n"
    "print(json.dumps(sorted(int(p) for p in os.listdir('/proc')"
    " if p.isdigit() and int(p) not in (me, os.getppid()))))"
)


@pytest.mark.parametrize("contained", [2], indirect=True)
def test_a_runner_that_cannot_fork_answers_with_its_reason(contained: Served) -> None:
    """Pids limit 2: PID 1 and its runner, whose fork of the program fails. Not the
    program's doing, so no report (no verdict on it), and PID 1 goes on serving."""
    for _ in range(2):
        run = contained.run(["true"])
        assert run.report is None and b"sw-run: fork: " in run.stderr, run
        assert b"the run failed inside the helper" in run.stderr


def test_in_a_container_kill_everything_still_ends_with_a_report(contained: Served) -> None:
    script = (
        "import os, signal, subprocess\n"
        "subprocess.Popen(['sleep', '30'])\n"
        "os.kill(1, signal.SIGKILL)\n"  # PID 1: not reachable from inside
        "os.kill(1, signal.SIGSTOP)\n"
        "os.kill(-1, signal.SIGKILL)\n"
    )
    run = contained.run(["python3", "-c", script])
    assert run.report is not None and run.report.runner_lost, run
    assert run.report.signal == signal.SIGKILL
    leftovers = contained.run(["python3", "-c", PROCESSES])
    assert json.loads(leftovers.stdout) == [1], "only PID 1 and this run's own process"


STATE = """
import json, os, stat
def tree(root):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, root)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = "link:" + os.readlink(path)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = "dir:%o" % stat.S_IMODE(st.st_mode)
            else:
                with open(path, "rb") as f:
                    out[rel] = "file:%o:%s" % (stat.S_IMODE(st.st_mode), f.read().decode())
    return out
print(json.dumps({"work": tree("."), "tmp": sorted(os.listdir("/tmp")),
                  "shm": sorted(os.listdir("/dev/shm"))}))
"""

COMPILE = """
set -e
mkdir -p lib/sub
printf 'pristine\\n' > lib/sub/data
printf '#!/bin/sh\\necho compiled\\n' > prog
chmod 500 prog
ln -s prog link
chmod 555 lib
"""

VANDAL = r"""
./prog
echo junk > /tmp/junk; echo junk > /dev/shm/junk; echo junk > junk
mkdir -p /tmp/locked/inner && echo x > /tmp/locked/inner/f
chmod 000 /tmp/locked/inner /tmp/locked
d=/tmp/deep; for i in $(seq 80); do d=$d/d; done; mkdir -p $d && echo deep > $d/f
ln -s /etc/passwd /tmp/passwd-link
chmod 700 prog && echo 'echo hacked' > prog
chmod 755 lib && rm -rf lib/sub && ln -s /tmp lib/sub
chmod 000 .
"""


def test_reset_restores_the_snapshot_and_empties_scratch(contained: Served) -> None:
    compiled = contained.run(
        ["sh", "-c", COMPILE], [("main.c", b"int main;")], limits=replace(LIMITS, snapshot=2)
    )
    assert compiled.report is not None and compiled.report.exit_code == 0, compiled
    pristine = {
        "main.c": "file:600:int main;",
        "prog": "file:500:#!/bin/sh\necho compiled\n",
        "link": "link:prog",
        "lib": "dir:555",
        "lib/sub": "dir:755",
        "lib/sub/data": "file:644:pristine\n",
    }
    reset = replace(LIMITS, reset=True)
    for case in range(2):
        vandal = contained.run(["sh", "-c", VANDAL], limits=reset)
        assert vandal.report is not None and vandal.report.exit_code == 0, (case, vandal)
        assert vandal.stdout == b"compiled\n", "each test case starts from the compiled prog"
        state = contained.run(["python3", "-c", STATE], limits=reset)
        assert state.report is not None and state.report.exit_code == 0, state
        assert json.loads(state.stdout) == {"work": pristine, "tmp": [], "shm": []}
    # A request without --reset sees what the one before it left.
    kept = contained.run(["python3", "-c", "open('left', 'w')"], limits=reset)
    assert kept.report is not None and kept.report.exit_code == 0
    assert contained.run(["ls", "left"]).stdout == b"left\n"


def test_snapshot_after_the_files_and_with_this_requests_files(contained: Served) -> None:
    files = [("input.txt", b"42\n")]
    first = contained.run(["rm", "input.txt"], files, limits=replace(LIMITS, snapshot=1))
    assert first.report is not None and first.report.exit_code == 0, first
    reset = replace(LIMITS, reset=True)
    second = contained.run(["cat", "input.txt", "extra"], [("extra", b"7\n")], limits=reset)
    assert second.stdout == b"42\n7\n", second
    third = contained.run(["ls"], limits=reset)
    assert third.stdout == b"input.txt\n", "a request's own files are not in the snapshot"


def test_a_snapshot_beyond_its_cap_is_an_error_and_the_next_runs(contained: Served) -> None:
    many = "for i in range(4100): open(f'f{i}', 'w').close()"
    over = contained.run(["python3", "-c", many], limits=replace(LIMITS, snapshot=2))
    assert over.report is None and b"more than 4096 entries" in over.stderr, over
    contained.assert_serves()
    # The failed snapshot left none: a reset now only empties the work dir.
    empty = contained.run(["ls", "-A"], limits=replace(LIMITS, reset=True))
    assert empty.report is not None and empty.stdout == b"", empty


SYSV = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
if sys.argv[1] == "make":
    print(libc.shmget(0x5157, 4096, 0o1000 | 0o600) >= 0)  # IPC_CREAT
else:
    print(libc.shmget(0x5157, 0, 0) >= 0)
"""


def test_reset_removes_system_v_ipc(contained: Served) -> None:
    reset = replace(LIMITS, reset=True)
    assert contained.run(["python3", "-c", SYSV, "make"], limits=reset).stdout == b"True\n"
    kept = contained.run(["python3", "-c", SYSV, "look"])
    assert kept.stdout == b"True\n", "a segment outlives its process without a reset"
    assert contained.run(["python3", "-c", SYSV, "look"], limits=reset).stdout == b"False\n"
