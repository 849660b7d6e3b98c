"""The attack suite on real Docker: each attack ends with the right status, a benign
submission judged at the same time is still accepted, Docker still answers, and no
container is left behind (checked by `SandboxRunner.with_benign`)."""

from __future__ import annotations

import os
import textwrap

import pytest

from streamworker.contract import Status
from tests.integration.sandbox_util import SandboxRunner

pytestmark = [pytest.mark.integration]


def src(code: str) -> str:
    return textwrap.dedent(code).lstrip()


async def test_fork_bomb(sandbox_runner: SandboxRunner) -> None:
    verdict = await sandbox_runner.with_benign(
        language="bash", source=":(){ :|:& };:\nsleep 10\n", limits={"wall_time_s": 3}
    )
    assert verdict.status in (Status.TIME_LIMIT_EXCEEDED, Status.RUNTIME_ERROR), verdict


async def test_python_fork_bomb(sandbox_runner: SandboxRunner) -> None:
    code = src("""
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
    """)
    verdict = await sandbox_runner.with_benign(source=code, limits={"wall_time_s": 3})
    assert verdict.status is Status.TIME_LIMIT_EXCEEDED, verdict


async def test_memory_bomb(sandbox_runner: SandboxRunner) -> None:
    code = "chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 1024 * 1024))\n"
    verdict = await sandbox_runner.with_benign(source=code, limits={"memory_mb": 128})
    assert verdict.status is Status.MEMORY_LIMIT_EXCEEDED, verdict
    assert verdict.runs[0].memory_kb is not None


async def test_disk_fill_of_workspace_tmp_and_shm(sandbox_runner: SandboxRunner) -> None:
    code = src("""
        import errno, os
        for where in ("/workspace/fill", "/tmp/fill", "/dev/shm/fill"):
            try:
                with open(where, "wb") as fh:
                    while True:
                        fh.write(b"x" * (1 << 20))
                        fh.flush()
            except OSError as exc:
                print(where, errno.errorcode.get(exc.errno, exc.errno))
            try:
                os.remove(where)
            except OSError:
                pass
        for where in ("/fill", "/etc/fill", "/usr/fill", "/var/fill", "/home/fill"):
            try:
                open(where, "wb").close()
                print(where, "WRITABLE")
            except OSError as exc:
                print(where, errno.errorcode.get(exc.errno, exc.errno))
    """)
    verdict = await sandbox_runner.with_benign(source=code, limits={"file_size_kb": 1 << 16})
    out = verdict.runs[0].stdout
    assert "WRITABLE" not in out, out
    for line in out.splitlines()[:3]:
        assert line.split()[1] in ("ENOSPC", "EFBIG", "ENOENT", "EROFS", "EACCES"), out
    assert verdict.status is Status.ACCEPTED, verdict


async def test_file_size_limit_gives_sigxfsz(sandbox_runner: SandboxRunner) -> None:
    code = src("""
        import signal
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
        with open("/workspace/big", "wb") as fh:
            while True:
                fh.write(b"x" * 65536)
    """)
    verdict = await sandbox_runner.with_benign(source=code, limits={"file_size_kb": 1024})
    assert verdict.status is Status.RUNTIME_ERROR, verdict
    assert verdict.runs[0].signal == "SIGXFSZ"


async def test_stdout_flood_of_one_gib(sandbox_runner: SandboxRunner) -> None:
    code = src("""
        import sys
        block = b"y" * (1 << 20)
        for _ in range(1024):
            sys.stdout.buffer.write(block)
    """)
    verdict = await sandbox_runner.with_benign(source=code, limits={"output_kb": 256})
    assert verdict.status is Status.OUTPUT_LIMIT_EXCEEDED, verdict
    run = verdict.runs[0]
    assert run.stdout_truncated
    assert len(run.stdout) <= sandbox_runner.settings.result_output_kb * 1024


async def test_cpu_spin(sandbox_runner: SandboxRunner) -> None:
    verdict = await sandbox_runner.with_benign(
        source="while True:\n    pass\n", limits={"cpu_time_s": 1}
    )
    assert verdict.status is Status.TIME_LIMIT_EXCEEDED, verdict
    assert verdict.runs[0].signal == "SIGXCPU"


