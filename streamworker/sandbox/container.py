"""One container's lifecycle: create, verify, attach, start, serve runs, always remove.

aiodocker stays inside this package; callers see `AttachedSession.exec` and plain data.
Every sandbox container, cold or pooled, has `sw-run serve` as its main process (PID 1,
no init: immune to the program's signals), attached before start (`start_served`), and
each step is one request over that stream. Cold and warm differ only in when the
container was made, so they give the same verdicts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiodocker
import aiohttp
from aiodocker.stream import Stream

from streamworker import metrics
from streamworker.errors import (
    ContainerCreateFailed,
    ContainerGone,
    DockerUnavailable,
    HelperProtocolError,
    ImageMissing,
    LimitNotApplied,
    SandboxError,
)
from streamworker.sandbox import protocol
from streamworker.sandbox.calls import (
    ATTACH_TIMEOUT_S,
    CLOSE_TIMEOUT_S,
    CREATE_TIMEOUT_S,
    DELETE_TIMEOUT_S,
    INSPECT_TIMEOUT_S,
    KILL_TIMEOUT_S,
    START_TIMEOUT_S,
    UPDATE_TIMEOUT_S,
    docker_call,
)
from streamworker.sandbox.failure import FailureKind
from streamworker.sandbox.protocol import WORKER_GRACE_S, RawRun
from streamworker.sandbox.spec import (
    LABEL_PREFIX,
    MEMORY_HEADROOM_MB,
    PIDS_HEADROOM,
    limit_violations,
)

log = logging.getLogger(__name__)

READ_SLACK_BYTES = 64 * 1024
STOP_SETTLE_S = 2.0
"""How long a container whose stream ended may still show as running: the daemon marks
it stopped a moment after its main process died (e.g. OOM-killed)."""
STREAM_BROKE = (aiohttp.ClientError, ConnectionError, RuntimeError, AssertionError)
"""What reading a hijacked attach stream raises when its connection is gone (aiodocker
asserts the connection is still there)."""


class AttachedSession:
    """A started container whose main process is `sw-run serve`, driven over its attach
    stream (opened before the container started, so no byte is lost).

    A step is one write of the request and reads until the helper's end frame. The
    stream is this session's alone; it is closed with the container, never handed to
    another submission.
    """

    def __init__(
        self, container: aiodocker.containers.DockerContainer, image_id: str, stream: Stream
    ) -> None:
        self._container = container
        self.image_id = image_id
        self._stream = stream
        self._lost: str | None = None
        self.limited: tuple[int, int] | None = None
        """The memory (MB) and pids limits `restrict` last set, if it did."""

    @property
    def container_id(self) -> str:
        return str(self._container.id)

    async def restrict(self, memory_mb: int, processes: int) -> None:
        """Lower memory (and swap) and the pids limit to the run's after compiling."""
        memory = (memory_mb + MEMORY_HEADROOM_MB) * 1024 * 1024
        update = self._container.docker._query_json(
            f"containers/{self._container.id}/update",
            method="POST",
            data={"Memory": memory, "MemorySwap": memory, "PidsLimit": processes + PIDS_HEADROOM},
        )
        try:
            await docker_call(update, UPDATE_TIMEOUT_S, "update")
        except aiodocker.DockerError as exc:
            raise SandboxError(f"could not set the run memory limit: {exc.message}") from exc
        self.limited = (memory_mb, processes)

    @property
    def intact(self) -> bool:
        """Every step so far was answered in step: the helper still serves this stream."""
        return self._lost is None

    async def wipe(self) -> None:
        """Have the helper empty everything a run can leave behind and drop the snapshot
        (`--reset 2`), so another submission may use the container; raises
        `SandboxError` unless the helper confirms with a clean report."""
        raw = await self.exec(protocol.WIPE_ARGV, protocol.WIPE_LIMITS)
        report = raw.report
        if report is None or report.exit_code != 0 or raw.stdout or raw.stderr:
            why = raw.failure or raw.stderr[-300:].decode("utf-8", "replace") or "no report"
            raise SandboxError(f"the sandbox helper did not wipe the container: {why}")

    async def exec(
        self,
        argv: Sequence[str],
        limits: protocol.HelperLimits,
        files: Sequence[tuple[str, bytes]] = (),
        stdin: bytes = b"",
    ) -> RawRun:
        """Run `argv` once under the serving helper; outputs come back as data only.

        Without the helper's report, `RawRun.kind` says why. Raises `ContainerGone` or
        `DockerUnavailable` (retriable) when the container or Docker went away under us.
        """
        if self._lost is not None:
            # An earlier step lost the stream: no later step can run in this container.
            raise ContainerGone(f"the sandbox stream is gone: {self._lost}")
        nonce = protocol.new_nonce()
        payload = protocol.encode_request(nonce, limits, argv, files, stdin)
        run = protocol.ServedRun(nonce)
        diagnostics = bytearray()
        try:
            async with asyncio.timeout(limits.wall_time_s + WORKER_GRACE_S):
                cap = limits.output_bytes + READ_SLACK_BYTES
                flooded = await self._exchange(payload, run, cap, diagnostics)
        except TimeoutError:
            why = "the sandbox helper did not finish in time; container killed"
            return await self._killed(run, FailureKind.WORKER_TIMEOUT, why)
        except HelperProtocolError as exc:
            await self._killed(run, None, f"the sandbox stream broke: {exc.message}")
            raise
        except STREAM_BROKE as exc:
            return await self._ended(f"the sandbox stream broke: {exc!r}", run, diagnostics)
        if flooded:
            why = "output beyond the helper's limit; container killed"
            return await self._killed(run, FailureKind.OUTPUT_FLOOD, why)
        if not run.done:
            return await self._ended("the sandbox stream ended during the run", run, diagnostics)
        raw = run.raw_run()
        if raw.report is None:
            # The helper reports every run it starts: no report means it refused this one.
            tail = raw.stderr[-300:].decode("utf-8", "replace")
            why = f"the sandbox helper refused the request: {tail!r}"
            return dataclasses.replace(raw, failure=why, kind=FailureKind.HELPER_ERROR)
        return raw

    async def _exchange(
        self, payload: bytes, run: protocol.ServedRun, cap: int, diagnostics: bytearray
    ) -> bool:
        """Send one request and read its frames until its end frame or the stream's end;
        True when the output passed `cap` (the helper should have stopped it)."""
        frames = protocol.FrameDecoder()
        await self._stream.write_in(payload)
        while not run.done:
            message = await self._stream.read_out()
            if message is None:
                return False
            if message.stream != 1:
                # The helper's own complaints (it writes nothing else there).
                diagnostics.extend(message.data[: 1000 - len(diagnostics)])
                continue
            for kind, data in frames.feed(message.data):
                run.add(kind, data)
            if run.output_bytes > cap:
                return True
        return False

    async def _killed(self, run: protocol.ServedRun, kind: FailureKind | None, why: str) -> RawRun:
        """Kill the container (its stream is out of step) and return what came so far."""
        self._lost = why
        try:
            await docker_call(self._container.kill(signal="SIGKILL"), KILL_TIMEOUT_S, "kill")
        except aiodocker.DockerError as exc:
            log.warning("kill of %s failed: %s", self.container_id[:12], exc.message)
        return RawRun(bytes(run.stdout), bytes(run.stderr), None, why, kind)

    async def _ended(
        self, why: str, run: protocol.ServedRun, diagnostics: bytes | bytearray
    ) -> RawRun:
        """The stream ended without the end frame. The helper is PID 1 and immune to the
        program's signals, so the container died: of an OOM (the program's verdict),
        else under us (`ContainerGone`, or `DockerUnavailable` when the daemon is mute)."""
        self._lost = why
        state = await self._settled_state()
        if state.get("OOMKilled"):
            return RawRun(
                bytes(run.stdout),
                bytes(run.stderr),
                None,
                "the container ran out of memory; the OOM killer took the sandbox helper",
                FailureKind.OOM_KILLED,
            )
        raise ContainerGone(
            why
            + ("" if state.get("Running") else " (the container stopped)")
            + (f": {bytes(diagnostics).decode('utf-8', 'replace')!r}" if diagnostics else "")
        )

    async def _settled_state(self) -> dict[str, Any]:
        """The container's State once it shows as stopped (or after `STOP_SETTLE_S`)."""
        deadline = time.monotonic() + STOP_SETTLE_S
        while True:
            try:
                info = await docker_call(self._container.show(), INSPECT_TIMEOUT_S, "inspect")
            except aiodocker.DockerError as exc:
                if exc.status == 404:
                    raise ContainerGone("the container was removed during the run") from exc
                raise DockerUnavailable(f"inspect failed during a run: {exc.message}") from exc
            state = dict(info.get("State") or {})
            if not state.get("Running") or time.monotonic() >= deadline:
                return state
            await asyncio.sleep(0.1)


