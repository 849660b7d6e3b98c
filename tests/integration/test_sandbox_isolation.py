"""Test cases kept apart, runners killed or stopped, OOM kills: the same verdict cold and
warm (each test runs in both modes through `sandbox_runner`, and one compares them)."""

from __future__ import annotations

import asyncio
import textwrap
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiodocker
import pytest
import pytest_asyncio

from streamworker.contract import Status
from streamworker.sandbox.connection import connect, resolve_endpoint
from streamworker.sandbox.spec import container_name
from streamworker.settings import load_settings
from tests.conftest import image_env, need
from tests.integration.sandbox_util import SandboxRunner, WarmOnlyPools

pytestmark = [pytest.mark.integration]


def src(code: str) -> str:
    return textwrap.dedent(code).lstrip()


KILL_EVERYTHING = src("""
    import os, signal, sys
    if sys.stdin.read().strip() == "attack":
        os.kill(-1, signal.SIGKILL)
    print("alive")
""")
STOP_THE_RUNNER = src("""
    import os, signal, sys, time
    if sys.stdin.read().strip() == "attack":
        os.kill(os.getppid(), signal.SIGSTOP)
        time.sleep(60)
    print("alive")
""")
FILL_THE_WORKSPACE = src("""
    import sys, time
    if sys.stdin.read().strip() == "attack":
        time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 0)
        for i in range(1000):  # files of 8 MiB: below the file size limit, 8 GiB in all
            with open(f"/workspace/fill{i}", "wb") as fh:
                for _ in range(8):
                    fh.write(b"x" * (1 << 20))
    print("alive")
""")
ATTACK_THEN_CHECK = [
    {"id": "attack", "stdin": "attack", "expected_output": "alive\n"},
    {"id": "after", "stdin": "", "expected_output": "alive\n"},
]


async def test_a_case_never_sees_what_an_earlier_case_wrote(sandbox_runner: SandboxRunner) -> None:
    code = src("""
        import os, sys
        if sys.stdin.read().strip() == "write":
            for where in ("/tmp", "/workspace", "/dev/shm"):
                with open(os.path.join(where, "left-by-case-1"), "w") as fh:
                    fh.write("x")
            os.makedirs("/tmp/dir/sub")
            os.chmod("/tmp/dir", 0)
            with open("/workspace/main.py", "w") as fh:  # the program itself, replaced
                fh.write("print('tampered')")
        print(sorted(os.listdir("/tmp")), sorted(os.listdir("/workspace")),
              sorted(os.listdir("/dev/shm")))
    """)
    verdict = await sandbox_runner.with_benign(
        source=code,
        test_cases=[
            {"id": "write", "stdin": "write"},
            {"id": "read", "stdin": "", "expected_output": "[] ['main.py'] []\n"},
            {"id": "again", "stdin": "", "expected_output": "[] ['main.py'] []\n"},
        ],
    )
    write, read, again = verdict.runs
    assert "left-by-case-1" in write.stdout, write
    assert read.status is Status.ACCEPTED, read
    assert again.status is Status.ACCEPTED, again


async def test_a_compiled_case_starts_from_the_compiled_program_alone(
    sandbox_runner: SandboxRunner,
) -> None:
    code = src("""
        #include <dirent.h>
        #include <stdio.h>
        #include <string.h>
        #include <unistd.h>
        static void list(const char *dir) {
            DIR *d = opendir(dir);
            struct dirent *e;
            printf("%s:", dir);
            while (d && (e = readdir(d)))
                if (e->d_name[0] != '.') printf(" %s", e->d_name);
            printf("\\n");
            if (d) closedir(d);
        }
        int main(void) {
            char mode[16] = "";
            if (fgets(mode, sizeof mode, stdin) && strncmp(mode, "write", 5) == 0) {
                fclose(fopen("/tmp/left-by-case-1", "w"));
                fclose(fopen("/workspace/left-by-case-1", "w"));
                unlink("/workspace/main.c");
                unlink("/workspace/main");  /* the compiled program itself */
            }
            list("/tmp");
            list("/workspace");
            return 0;
        }
    """)
    verdict = await sandbox_runner.with_benign(
        language="c",
        source=code,
        test_cases=[
            {"id": "write", "stdin": "write"},
            {"id": "read", "stdin": ""},
        ],
    )
    assert verdict.compile is not None and verdict.compile.status is Status.ACCEPTED, verdict
    write, read = verdict.runs
    assert "left-by-case-1" in write.stdout, write
    assert read.status is Status.ACCEPTED, read
    tmp, workspace = read.stdout.splitlines()
    assert tmp == "/tmp:" and sorted(workspace.split()[1:]) == ["main", "main.c"], read


async def test_killing_everything_it_can_is_a_runtime_error_and_the_next_case_runs(
    sandbox_runner: SandboxRunner,
) -> None:
    verdict = await sandbox_runner.with_benign(
        source=KILL_EVERYTHING, test_cases=ATTACK_THEN_CHECK, limits={"wall_time_s": 3}
    )
    assert [r.status for r in verdict.runs] == [Status.RUNTIME_ERROR, Status.ACCEPTED], verdict


async def test_stopping_its_runner_is_a_time_limit_and_the_next_case_runs(
    sandbox_runner: SandboxRunner,
) -> None:
    verdict = await sandbox_runner.with_benign(
        source=STOP_THE_RUNNER, test_cases=ATTACK_THEN_CHECK, limits={"wall_time_s": 2}
    )
    stopped, after = verdict.runs
    assert stopped.status is Status.TIME_LIMIT_EXCEEDED, stopped
    wall = stopped.wall_time_s
    assert wall is not None and 2.0 <= wall < 2.0 + 5.0, stopped  # the helper's deadline
    assert after.status is Status.ACCEPTED, after


