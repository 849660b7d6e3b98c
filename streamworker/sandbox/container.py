"""One container's lifecycle: create, verify, start, exec runs, always remove.

aiodocker stays inside this package; callers see `Session.exec` and plain data.
Two session types: `Session` runs each step through `docker exec` of `sw-run run`
(cold containers); `AttachedSession` sends each step over the attach stream of a
container whose main process is `sw-run serve` (pooled containers: ~60 ms less a step).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, NoReturn

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
from streamworker.sandbox.protocol import WORKER_GRACE_S, RawRun
from streamworker.sandbox.spec import (
    MEMORY_HEADROOM_MB,
    PIDS_HEADROOM,
    SANDBOX_UID,
    WORKDIR,
    limit_violations,
)

log = logging.getLogger(__name__)

READ_SLACK_BYTES = 64 * 1024


class _ContainerSession:
    """What both session types do to the container itself."""

    def __init__(self, container: aiodocker.containers.DockerContainer, image_id: str) -> None:
        self._container = container
        self.image_id = image_id

    @property
    def container_id(self) -> str:
        return str(self._container.id)

    async def restrict(self, memory_mb: int, processes: int) -> None:
        """Lower memory (and swap) and the pids limit to the run's after compiling."""
        memory = (memory_mb + MEMORY_HEADROOM_MB) * 1024 * 1024
        try:
            await self._container.docker._query_json(
                f"containers/{self._container.id}/update",
                method="POST",
                data={
                    "Memory": memory,
                    "MemorySwap": memory,
                    "PidsLimit": processes + PIDS_HEADROOM,
                },
            )
        except aiodocker.DockerError as exc:
            raise SandboxError(f"could not set the run memory limit: {exc.message}") from exc

    async def _kill(self) -> None:
        try:
            await self._container.kill(signal="SIGKILL")
        except aiodocker.DockerError as exc:
            log.warning("kill of %s failed: %s", self.container_id[:12], exc.message)

    async def _container_state(self) -> dict[str, Any]:
        """The container's State; `DockerUnavailable` when the daemon cannot say."""
        try:
            state = (await self._container.show()).get("State", {})
        except (aiodocker.DockerError, aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
            raise DockerUnavailable(f"lost Docker during a run: {exc}") from exc
        return dict(state)


class Session(_ContainerSession):
    """A started sandbox container for one submission attempt; each run is an exec."""

    def __init__(
        self, container: aiodocker.containers.DockerContainer, image_id: str, env: Mapping[str, str]
    ) -> None:
        super().__init__(container, image_id)
        self._env = dict(env)

    async def exec(
        self,
        argv: Sequence[str],
        limits: protocol.HelperLimits,
        files: Sequence[tuple[str, bytes]] = (),
        stdin: bytes = b"",
    ) -> RawRun:
        """Run `argv` once under the helper; outputs come back as stream data only."""
        nonce = protocol.new_nonce()
        payload = protocol.encode_input(nonce, files, stdin)
        cmd = protocol.helper_command(limits, argv)
        try:
            execution = await self._container.exec(
                cmd,
                stdin=True,
                stdout=True,
                stderr=True,
                user=f"{SANDBOX_UID}:{SANDBOX_UID}",
                workdir=WORKDIR,
                environment=self._env,
            )
        except aiodocker.DockerError as exc:
            if exc.status == 409:  # the container died (e.g. a daemon restart): retry anew
                raise ContainerGone(f"exec create failed: {exc.message}") from exc
            if exc.status == 900:  # aiodocker's "cannot connect"
                raise DockerUnavailable(f"exec create failed: {exc.message}") from exc
            raise SandboxError(f"exec create failed: {exc.message}") from exc
        cap = limits.output_bytes + READ_SLACK_BYTES
        out = bytearray()
        err = bytearray()
        failure: str | None = None
        stream = execution.start(detach=False)
        try:
            async with asyncio.timeout(limits.wall_time_s + WORKER_GRACE_S):
                async with stream:
                    await stream.write_in(payload)
                    while True:
                        message = await stream.read_out()
                        if message is None:
                            break
                        (out if message.stream == 1 else err).extend(message.data)
                        if len(out) + len(err) > cap:
                            failure = "output beyond the helper's limit; container killed"
                            break
        except TimeoutError:
            failure = "the sandbox helper did not finish in time; container killed"
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise DockerUnavailable(f"exec stream broke: {exc}") from exc
        if failure is not None:
            await self._kill()
            return RawRun(bytes(out), bytes(err), None, failure)
        try:
            stderr, report = protocol.split_report(nonce, bytes(err))
        except SandboxError as exc:
            # No report: either the program killed the helper (its verdict) or we lost
            # Docker (ours, retriable). The exec's own state tells them apart.
            await self._raise_if_docker_lost(execution)
            return RawRun(bytes(out), bytes(err), None, exc.message)
        return RawRun(bytes(out), stderr, report)

    async def _raise_if_docker_lost(self, execution: Any) -> None:
        try:
            info = await execution.inspect()
        except (aiodocker.DockerError, aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
            raise DockerUnavailable(f"lost Docker during a run: {exc}") from exc
        if info.get("Running") or info.get("ExitCode") is None:
            raise DockerUnavailable("the exec stream ended while the helper was still running")
        # A daemon shutting down kills the helper a moment before it marks the container
        # stopped; give that a moment to show before blaming the program.
        for _ in range(5):
            state = await self._container_state()
            if not state.get("Running"):
                # The whole container stopped (a daemon restart, or its idle helper
                # killed): not a verdict on the program. Retried in a fresh container.
                raise ContainerGone("the container stopped during the run")
            await asyncio.sleep(0.1)


class AttachedSession(_ContainerSession):
    """A pooled container whose main process is `sw-run serve`, driven over its attach
    stream (opened before the container started, so no byte is lost).

    A step is one write of the request and reads until the helper's end frame: no
    exec to create, start and inspect. The stream is this session's alone; it is
    closed with the container, never handed to another submission.
    """

    def __init__(
        self, container: aiodocker.containers.DockerContainer, image_id: str, stream: Stream
    ) -> None:
        super().__init__(container, image_id)
        self._stream = stream
        self._lost: str | None = None

    async def exec(
        self,
        argv: Sequence[str],
        limits: protocol.HelperLimits,
        files: Sequence[tuple[str, bytes]] = (),
        stdin: bytes = b"",
    ) -> RawRun:
        """Run `argv` once under the serving helper; same contract as `Session.exec`."""
        if self._lost is not None:
            # An earlier step lost the stream: no later step can run in this container.
            raise ContainerGone(f"the sandbox stream is gone: {self._lost}")
        nonce = protocol.new_nonce()
        payload = protocol.encode_request(nonce, limits, argv, files, stdin)
        cap = limits.output_bytes + READ_SLACK_BYTES
        run = protocol.ServedRun(nonce)
        frames = protocol.FrameDecoder()
        diagnostics = bytearray()
        failure: str | None = None
        try:
            async with asyncio.timeout(limits.wall_time_s + WORKER_GRACE_S):
                await self._stream.write_in(payload)
                while not run.done:
                    message = await self._stream.read_out()
                    if message is None:
                        break
                    if message.stream != 1:
                        # The helper's own complaints (it writes nothing else there).
                        diagnostics.extend(message.data[: 1000 - len(diagnostics)])
                        continue
                    for kind, data in frames.feed(message.data):
                        run.add(kind, data)
                    if run.output_bytes > cap:
                        failure = "output beyond the helper's limit; container killed"
                        break
        except TimeoutError:
            failure = "the sandbox helper did not finish in time; container killed"
        except HelperProtocolError as exc:
            failure = f"the sandbox stream broke: {exc.message}; container killed"
        except (aiohttp.ClientError, ConnectionError, RuntimeError, AssertionError) as exc:
            # aiodocker asserts that the hijacked connection is still there: a stream
            # whose container died (e.g. with its daemon) while it waited in the pool.
            await self._stream_lost(f"the sandbox stream broke: {exc!r}", diagnostics)
        if failure is not None:
            self._lost = failure
            await self._kill()
            return RawRun(bytes(run.stdout), bytes(run.stderr), None, failure)
        if not run.done:
            # The stream ended without the end frame: the helper is PID 1 and immune to
            # the program's signals, so the container stopped or we lost Docker.
            # (Like an exec session whose idle helper died: not a verdict, a retry.)
            await self._stream_lost("the sandbox stream ended during the run", diagnostics)
        return run.raw_run()

    async def _stream_lost(self, why: str, diagnostics: bytes | bytearray) -> NoReturn:
        """Raise the retriable error for a lost stream: `DockerUnavailable` when the
        daemon does not answer, else `ContainerGone` (no later step can run here)."""
        self._lost = why
        state = await self._container_state()
        raise ContainerGone(
            why
            + ("" if state.get("Running") else " (the container stopped)")
            + (f": {bytes(diagnostics).decode('utf-8', 'replace')!r}" if diagnostics else "")
        )


async def open_stream(container: aiodocker.containers.DockerContainer) -> Stream:
    """Attach to stdin, stdout and stderr now (before start, so nothing is missed).

    aiodocker hijacks the connection lazily; entering the stream does it here. Closing
    it half-closes stdin, which the serving helper takes as the end of requests.
    """
    stream = container.attach(stdin=True, stdout=True, stderr=True)
    await stream.__aenter__()
    return stream


async def close_stream(stream: Stream) -> None:
    """Close an attach stream whatever state the connection is in."""
    try:
        await stream.close()
    except (aiohttp.ClientError, ConnectionError, OSError, RuntimeError) as exc:
        log.debug("closing an attach stream failed: %s", exc)


async def remove_by_name(docker: aiodocker.Docker, name: str) -> bool:
    """Remove a leftover container of an earlier attempt; True if one was there."""
    try:
        await docker.containers.container(name).delete(force=True, v=True)
    except aiodocker.DockerError as exc:
        if exc.status == 404:
            return False
        raise
    log.info("removed leftover container %s", name)
    return True


async def _create(
    docker: aiodocker.Docker, config: dict[str, Any], name: str
) -> aiodocker.containers.DockerContainer:
    try:
        return await docker.containers.create(config, name=name)
    except aiodocker.DockerError as exc:
        if exc.status == 900:  # aiodocker's code for "could not connect to the daemon"
            raise DockerUnavailable(f"Docker is unreachable: {exc.message}") from exc
        if exc.status == 404 and "image" in exc.message.lower():
            raise ImageMissing(
                f"runtime image {config['Image']} is missing: run `streamworker images build`"
            ) from exc
        if exc.status == 409:
            await remove_by_name(docker, name)
            return await docker.containers.create(config, name=name)
        metrics.CONTAINER_FAILURES.labels("create").inc()
        raise ContainerCreateFailed(f"create failed: {exc.message}") from exc


@asynccontextmanager
async def open_session(
    docker: aiodocker.Docker, config: dict[str, Any], name: str
) -> AsyncIterator[Session]:
    """Create, verify and start a container; remove it whatever happens."""
    started = time.monotonic()
    try:
        container = await _create(docker, config, name)
    except (aiohttp.ClientError, ConnectionError, OSError) as exc:
        raise DockerUnavailable(f"Docker is unreachable: {exc}") from exc
    try:
        info = await container.show()
        problems = limit_violations(config, info)
        if problems:
            metrics.CONTAINER_FAILURES.labels("limits").inc()
            raise LimitNotApplied("refusing to run, the daemon dropped: " + "; ".join(problems))
        await container.start()
        env = dict(item.split("=", 1) for item in config["Env"])
        yield Session(container, str(info.get("Image", "")), env)
    except aiodocker.DockerError as exc:
        metrics.CONTAINER_FAILURES.labels("start").inc()
        raise SandboxError(f"Docker refused: {exc.message}") from exc
    except (aiohttp.ClientError, ConnectionError) as exc:
        raise DockerUnavailable(f"Docker connection lost: {exc}") from exc
    finally:
        # Shielded: a cancelled run must still not leave its container behind.
        await asyncio.shield(remove_container(container))
        log.debug("container %s lived %.3fs", name, time.monotonic() - started)


REMOVAL_WAIT_S = 15.0


async def remove_container(container: aiodocker.containers.DockerContainer) -> None:
    """Remove and return once it is gone; never raises (the reaper retries later).

    404: already gone. 409: another removal is in progress, which is not done until the
    container no longer inspects, so wait for that (bounded).
    """
    try:
        await container.delete(force=True, v=True)
    except aiodocker.DockerError as exc:
        if exc.status == 404:
            return
        if exc.status == 409:
            await wait_gone(container)
            return
        _removal_failed(container, exc)
    except (aiohttp.ClientError, ConnectionError, TimeoutError) as exc:
        _removal_failed(container, exc)


def _removal_failed(container: aiodocker.containers.DockerContainer, exc: Exception) -> None:
    # Never let a failed removal replace the real result.
    metrics.CONTAINER_FAILURES.labels("remove").inc()
    log.warning("removing container %s failed: %s", str(container.id)[:12], exc)


async def wait_gone(
    container: aiodocker.containers.DockerContainer, timeout_s: float = REMOVAL_WAIT_S
) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            while True:
                try:
                    await container.show()
                except aiodocker.DockerError as exc:
                    if exc.status == 404:
                        return
                await asyncio.sleep(0.1)
    log.warning("container %s still not removed after %.0f s", str(container.id)[:12], timeout_s)