@dataclass(frozen=True)
class ServedContainer:
    """A created, verified, attached and started container (see `start_served`)."""

    container: aiodocker.containers.DockerContainer
    stream: Stream
    image_id: str


async def start_served(
    docker: aiodocker.Docker, config: dict[str, Any], name: str
) -> ServedContainer:
    """Create, check every limit, attach and start a container served by `sw-run serve`
    (`config` from `spec.attached_config`): the one way every sandbox container, cold or
    pooled, comes to life. On any failure, cancellation included, it is removed again.
    """
    container = await _create(docker, config, name)
    stream: Stream | None = None
    try:
        info = await docker_call(container.show(), INSPECT_TIMEOUT_S, "inspect")
        problems = limit_violations(config, info)
        if problems:
            metrics.CONTAINER_FAILURES.labels("limits").inc()
            raise LimitNotApplied("refusing to run, the daemon dropped: " + "; ".join(problems))
        stream = await open_stream(container)
        await docker_call(container.start(), START_TIMEOUT_S, "start")
    except BaseException as exc:
        await asyncio.shield(_discard(container, stream))
        if isinstance(exc, aiodocker.DockerError):
            metrics.CONTAINER_FAILURES.labels("start").inc()
            raise SandboxError(f"Docker refused: {exc.message}") from exc
        raise
    return ServedContainer(container, stream, str(info.get("Image", "")))