async def test_a_tmpfs_filled_past_the_memory_limit_is_memory_limit_exceeded(
    sandbox_runner: SandboxRunner,
) -> None:
    # Tmpfs pages count against the container's memory: the cgroup OOM killer strikes.
    verdict = await sandbox_runner.with_benign(
        source=FILL_THE_WORKSPACE, test_cases=ATTACK_THEN_CHECK, limits={"memory_mb": 64}
    )
    filled = verdict.runs[0]
    assert filled.status is Status.MEMORY_LIMIT_EXCEEDED, verdict
    if len(verdict.runs) == 2:  # the helper survived: the next case starts clean
        assert verdict.runs[1].status is Status.ACCEPTED, verdict


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def visible(pid: int) -> bool:
    return Path(f"/proc/{pid}/oom_score_adj").exists()


def raise_oom_score(pid: int) -> bool:
    """Make `pid` the OOM killer's first choice once its runner has forked the program
    (both would inherit a score set earlier); False until then."""
    if not any(children(runner) for runner in children(pid)):
        return False
    Path(f"/proc/{pid}/oom_score_adj").write_text("1000")  # a raise needs no privilege
    return True


async def make_oom_victim(pid: int) -> bool:
    """Make the helper (host pid `pid`) the OOM killer's first choice; False when the
    Docker host's processes are not visible here."""
    if not visible(pid):
        return False
    for _ in range(250):
        if raise_oom_score(pid):
            return True
        await asyncio.sleep(0.02)
    raise AssertionError("the program never started")


async def wait_main_pid(runner: SandboxRunner, sid: str) -> int:
    """The host pid of the attempt's container's main process (the serving helper)."""
    container = runner.docker.containers.container(container_name(sid, 1))
    for _ in range(250):
        try:
            pid = int((await container.show())["State"].get("Pid") or 0)
        except aiodocker.DockerError:
            pid = 0  # not created (cold) or not renamed (warm) yet
        if pid:
            return pid
        await asyncio.sleep(0.02)
    raise AssertionError(f"no running container for {sid}")


async def test_an_oom_that_takes_the_helper_is_memory_limit_exceeded(
    sandbox_runner: SandboxRunner,
) -> None:
    """The OOM killer takes the serving helper (made its first choice here, as it would
    be were it the biggest process): the container dies with `OOMKilled`, the worker
    inspects it and the run is the program's memory_limit_exceeded, not a retry."""
    sid = f"sbx-oom-helper-{uuid.uuid4().hex[:12]}"
    judging = asyncio.create_task(
        sandbox_runner.run(
            submission_id=sid,
            source=FILL_THE_WORKSPACE,
            args=["1.5"],
            test_cases=ATTACK_THEN_CHECK,
            limits={"memory_mb": 64},
        )
    )
    if not await make_oom_victim(await wait_main_pid(sandbox_runner, sid)):
        judging.cancel()
        await asyncio.gather(judging, return_exceptions=True)
        need("the Docker host's processes (to make the helper the OOM victim)", False)
    _, verdict = await judging
    assert verdict.status is Status.MEMORY_LIMIT_EXCEEDED, verdict
    (filled,) = verdict.runs  # the container died with the helper: no later case ran
    assert filled.status is Status.MEMORY_LIMIT_EXCEEDED and filled.cpu_time_s is None
    assert verdict.message is not None and "not run" in verdict.message
    assert await sandbox_runner.leftovers(sid) == []


@pytest_asyncio.fixture
async def cold_and_warm(docker_available: None) -> AsyncIterator[tuple[SandboxRunner, ...]]:
    settings = load_settings(
        {
            "STREAMWORKER_WORKER_ID": "sandbox-same-verdict",
            "STREAMWORKER_POOL_MIN_SIZE": "1",
            "STREAMWORKER_POOL_MAX_SIZE": "1",
            **image_env(),
        }
    )
    docker = connect(resolve_endpoint(settings.docker))
    pools = WarmOnlyPools(docker, settings)
    try:
        yield SandboxRunner(docker, settings), SandboxRunner(docker, settings, pools)
    finally:
        await pools.stop()
        await docker.close()


@pytest.mark.parametrize(
    ("code", "limits", "statuses"),
    [
        (KILL_EVERYTHING, {"wall_time_s": 3}, [Status.RUNTIME_ERROR, Status.ACCEPTED]),
        (STOP_THE_RUNNER, {"wall_time_s": 2}, [Status.TIME_LIMIT_EXCEEDED, Status.ACCEPTED]),
    ],
    ids=["kill-minus-one", "sigstop-parent"],
)
async def test_cold_and_warm_give_the_same_verdict(
    cold_and_warm: tuple[SandboxRunner, SandboxRunner],
    code: str,
    limits: dict[str, Any],
    statuses: list[Status],
) -> None:
    cold, warm = cold_and_warm
    _, in_cold = await cold.run(source=code, test_cases=ATTACK_THEN_CHECK, limits=limits)
    _, in_warm = await warm.run(source=code, test_cases=ATTACK_THEN_CHECK, limits=limits)
    assert [r.status for r in in_cold.runs] == [r.status for r in in_warm.runs] == statuses
    assert in_cold.status is in_warm.status