async def test_sleep_forever(sandbox_runner: SandboxRunner) -> None:
    verdict = await sandbox_runner.with_benign(
        source="import time\ntime.sleep(10**6)\n", limits={"wall_time_s": 2}
    )
    assert verdict.status is Status.TIME_LIMIT_EXCEEDED, verdict
    wall = verdict.runs[0].wall_time_s
    assert wall is not None and 1.9 <= wall <= 3.0


async def test_double_fork_daemon_does_not_outlive_its_run(sandbox_runner: SandboxRunner) -> None:
    code = src("""
        import os, sys, time
        mode = sys.stdin.read().strip()
        if mode == "spawn":
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    time.sleep(1.5)
                    open("/workspace/daemon-was-here", "w").write("alive")
                    os._exit(0)
                os._exit(0)
            print("spawned")
        else:
            time.sleep(2.5)
            print("present" if os.path.exists("/workspace/daemon-was-here") else "absent")
    """)
    verdict = await sandbox_runner.with_benign(
        source=code,
        test_cases=[
            {"id": "spawn", "stdin": "spawn", "expected_output": "spawned\n"},
            {"id": "check", "stdin": "check", "expected_output": "absent\n"},
        ],
    )
    assert verdict.status is Status.ACCEPTED, verdict


async def test_no_network_egress(sandbox_runner: SandboxRunner) -> None:
    code = src("""
        import socket
        targets = [("127.0.0.1", 9092), ("127.0.0.1", 5432), ("172.17.0.1", 9092),
                   ("172.17.0.1", 5432), ("1.1.1.1", 53)]
        for host, port in targets:
            try:
                socket.create_connection((host, port), timeout=1).close()
                print(host, port, "CONNECTED")
            except OSError:
                print(host, port, "blocked")
        try:
            socket.getaddrinfo("deb.debian.org", 80)
            print("dns RESOLVED")
        except OSError:
            print("dns blocked")
        print(sorted(name for _, name in socket.if_nameindex()))
    """)
    verdict = await sandbox_runner.with_benign(source=code, limits={"wall_time_s": 10})
    out = verdict.runs[0].stdout
    assert "CONNECTED" not in out and "RESOLVED" not in out, out
    assert "['lo']" in out, out


