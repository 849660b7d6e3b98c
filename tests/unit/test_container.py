"""The container layer against fake Docker objects: typed failures, OOM, timeouts."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import aiodocker
import aiohttp
import pytest
from aiodocker.stream import Message

from streamworker.contract import now_utc
from streamworker.errors import (
    ContainerGone,
    DockerUnavailable,
    HelperProtocolError,
    LimitNotApplied,
)
from streamworker.sandbox import protocol
from streamworker.sandbox.calls import docker_call
from streamworker.sandbox.container import (
    AttachedSession,
    remove_container,
    start_served,
)
from streamworker.sandbox.executor import _rename
from streamworker.sandbox.failure import FailureKind
from streamworker.sandbox.pool import PooledContainer, PoolManager
from streamworker.sandbox.protocol import HelperLimits, encode_frame
from streamworker.sandbox.reaper import reap_expired, remove_submission_containers
from streamworker.sandbox.spec import (
    ContainerPolicy,
    attached_config,
    container_config,
    container_labels,
)
from streamworker.settings import Settings

NONCE = "ab" * 16
POLICY = ContainerPolicy(memory_mb=64, processes=8, workspace_mb=8)
LIMITS = HelperLimits(cpu_time_s=1.0, wall_time_s=1.0, output_bytes=1000, file_size_bytes=1000)
REPORT = (
    f"SWRUN {NONCE} exit=0 signal=0 cpu_us=1000 wall_us=2000 maxrss_kb=3000 oom_kills=0 "
    "timed_out=0 output_exceeded=0 overflow_stream=0 out_bytes=3 exec_errno=0\n"
).encode()


async def forever() -> Any:
    await asyncio.Event().wait()


class FakeStream:
    """An attach stream that yields scripted messages, then ends (or hangs)."""

    def __init__(self, messages: list[Message], then: str = "end") -> None:
        self.messages = list(messages)
        self.then = then
        self.written: list[bytes] = []

    async def write_in(self, data: bytes) -> None:
        self.written.append(data)

    async def read_out(self) -> Message | None:
        if self.messages:
            return self.messages.pop(0)
        if self.then == "hang":
            return await forever()  # type: ignore[no-any-return]
        if self.then == "break":
            raise aiohttp.ClientConnectionError("connection reset")
        return None

    async def close(self) -> None:
        return None


class FakeContainer:
    """A container whose inspections and kill/delete behave as scripted."""

    id = "f" * 64

    def __init__(self, states: list[dict[str, Any]] | None = None, hang: str = "") -> None:
        self.states = states or [{"Running": True}]
        self.hang = hang
        self.kills = 0
        self.deletes = 0
        self.inspected: dict[str, Any] = {}

    async def _maybe_hang(self, call: str) -> None:
        if self.hang == call:
            await forever()

    async def show(self) -> dict[str, Any]:
        await self._maybe_hang("show")
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return {"State": state, "Image": "sha256:img", **self.inspected}

    async def kill(self, **_: Any) -> None:
        await self._maybe_hang("kill")
        self.kills += 1

    async def delete(self, **_: Any) -> None:
        await self._maybe_hang("delete")
        self.deletes += 1

    async def start(self) -> None:
        await self._maybe_hang("start")

    def attach(self, **_: Any) -> Any:
        container = self

        class _Attach(FakeStream):
            async def __aenter__(self) -> FakeStream:
                await container._maybe_hang("attach")
                return self

        return _Attach([])


def frames(*parts: tuple[bytes, bytes]) -> list[Message]:
    return [Message(1, encode_frame(kind, payload)) for kind, payload in parts]


@pytest.fixture(autouse=True)
def fixed_nonce(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(protocol, "new_nonce", lambda: NONCE)


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """Timeouts of a few tens of milliseconds instead of seconds."""
    for name in ("INSPECT_TIMEOUT_S", "KILL_TIMEOUT_S", "DELETE_TIMEOUT_S", "START_TIMEOUT_S"):
        monkeypatch.setattr(f"streamworker.sandbox.container.{name}", 0.05)
    monkeypatch.setattr("streamworker.sandbox.container.WORKER_GRACE_S", 0.05)
    monkeypatch.setattr("streamworker.sandbox.container.STOP_SETTLE_S", 0.3)


def session(stream: FakeStream, container: FakeContainer | None = None) -> AttachedSession:
    return AttachedSession(container or FakeContainer(), "sha256:img", stream)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ runs


async def test_a_reported_run_has_its_figures_and_no_failure() -> None:
    stream = FakeStream(frames((b"O", b"hi\n"), (b"R", REPORT), (b"Z", NONCE.encode())))
    raw = await session(stream).exec(["python3", "main.py"], LIMITS)
    assert raw.stdout == b"hi\n" and raw.report is not None and raw.report.memory_kb == 3000
    assert raw.kind is None and raw.failure is None


async def test_an_answer_without_a_report_is_a_helper_error_with_its_message() -> None:
    refused = b"main.py: File exists"
    stream = FakeStream(frames((b"E", refused), (b"Z", NONCE.encode())))
    raw = await session(stream).exec(["x"], LIMITS)
    assert raw.report is None and raw.kind is FailureKind.HELPER_ERROR
    assert raw.failure is not None and "File exists" in raw.failure


async def test_no_answer_in_time_is_a_worker_timeout_and_kills_the_container(fast: None) -> None:
    container = FakeContainer()
    stream = FakeStream(frames((b"O", b"partial")), then="hang")
    live = session(stream, container)
    raw = await live.exec(["x"], HelperLimits(1.0, 0.05, 1000, 1000))
    assert raw.kind is FailureKind.WORKER_TIMEOUT and raw.stdout == b"partial"
    assert container.kills == 1
    with pytest.raises(ContainerGone):
        await live.exec(["x"], LIMITS)


async def test_a_kill_the_daemon_never_answers_is_docker_unavailable(fast: None) -> None:
    stream = FakeStream([], then="hang")
    with pytest.raises(DockerUnavailable, match="kill"):
        await session(stream, FakeContainer(hang="kill")).exec(
            ["x"], HelperLimits(1.0, 0.05, 1000, 1000)
        )


async def test_output_past_the_cap_is_an_output_flood() -> None:
    container = FakeContainer()
    big = [(b"O", b"y" * 4000)] * 20
    raw = await session(FakeStream(frames(*big), then="hang"), container).exec(["x"], LIMITS)
    assert raw.kind is FailureKind.OUTPUT_FLOOD and container.kills == 1


async def test_bytes_that_are_not_frames_are_a_protocol_error() -> None:
    container = FakeContainer()
    with pytest.raises(HelperProtocolError):
        await session(FakeStream([Message(1, b"garbage!")]), container).exec(["x"], LIMITS)
    assert container.kills == 1


@pytest.mark.parametrize("then", ["end", "break"])
async def test_a_container_oom_killed_mid_run_is_the_programs_verdict(
    fast: None, then: str
) -> None:
    container = FakeContainer(
        states=[{"Running": True}, {"Running": False, "OOMKilled": True, "ExitCode": 137}]
    )
    live = session(FakeStream(frames((b"O", b"so far")), then=then), container)
    raw = await live.exec(["x"], LIMITS)
    assert raw.kind is FailureKind.OOM_KILLED and raw.report is None
    assert raw.stdout == b"so far"
    with pytest.raises(ContainerGone):
        await live.exec(["x"], LIMITS)


async def test_a_container_stopped_otherwise_is_gone_not_a_verdict(fast: None) -> None:
    container = FakeContainer(states=[{"Running": False, "OOMKilled": False, "ExitCode": 137}])
    with pytest.raises(ContainerGone, match="stopped"):
        await session(FakeStream([]), container).exec(["x"], LIMITS)


async def test_a_daemon_that_cannot_say_why_the_stream_ended_is_unavailable(fast: None) -> None:
    with pytest.raises(DockerUnavailable, match="inspect"):
        await session(FakeStream([]), FakeContainer(hang="show")).exec(["x"], LIMITS)


async def test_a_container_still_running_after_its_stream_ended_is_gone(fast: None) -> None:
    with pytest.raises(ContainerGone):
        await session(FakeStream([]), FakeContainer()).exec(["x"], LIMITS)


# ---------------------------------------------------------------------------- docker_call


async def test_docker_call_turns_a_hang_into_docker_unavailable() -> None:
    with pytest.raises(DockerUnavailable, match=r"create within 0\.05 s"):
        await asyncio.wait_for(docker_call(forever(), 0.05, "create"), 2.0)


async def test_docker_call_turns_a_lost_connection_into_docker_unavailable() -> None:
    async def broken() -> None:
        raise aiohttp.ClientConnectionError("refused")

    async def cannot_connect() -> None:
        raise aiodocker.DockerError(900, {"message": "cannot connect"})

    for call in (broken, cannot_connect):
        with pytest.raises(DockerUnavailable):
            await docker_call(call(), 1.0, "inspect")


async def test_docker_call_leaves_answers_to_the_caller() -> None:
    async def missing() -> None:
        raise aiodocker.DockerError(404, {"message": "no such container"})

    async def fine() -> int:
        return 7

    with pytest.raises(aiodocker.DockerError):
        await docker_call(missing(), 1.0, "inspect")
    assert await docker_call(fine(), 1.0, "inspect") == 7


@pytest.mark.parametrize("hang", ["delete", ""])
async def test_removal_never_raises_and_never_hangs(fast: None, hang: str) -> None:
    container = FakeContainer(hang=hang)
    await asyncio.wait_for(remove_container(container), 2.0)  # type: ignore[arg-type]
    assert container.deletes == (0 if hang else 1)


# ---------------------------------------------------------------------------- start_served


def served_config() -> dict[str, Any]:
    labels = container_labels("s", "w", "c", "d", "python")
    return attached_config(container_config("img", POLICY, labels, {}))


class FakeContainers:
    def __init__(self, container: FakeContainer, hang: bool = False) -> None:
        self.container = container
        self.hang = hang

    async def create(self, config: dict[str, Any], name: str) -> FakeContainer:
        if self.hang:
            await forever()
        return self.container


class FakeDocker:
    def __init__(self, container: FakeContainer, hang: bool = False) -> None:
        self.containers = FakeContainers(container, hang)


def kept(config: dict[str, Any], drop: str = "") -> dict[str, Any]:
    host = copy.deepcopy(config["HostConfig"])
    host.pop(drop, None)
    return {"Config": {"User": config["User"]}, "HostConfig": host}


async def test_a_started_served_container_is_attached_and_verified() -> None:
    config = served_config()
    container = FakeContainer()
    container.inspected = kept(config)
    served = await start_served(FakeDocker(container), config, "n")  # type: ignore[arg-type]
    assert served.container is container and served.image_id == "sha256:img"
    assert container.deletes == 0


async def test_a_dropped_oom_score_means_no_run_and_no_container() -> None:
    config = served_config()
    container = FakeContainer()
    container.inspected = kept(config, drop="OomScoreAdj")
    with pytest.raises(LimitNotApplied, match="OomScoreAdj"):
        await start_served(FakeDocker(container), config, "n")  # type: ignore[arg-type]
    assert container.deletes == 1


@pytest.mark.parametrize("hang", ["attach", "start", "show"])
async def test_a_wedged_daemon_during_start_is_retriable_and_cleaned_up(
    fast: None, monkeypatch: pytest.MonkeyPatch, hang: str
) -> None:
    monkeypatch.setattr("streamworker.sandbox.container.ATTACH_TIMEOUT_S", 0.05)
    config = served_config()
    container = FakeContainer(hang=hang)
    container.inspected = kept(config)
    with pytest.raises(DockerUnavailable, match=hang.replace("show", "inspect")):
        await start_served(FakeDocker(container), config, "n")  # type: ignore[arg-type]
    assert container.deletes == 1


async def test_a_create_the_daemon_never_answers_is_retriable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("streamworker.sandbox.container.CREATE_TIMEOUT_S", 0.05)
    docker = FakeDocker(FakeContainer(), hang=True)
    with pytest.raises(DockerUnavailable, match="create"):
        await start_served(docker, served_config(), "n")  # type: ignore[arg-type]


# ------------------------------------------------------------- callers that must not hang


class HungContainers:
    """A daemon that accepts every request and answers none."""

    async def list(self, **_: Any) -> list[Any]:
        return await forever()  # type: ignore[no-any-return]

    def container(self, _name: str) -> FakeContainer:
        return FakeContainer(hang="delete")


class HungDocker:
    containers = HungContainers()


async def test_a_reaper_round_on_a_hung_daemon_ends_retriably(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("streamworker.sandbox.reaper.LIST_TIMEOUT_S", 0.05)
    with pytest.raises(DockerUnavailable, match="list"):
        await reap_expired(HungDocker(), now_utc())  # type: ignore[arg-type]
    with pytest.raises(DockerUnavailable, match="list"):
        await remove_submission_containers(HungDocker(), "sub-1")  # type: ignore[arg-type]


async def test_a_pool_sweep_on_a_hung_daemon_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("streamworker.sandbox.pool.LIST_TIMEOUT_S", 0.05)
    pools = PoolManager(HungDocker(), Settings())  # type: ignore[arg-type]
    assert await asyncio.wait_for(pools.sweep(), 2.0) == 0


async def test_a_rename_the_daemon_never_answers_does_not_fail_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("streamworker.sandbox.executor.RENAME_TIMEOUT_S", 0.05)

    class Unnamed(FakeContainer):
        async def rename(self, _name: str) -> None:
            await forever()

    pooled = PooledContainer(Unnamed(), FakeStream([]), "sha256:img", POLICY, 0.0)  # type: ignore[arg-type]
    await asyncio.wait_for(_rename(HungDocker(), pooled, "name"), 2.0)  # type: ignore[arg-type]
