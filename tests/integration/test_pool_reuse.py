"""A pooled container serving several submissions, on real Docker.

What one submission leaves behind must be gone before the next one runs in the same
container: files, processes, IPC objects, marks on the work dir, the compile's snapshot,
limits and the submission's name. A use that ended badly is never recycled.
"""

from __future__ import annotations

import asyncio
import json

import aiodocker
import pytest

from streamworker.contract import Status
from streamworker.errors import SandboxError
from streamworker.sandbox.pooled import wait_removals
from streamworker.sandbox.reaper import POOL_NAME_PREFIX
from streamworker.sandbox.spec import MEMORY_HEADROOM_MB, container_name
from tests.integration.pool_util import pool_harness

pytestmark = [pytest.mark.integration]

ONE_CONTAINER = {"STREAMWORKER_POOL_MIN_SIZE": "1", "STREAMWORKER_POOL_MAX_SIZE": "1"}

# Leaves a mark in every place a program of the sandbox uid can write to or start.
LITTER = r"""
import ctypes, os, signal, time
for d in ("/workspace", "/tmp", "/dev/shm"):
    with open(d + "/secret", "w") as f:
        f.write("left behind")
os.makedirs("/workspace/locked/inner")
open("/workspace/locked/inner/file", "w").close()
os.chmod("/workspace/locked/inner", 0)
os.chmod("/workspace/locked", 0)
deep = "/workspace/deep"
for _ in range(40):
    deep += "/d"
os.makedirs(deep)
os.symlink("/etc/passwd", "/tmp/link")
os.setxattr("/workspace", "user.secret", b"left behind")
rt = ctypes.CDLL("librt.so.1", use_errno=True)
assert rt.mq_open(b"/secret", os.O_CREAT | os.O_RDWR, 0o600, None) >= 0
libc = ctypes.CDLL(None, use_errno=True)
assert libc.shmget(4242, 4096, 0o1600) >= 0
assert libc.semget(4243, 1, 0o1600) >= 0
assert libc.msgget(4244, 0o1600) >= 0
if os.fork() == 0:  # a daemon that hides from its parent and ignores what it can
    os.setsid()
    if os.fork() == 0:
        for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(s, signal.SIG_IGN)
        time.sleep(3600)
    os._exit(0)
os.chmod("/workspace", 0o500)
print("hi")
"""

# Reports everything a fresh container must not have.
LOOK = r"""
import json, os
def listing(d):
    return sorted(os.listdir(d)) if os.path.isdir(d) else []
procs = []
for pid in os.listdir("/proc"):
    if pid.isdigit() and int(pid) not in (1, os.getpid(), os.getppid()):
        try:
            procs.append(open(f"/proc/{pid}/cmdline", "rb").read().decode("utf-8", "replace"))
        except OSError:
            continue  # gone between the listing and the read: not running any more
ipc = {}
for table in ("shm", "sem", "msg"):
    ipc[table] = open(f"/proc/sysvipc/{table}").read().splitlines()[1:]
print(json.dumps({
    "workspace": listing("/workspace"),
    "tmp": listing("/tmp"),
    "shm": listing("/dev/shm"),
    "mqueue": listing("/dev/mqueue"),
    "xattrs": os.listxattr("/workspace"),
    "mode": oct(os.stat("/workspace").st_mode & 0o777),
    "processes": procs,
    "ipc": ipc,
}))
"""


async def test_a_reused_container_keeps_nothing_of_the_last_submission(
    docker_available: None,
) -> None:
    async with pool_harness(**ONE_CONTAINER) as harness:
        _, litter = await harness.run(LITTER)
        assert litter.status is Status.ACCEPTED, litter
        await wait_removals()  # the recycling runs in the background
        _, look = await harness.run(LOOK, expected_output=None)
        assert look.status is Status.ACCEPTED, look
        assert harness.pools.pools["python"].created == 1, "the second run did not reuse"
        seen = json.loads(look.runs[0].stdout)
        assert seen == {
            "workspace": ["main.py"],
            "tmp": [],
            "shm": [],
            "mqueue": [],
            "xattrs": [],
            "mode": "0o700",
            "processes": [],
            "ipc": {"shm": [], "sem": [], "msg": []},
        }


