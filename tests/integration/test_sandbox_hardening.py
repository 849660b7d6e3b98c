"""Hardening verified on a live container, and honest figures against ground truth."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from streamworker.contract import Status
from streamworker.errors import LimitNotApplied
from streamworker.sandbox.executor import DockerSandbox
from streamworker.sandbox.helper import HELPER_PATH
from streamworker.sandbox.spec import LABEL_PREFIX, OOM_SCORE_ADJ, container_name
from tests.integration.sandbox_util import SandboxRunner

pytestmark = [pytest.mark.integration]

TOUCH_100_MIB = (
    "block = bytearray(100 * 1024 * 1024)\nfor i in range(0, len(block), 4096):\n    block[i] = 1\n"
)


async def test_live_container_has_every_hardening_setting(sandbox_runner: SandboxRunner) -> None:
    sid = "hardening-inspect-1"
    docker = sandbox_runner.docker
    task = asyncio.create_task(
        sandbox_runner.run(
            submission_id=sid, source="import time\ntime.sleep(2)\n", limits={"memory_mb": 200}
        )
    )
    info = None
    for _ in range(100):
        found = await sandbox_runner.leftovers(sid)
        if found:
            await asyncio.sleep(0.3)  # a taken pooled container gets its run limits first
            info = await docker.containers.container(found[0]).show()
            break
        await asyncio.sleep(0.05)
    _, verdict = await task
    assert verdict.status is Status.ACCEPTED
    assert info is not None, "container not seen while running"
    host = info["HostConfig"]
    assert info["Name"] == "/" + container_name(sid, 1)
    assert host["NetworkMode"] == "none"
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["ReadonlyRootfs"] is True
    assert host["Memory"] == host["MemorySwap"] == (200 + 16) * 1024 * 1024
    assert host["PidsLimit"] > 0
    # Cold or warm, `sw-run serve` is PID 1 (no init holds the attached stdio) and stdin
    # stays open.
    assert host["Init"] is False
    assert info["Config"]["Cmd"] == [HELPER_PATH, "serve"]
    assert info["Config"]["OpenStdin"] is True and info["Config"]["StdinOnce"] is True
    # A host-wide OOM takes the sandbox before Kafka, PostgreSQL or the worker.
    assert host["OomScoreAdj"] == OOM_SCORE_ADJ > 0
    assert host["Privileged"] is False
    assert "nosuid" in host["Tmpfs"]["/workspace"] and "size=" in host["Tmpfs"]["/workspace"]
    assert "nosuid" in host["Tmpfs"]["/tmp"]
    assert {u["Name"] for u in host["Ulimits"]} == {"core", "fsize", "nofile"}
    assert not host.get("Binds") and not info.get("Mounts")
    assert info["Config"]["User"] == "65534:65534"
    labels = info["Config"]["Labels"]
    # A pooled container's labels are fixed before any submission: the name tells whose.
    owner = "pool" if sandbox_runner.warm else "submission-id"
    for key in ("service", owner, "worker-id", "created-at", "deadline-at"):
        assert f"{LABEL_PREFIX}.{key}" in labels
    assert labels[f"{LABEL_PREFIX}.worker-id"] == "sandbox-tests"
    assert not any(e.startswith(("STREAMWORKER", "DOCKER")) for e in info["Config"]["Env"])
    assert await sandbox_runner.leftovers(sid) == []


def blkio_weight_supported() -> bool:
    """Docker keeps a blkio weight only where the host's blkio cgroup offers it."""
    return any(
        Path(p).exists()
        for p in (
            "/sys/fs/cgroup/blkio/blkio.weight",
            "/sys/fs/cgroup/blkio/blkio.bfq.weight",
            "/sys/fs/cgroup/io.weight",
            "/sys/fs/cgroup/io.bfq.weight",
        )
    )


async def test_a_limit_the_daemon_discards_means_no_run(sandbox_runner: SandboxRunner) -> None:
    # This kernel has no blkio weight: Docker drops it with a warning aiodocker never shows.
    strict = DockerSandbox(
        sandbox_runner.docker, sandbox_runner.settings, host_config_extra={"BlkioWeight": 500}
    )
    runner = SandboxRunner(sandbox_runner.docker, sandbox_runner.settings)
    runner.sandbox = strict
    supported = blkio_weight_supported()
    if not supported:
        with pytest.raises(LimitNotApplied, match="BlkioWeight"):
            await runner.run(submission_id="dropped-limit-1", source="print(1)")
        assert await runner.leftovers("dropped-limit-1") == []
    else:
        _, verdict = await runner.run(source="print(1)")
        assert verdict.status is Status.ACCEPTED


async def test_cpu_burn_of_one_second_is_reported_honestly(sandbox_runner: SandboxRunner) -> None:
    code = "import time\nt = time.process_time()\nwhile time.process_time() - t < 1.0:\n    pass\n"
    _, verdict = await sandbox_runner.run(source=code, limits={"cpu_time_s": 5})
    run = verdict.runs[0]
    assert run.cpu_time_s is not None and 0.8 <= run.cpu_time_s <= 1.2, run
    assert run.wall_time_s is not None and run.wall_time_s >= run.cpu_time_s * 0.9


async def test_touching_100_mib_is_reported_as_100_to_130_mib(
    sandbox_runner: SandboxRunner,
) -> None:
    code = TOUCH_100_MIB
    _, verdict = await sandbox_runner.run(source=code, limits={"memory_mb": 256})
    run = verdict.runs[0]
    assert verdict.status is Status.ACCEPTED, verdict
    assert run.memory_kb is not None and 100 * 1024 <= run.memory_kb <= 130 * 1024, run


async def test_sleeping_program_uses_no_cpu_and_the_right_wall_time(
    sandbox_runner: SandboxRunner,
) -> None:
    _, verdict = await sandbox_runner.run(source="import time\ntime.sleep(1.0)\n")
    run = verdict.runs[0]
    assert run.cpu_time_s is not None and run.cpu_time_s < 0.15, run
    assert run.wall_time_s is not None and 0.95 <= run.wall_time_s <= 1.4, run


async def test_memory_limit_of_a_run_is_enforced_exactly(sandbox_runner: SandboxRunner) -> None:
    code = TOUCH_100_MIB
    _, verdict = await sandbox_runner.run(source=code, limits={"memory_mb": 64})
    assert verdict.status is Status.MEMORY_LIMIT_EXCEEDED, verdict