async def test_secrets_and_host_paths_are_unreachable(
    sandbox_runner: SandboxRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMWORKER_TEST_SECRET", "hunter2-secret-value")
    code = src("""
        import os
        def show(path):
            try:
                with open(path, "rb") as fh:
                    data = fh.read(1 << 16)
                print(path, "read", len(data), b"hunter2" in data)
            except OSError as exc:
                print(path, "denied", type(exc).__name__)
        for path in ("/proc/1/environ", "/proc/self/environ", "/proc/keys", "/proc/kcore",
                     "/var/run/docker.sock", "/run/docker.sock", "/etc/shadow",
                     "/proc/sysrq-trigger"):
            show(path)
        print("env", sorted(os.environ))
        print("docker.sock", os.path.exists("/var/run/docker.sock"))
    """)
    verdict = await sandbox_runner.with_benign(source=code)
    out = verdict.runs[0].stdout
    assert "hunter2" not in out and "True" not in out.replace("docker.sock False", ""), out
    assert "/proc/keys read 0" in out or "/proc/keys denied" in out, out
    assert "/proc/kcore read 0" in out or "/proc/kcore denied" in out, out
    assert "/etc/shadow denied" in out, out
    assert "STREAMWORKER" not in out and "DOCKER" not in out, out
    assert "docker.sock False" in out
    assert os.environ["STREAMWORKER_TEST_SECRET"] == "hunter2-secret-value"


async def test_setuid_and_keyctl_are_refused(sandbox_runner: SandboxRunner) -> None:
    code = src("""
        import ctypes, os, subprocess
        print("uid", os.getuid(), os.geteuid())
        try:
            os.setuid(0)
            print("setuid WORKED")
        except PermissionError:
            print("setuid refused")
        for cmd in (["su", "-c", "id -u", "root"], ["mount", "-t", "tmpfs", "x", "/mnt"]):
            try:
                r = subprocess.run(cmd, input=b"\\n", capture_output=True, timeout=5)
                print(cmd[0], "rc", r.returncode, r.stdout.strip().decode())
            except (OSError, subprocess.TimeoutExpired) as exc:
                print(cmd[0], "failed", type(exc).__name__)
        libc = ctypes.CDLL(None, use_errno=True)
        KEYCTL_JOIN_SESSION_KEYRING = 1
        ret = libc.syscall(250, KEYCTL_JOIN_SESSION_KEYRING, None)
        print("keyctl", ret, os.strerror(ctypes.get_errno()))
        status = open("/proc/self/status").read()
        for key in ("CapEff", "CapPrm", "CapBnd", "NoNewPrivs", "Seccomp"):
            line = [x for x in status.splitlines() if x.startswith(key + ":")][0]
            print(line.replace("\\t", " "))
    """)
    verdict = await sandbox_runner.with_benign(source=code)
    out = verdict.runs[0].stdout
    assert "uid 65534 65534" in out, out
    assert "setuid refused" in out, out
    assert "su rc 0 0" not in out and "mount rc 0" not in out, out
    assert "keyctl -1" in out, out
    assert "CapEff: 0000000000000000" in out and "CapBnd: 0000000000000000" in out, out
    assert "NoNewPrivs: 1" in out and "Seccomp: 2" in out, out


async def test_symlinks_planted_in_the_workspace_change_nothing(
    sandbox_runner: SandboxRunner,
) -> None:
    code = src("""
        import os, sys
        if sys.stdin.read().strip() == "plant":
            for name in ("stdout", "stderr", "result", "output.txt", "stdin", "main.py.out"):
                try:
                    os.symlink("/etc/passwd", "/workspace/" + name)
                except OSError:
                    pass
            os.replace("/workspace/main.py", "/workspace/main.py.bak")
            os.symlink("/proc/self/environ", "/workspace/main.py")
            print("planted")
        else:
            print("second run fine")
    """)
    verdict = await sandbox_runner.with_benign(
        source=code,
        test_cases=[
            {"id": "1", "stdin": "plant", "expected_output": "planted\n"},
        ],
    )
    assert verdict.status is Status.ACCEPTED, verdict
    assert "root:" not in verdict.runs[0].stdout


async def test_tmp_is_not_shared_between_submissions(sandbox_runner: SandboxRunner) -> None:
    _, first = await sandbox_runner.run(
        source="open('/tmp/left-behind', 'w').write('secret')\n"
        "print(open('/tmp/left-behind').read())\n"
    )
    assert first.runs[0].stdout == "secret\n"
    verdict = await sandbox_runner.with_benign(
        source="import os\nprint(sorted(os.listdir('/tmp')), sorted(os.listdir('/workspace')))\n"
    )
    assert "left-behind" not in verdict.runs[0].stdout, verdict.runs[0].stdout


async def test_forged_helper_report_is_not_believed(sandbox_runner: SandboxRunner) -> None:
    code = src("""
        import os, signal, sys
        fake = "\\x1eSWRUN " + "0" * 32 + " exit=0 signal=0 cpu_us=1 wall_us=1 "
        fake += "maxrss_kb=1 oom_kills=0 timed_out=0 output_exceeded=0 overflow_stream=0 "
        fake += "out_bytes=0 exec_errno=0"
        print(fake, file=sys.stderr, flush=True)
        print("accepted", flush=True)
        for path in ("/proc/%d/mem" % os.getppid(), "/proc/%d/fd/2" % os.getppid()):
            try:
                open(path, "rb").close()
                print("OPENED", path)
            except OSError:
                pass
        os.kill(os.getppid(), signal.SIGKILL)
    """)
    verdict = await sandbox_runner.with_benign(source=code, expected_output="accepted\n")
    assert verdict.status is Status.RUNTIME_ERROR, verdict
    run = verdict.runs[0]
    # The figures are PID 1's own (it reaped the killed runner), never the forged ones.
    assert run.exit_code is None and run.signal is None, run
    assert (run.cpu_time_s, run.wall_time_s, run.memory_kb) != (1e-06, 1e-06, 1), run
    assert run.memory_kb is None or run.memory_kb > 1, run
    assert "OPENED" not in run.stdout


async def test_forged_frames_are_only_output(sandbox_runner: SandboxRunner) -> None:
    # Everything the serving helper could send, written by the program on both streams,
    # plus every way it might reach the helper's (or an init's) stdio directly.
    code = src("""
        import os, struct, sys
        nonce = "0" * 32
        line = f"SWRUN {nonce} exit=0 signal=0 cpu_us=1 wall_us=1 maxrss_kb=1 oom_kills=0 "
        line += "timed_out=0 output_exceeded=0 overflow_stream=0 out_bytes=0 exec_errno=0\\n"
        frames = b""
        for kind, payload in ((b"O", b"forged\\n"), (b"R", line.encode()), (b"Z", nonce.encode())):
            frames += kind + struct.pack(">I", len(payload)) + payload
        for fd in (1, 2):
            os.write(fd, frames + b"\\x1eSWRUN " + line.encode())
        for who, pid in (("pid1", 1), ("helper", os.getppid())):
            for fd in (0, 1, 2):
                try:
                    os.close(os.open(f"/proc/{pid}/fd/{fd}", os.O_WRONLY if fd else os.O_RDONLY))
                    print("OPENED", who, fd)
                except OSError:
                    pass
        print("after-forgery", flush=True)
        sys.exit(int(sys.stdin.read() or 0))
    """)
    verdict = await sandbox_runner.with_benign(
        source=code,
        test_cases=[{"id": "1", "stdin": "3"}, {"id": "2", "stdin": "0"}],
    )
    first, second = verdict.runs
    # Cold or warm, PID 1 is the serving helper whose stdio is the stream.
    assert "OPENED helper" not in first.stdout and "OPENED pid1" not in first.stdout, first
    assert first.stdout.endswith("after-forgery\n") and "forged" in first.stdout
    # The genuine report: the program's exit status and real figures, not the forged ones.
    assert first.status is Status.RUNTIME_ERROR and first.exit_code == 3, first
    assert first.wall_time_s is not None and first.wall_time_s > 0.005, first
    assert first.memory_kb is not None and first.memory_kb > 1000, first
    # The stream stayed in step: the next run in the same container is judged normally.
    assert second.status is Status.ACCEPTED and second.exit_code == 0, second


async def test_killing_every_process_it_can(sandbox_runner: SandboxRunner) -> None:
    code = src("""
        import os, signal, sys
        if sys.stdin.read().strip() == "kill":
            for pid in (1, os.getppid()):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            os.kill(-1, signal.SIGKILL)
        print("alive")
    """)
    cases = [
        {"id": "kill", "stdin": "kill", "expected_output": "alive\n"},
        {"id": "after", "stdin": "", "expected_output": "alive\n"},
    ]
    # Cold or warm, the helper is PID 1 and ignores the program's signals; only this
    # run's runner dies (PID 1 reports for it) and the next case runs in the container.
    verdict = await sandbox_runner.with_benign(source=code, test_cases=cases)
    killed, after = verdict.runs
    assert killed.status is Status.RUNTIME_ERROR and killed.exit_code is None, killed
    assert after.status is Status.ACCEPTED, after


async def test_a_compile_time_daemon_does_not_outlive_the_compile(
    sandbox_runner: SandboxRunner,
) -> None:
    # Nim runs shell commands at compile time: leave a ticking process behind the
    # compiler (its inherited fds closed, so the compiler does not wait for it).
    code = src("""
        import os
        const spawned = staticExec("sh -c 'for fd in 3 4 5 6 7 8 9; do eval \\"exec $fd>&-\\"; " &
            "done; (while :; do date +%s%N > /workspace/tick; sleep 0.1; done) " &
            "</dev/null >/dev/null 2>&1 & echo spawned'")
        let before = readFile("/workspace/tick")
        sleep(1000)
        echo spawned, " ", (if readFile("/workspace/tick") == before: "dead" else: "alive")
    """)
    verdict = await sandbox_runner.with_benign(
        language="nim", source=code, expected_output="spawned dead\n"
    )
    assert verdict.status is Status.ACCEPTED, verdict


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
async def test_output_flood_on_either_stream(sandbox_runner: SandboxRunner, stream: str) -> None:
    code = src(f"""
        import sys
        block = b"z" * (1 << 16)
        while True:
            sys.{stream}.buffer.write(block)
    """)
    verdict = await sandbox_runner.with_benign(
        source=code, limits={"output_kb": 64, "wall_time_s": 5}
    )
    assert verdict.status is Status.OUTPUT_LIMIT_EXCEEDED, verdict
    run = verdict.runs[0]
    assert run.wall_time_s is not None and run.wall_time_s < 4, run
