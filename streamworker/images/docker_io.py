"""The image builder's Docker I/O: connect, inspect, import, run a build step, label.

Every request the builder makes to Docker goes through here, so the orchestration
(`streamworker.images.builder`) reads as plain steps and `recipe` stays pure.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiodocker
import aiohttp

from streamworker.errors import DockerUnavailable, ImageBuildError
from streamworker.images.recipe import finish_context, version_line
from streamworker.languages.registry import Language
from streamworker.sandbox import probe
from streamworker.sandbox.connection import connect, resolve_endpoint
from streamworker.sandbox.spec import ContainerPolicy, container_config, sandbox_env
from streamworker.settings import Settings

VERSION_TIMEOUT_S = 120.0
STEP_TIMEOUT_S = 1800.0
"""A build step (an apt-get install of a JDK or GHC) may take minutes, not hours."""
IMAGE_FAILURES = (ImageBuildError, aiodocker.DockerError, aiohttp.ClientError)
"""What one image's build may raise without spoiling the others' builds."""


@contextlib.asynccontextmanager
async def connected(settings: Settings) -> AsyncIterator[aiodocker.Docker]:
    """A client of the configured endpoint, closed on exit; a dead daemon is
    `DockerUnavailable` up front rather than one failure per image."""
    docker = connect(resolve_endpoint(settings.docker))
    try:
        try:
            await probe.version(docker)
        except DockerUnavailable as exc:
            raise DockerUnavailable(f"cannot reach Docker: {exc.message}") from exc
        yield docker
    finally:
        await docker.close()


async def inspect(docker: aiodocker.Docker, ref: str) -> dict[str, Any] | None:
    """The inspected image, or None when there is no such image."""
    try:
        image: dict[str, Any] = await docker.images.inspect(ref)
    except aiodocker.DockerError as exc:
        if exc.status == 404:
            return None
        raise
    return image


async def import_rootfs(docker: aiodocker.Docker, body: AsyncIterator[bytes]) -> str:
    """Stream a root filesystem tar into `POST /images/create`; returns the image id.

    aiodocker has no streaming import, hence its private `_query`; no timeout, as the
    body comes from mmdebstrap as fast as it bootstraps Debian.
    """
    async with docker._query(
        "images/create",
        "POST",
        params={"fromSrc": "-"},
        data=body,
        headers={"Content-Type": "application/x-tar"},
        chunked=True,
        timeout=aiohttp.ClientTimeout(),
    ) as response:
        text = await response.text()
    image_id = ""
    for line in text.splitlines():
        message = json.loads(line) if line.strip() else {}
        if "error" in message:
            raise ImageBuildError(f"docker import failed: {message['error']}")
        image_id = str(message.get("status", image_id))
    if not image_id.startswith("sha256:"):
        raise ImageBuildError(f"docker import gave no image id: {text[-300:]}")
    return image_id


async def run_step(
    docker: aiodocker.Docker,
    image: str,
    script: str,
    *,
    binds: list[str],
    on_line: Callable[[str], None],
    commit: bool,
) -> str:
    """Run `script` as root in a container of `image`; the committed image's id, or "".

    Host networking: the mirror is the one this machine's apt reaches, which may be a
    proxy on its loopback. `binds` are host paths (the deb cache, the package lists), so
    the daemon must share this machine's file system: the socket or a local TCP daemon.
    Every output line goes to `on_line`; a non-zero exit is an `ImageBuildError` with
    the output's tail.
    """
    config: dict[str, Any] = {
        "Image": image,
        "Cmd": ["sh", "-c", script],
        "User": "0:0",
        "HostConfig": {"NetworkMode": "host", "Binds": binds, "Init": True},
    }
    container = await docker.containers.create(config)
    tail: list[str] = []

    async def relay() -> None:
        async for chunk in container.log(stdout=True, stderr=True, follow=True):
            for line in chunk.splitlines():
                tail.append(line)
                del tail[:-40]
                on_line(line)

    try:
        await container.start()
        status, _ = await asyncio.wait_for(
            asyncio.gather(container.wait(), relay()), STEP_TIMEOUT_S
        )
        if status.get("StatusCode") != 0:
            raise ImageBuildError(
                f"build step exited {status.get('StatusCode')}:\n" + "\n".join(tail)
            )
        if not commit:
            return ""
        # The step's command is not the image's: the sandbox always sets its own.
        committed = await container.commit(changes=['CMD ["/bin/sh"]'], pause=False)
        return str(committed["Id"])
    except TimeoutError as exc:
        raise ImageBuildError(f"build step took over {STEP_TIMEOUT_S:.0f} s") from exc
    finally:
        with contextlib.suppress(aiodocker.DockerError):
            await container.delete(force=True)


async def run_version(
    docker: aiodocker.Docker, image_id: str, lang: Language, settings: Settings
) -> str:
    """Run `version_cmd` once in the sandbox's exact container; a failure is a broken image."""
    if not lang.version_cmd:
        return ""
    limits = settings.compile_limits
    policy = ContainerPolicy(
        memory_mb=limits.memory_mb, processes=limits.processes, workspace_mb=16
    )
    config = container_config(image_id, policy, {}, sandbox_env(lang.env))
    config["Cmd"] = list(lang.version_cmd)
    config["HostConfig"]["LogConfig"] = {"Type": "json-file", "Config": {}}
    container = await docker.containers.create(config)
    try:
        await container.start()
        status = await asyncio.wait_for(container.wait(), VERSION_TIMEOUT_S)
        lines = await container.log(stdout=True, stderr=True)
    finally:
        with contextlib.suppress(aiodocker.DockerError):
            await container.delete(force=True)
    output = "".join(lines)
    if status.get("StatusCode") != 0:
        raise ImageBuildError(f"{' '.join(lang.version_cmd)} failed in the image: {output[-500:]}")
    return version_line(output)


async def finish(
    docker: aiodocker.Docker,
    ref: str,
    base_id: str,
    labels: Mapping[str, str],
    helper: bytes | None,
) -> None:
    """Tag `ref` as `base_id` plus labels (and a fresh helper): a metadata-only build."""
    context = finish_context(base_id, labels, helper)
    async for message in docker.images.build(
        fileobj=io.BytesIO(context),
        encoding="identity",
        tag=ref,
        rm=True,
        forcerm=True,
        stream=True,
        timeout=aiohttp.ClientTimeout(),
    ):
        if "error" in message:
            raise ImageBuildError(f"labelling {ref} failed: {message['error']}")


async def drop_quietly(docker: aiodocker.Docker, image_id: str) -> None:
    """Remove a superseded image; one still used by a container stays (and that is fine)."""
    with contextlib.suppress(aiodocker.DockerError):
        await docker.images.delete(image_id)