async def _discard(container: aiodocker.containers.DockerContainer, stream: Stream | None) -> None:
    if stream is not None:
        await close_stream(stream)
    await remove_container(container)


async def remove_served(served: ServedContainer) -> None:
    """Hang up its stream, then remove the container; never raises."""
    await _discard(served.container, served.stream)


@asynccontextmanager
async def open_session(
    docker: aiodocker.Docker, config: dict[str, Any], name: str
) -> AsyncIterator[AttachedSession]:
    """A cold container for one submission attempt; removed whatever happens."""
    started = time.monotonic()
    served = await start_served(docker, config, name)
    try:
        yield AttachedSession(served.container, served.image_id, served.stream)
    finally:
        # Shielded: a cancelled run must still not leave its container behind.
        await asyncio.shield(remove_served(served))
        log.debug("container %s lived %.3fs", name, time.monotonic() - started)


async def open_stream(container: aiodocker.containers.DockerContainer) -> Stream:
    """Attach to stdin, stdout and stderr now (before start, so nothing is missed).

    aiodocker hijacks the connection lazily; entering the stream does it here. Closing
    it half-closes stdin, which the serving helper takes as the end of requests.
    """
    stream = container.attach(stdin=True, stdout=True, stderr=True)
    await docker_call(stream.__aenter__(), ATTACH_TIMEOUT_S, "attach")
    return stream


async def close_stream(stream: Stream) -> None:
    """Close an attach stream whatever state the connection is in; never raises."""
    try:
        await docker_call(stream.close(), CLOSE_TIMEOUT_S, "closing the attach stream")
    except (SandboxError, OSError, RuntimeError) as exc:
        log.debug("closing an attach stream failed: %s", exc)


async def remove_by_name(docker: aiodocker.Docker, name: str) -> bool:
    """Remove a leftover container of an earlier attempt; True if one was there."""
    leftover = docker.containers.container(name)
    try:
        await docker_call(leftover.delete(force=True, v=True), DELETE_TIMEOUT_S, "delete")
    except aiodocker.DockerError as exc:
        if exc.status == 404:
            return False
        raise
    log.info("removed leftover container %s", name)
    return True


async def _create(
    docker: aiodocker.Docker, config: dict[str, Any], name: str
) -> aiodocker.containers.DockerContainer:
    """Create by name; a leftover holding the name (an earlier try) is removed first."""
    try:
        return await docker_call(
            docker.containers.create(config, name=name), CREATE_TIMEOUT_S, "create"
        )
    except aiodocker.DockerError as exc:
        if exc.status == 404 and "image" in exc.message.lower():
            language = dict(config.get("Labels") or {}).get(f"{LABEL_PREFIX}.language", "")
            build = f"streamworker images build {language}".rstrip()
            raise ImageMissing(
                f"runtime image {config['Image']} is missing: run `{build}` (or `make images`)"
            ) from exc
        if exc.status != 409:
            metrics.CONTAINER_FAILURES.labels("create").inc()
            raise ContainerCreateFailed(f"create failed: {exc.message}") from exc
    await remove_by_name(docker, name)
    try:
        return await docker_call(
            docker.containers.create(config, name=name), CREATE_TIMEOUT_S, "create"
        )
    except aiodocker.DockerError as exc:
        metrics.CONTAINER_FAILURES.labels("create").inc()
        raise ContainerCreateFailed(f"create failed: {exc.message}") from exc


REMOVAL_WAIT_S = 15.0


async def remove_container(container: aiodocker.containers.DockerContainer) -> None:
    """Remove and return once it is gone; never raises (the reaper retries later).

    404: already gone. 409: another removal is in progress, which is not done until the
    container no longer inspects, so wait for that (bounded).
    """
    try:
        await docker_call(container.delete(force=True, v=True), DELETE_TIMEOUT_S, "delete")
    except aiodocker.DockerError as exc:
        if exc.status == 404:
            return
        if exc.status == 409:
            await wait_gone(container)
            return
        _removal_failed(container, exc)
    except SandboxError as exc:
        _removal_failed(container, exc)


def _removal_failed(container: aiodocker.containers.DockerContainer, exc: Exception) -> None:
    # Never let a failed removal replace the real result.
    metrics.CONTAINER_FAILURES.labels("remove").inc()
    log.warning("removing container %s failed: %s", str(container.id)[:12], exc)


async def wait_gone(
    container: aiodocker.containers.DockerContainer, timeout_s: float = REMOVAL_WAIT_S
) -> None:
    """Until the container no longer inspects (bounded by `timeout_s`); never raises."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            while True:
                try:
                    await docker_call(container.show(), INSPECT_TIMEOUT_S, "inspect")
                except aiodocker.DockerError as exc:
                    if exc.status == 404:
                        return
                except SandboxError:
                    pass  # the daemon is slow or away: keep asking until the deadline
                await asyncio.sleep(0.1)
    log.warning("container %s still not removed after %.0f s", str(container.id)[:12], timeout_s)