async def test_pool_max_uses_bounds_the_submissions_of_one_container(
    docker_available: None,
) -> None:
    async with pool_harness(**ONE_CONTAINER, STREAMWORKER_POOL_MAX_USES="2") as harness:
        for _ in range(3):
            _, verdict = await harness.run()
            assert verdict.status is Status.ACCEPTED
            await wait_removals()
        assert harness.pools.pools["python"].created == 2


async def test_a_use_that_lost_its_container_is_not_recycled(docker_available: None) -> None:
    async with pool_harness(**ONE_CONTAINER) as harness:
        pool = harness.pools.pools["python"]
        first = pool._ready[0].container
        idle_name = (await first.show())["Name"]
        running = asyncio.create_task(harness.run("import time\ntime.sleep(4)\n"))
        for _ in range(100):  # until the run has it (renamed), then kill it under the run
            if (await first.show())["Name"] != idle_name:
                break
            await asyncio.sleep(0.02)
        await first.kill()
        with pytest.raises(SandboxError):
            await running
        await wait_removals()
        await harness.pools.wait_ready(60)
        assert pool.created == 2 and pool.lent == 0
        assert first.id not in {p.container.id for p in pool._ready}
        assert first.id not in {str(c["Id"]) for c in await harness.containers()}


async def test_limits_and_name_are_restored_before_the_next_submission(
    docker_available: None,
) -> None:
    async with pool_harness(**ONE_CONTAINER) as harness:
        pool = harness.pools.pools["python"]
        sid, verdict = await harness.run(limits={"memory_mb": 64, "processes": 8})
        assert verdict.status is Status.ACCEPTED
        await wait_removals()
        assert pool.size == 1 and pool.created == 1
        info = await pool._ready[0].container.show()
        memory = (pool.policy.memory_mb + MEMORY_HEADROOM_MB) * 1024 * 1024
        assert info["HostConfig"]["Memory"] == memory
        assert info["Name"].startswith("/" + POOL_NAME_PREFIX)
        with pytest.raises(aiodocker.DockerError):
            await harness.docker.containers.container(container_name(sid, 1)).show()


LIST_WORKSPACE_C = r"""
#include <dirent.h>
#include <stdio.h>
#include <string.h>
int main(void) {
    DIR *d = opendir(".");
    struct dirent *e;
    while ((e = readdir(d))) if (e->d_name[0] != '.') printf("%s\n", e->d_name);
    return 0;
}
"""


async def test_a_compiled_submission_finds_only_its_own_program(docker_available: None) -> None:
    # The first one compiles (the helper snapshots its work dir) and writes a file in a
    # test case; the second's cases must start from its own compile, not the first's.
    async with pool_harness("c", **ONE_CONTAINER) as harness:
        first = 'int main(void){fopen("mine","w"); return 0;}\n'
        _, verdict = await harness.run(
            first, "c", expected_output=None, test_cases=[{"stdin": ""}, {"stdin": ""}]
        )
        assert verdict.status is Status.ACCEPTED, verdict
        await wait_removals()
        _, verdict = await harness.run(
            LIST_WORKSPACE_C,
            "c",
            expected_output=None,
            test_cases=[{"stdin": ""}, {"stdin": ""}],
        )
        assert harness.pools.pools["c"].created == 1, "the second run did not reuse"
        assert verdict.status is Status.ACCEPTED, verdict
        listings = [sorted(run.stdout.split()) for run in verdict.runs]
        assert listings[0] == listings[1]
        assert "mine" not in listings[0] and len(listings[0]) >= 2, listings
