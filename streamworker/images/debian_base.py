"""The shared Debian base every runtime image starts from, and its package lists.

mmdebstrap bootstraps Essential plus apt once per suite and builder version, streamed
into Docker's import API; a container of it then fetches the package lists every
language's install reads. Both happen on the first language that needs them in a build,
so a run where every image is cached touches neither.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from streamworker.errors import ImageBuildError
from streamworker.images.apt_cache import merge_cache
from streamworker.images.docker_io import (
    IMAGE_FAILURES,
    drop_quietly,
    finish,
    import_rootfs,
    inspect,
    run_step,
)
from streamworker.images.recipe import (
    APT_UPDATE_SCRIPT,
    LABEL,
    base_mmdebstrap_argv,
    base_ref,
    debian_base_hash,
    is_step_line,
    labels_of,
)
from streamworker.sandbox.connection import DockerClient

Progress = Callable[[str], None]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BasePlan:
    """What the base needs to know of one build."""

    image_prefix: str
    suite: str
    sources: list[str]
    apt_cache: Path
    apt_lists: Path
    force: bool
    progress: Progress


class SharedBase:
    """The Debian base and fresh package lists, made on the first language that needs
    them and then shared: a run where every image is cached touches neither."""

    def __init__(self, docker: DockerClient, plan: BasePlan) -> None:
        self._docker, self._plan = docker, plan
        self._lock = asyncio.Lock()
        self._image_id = ""
        self._failure: ImageBuildError | None = None

    async def image(self) -> str:
        """The base's image id; a base that failed fails every language at once, not
        once per language after a bootstrap each."""
        async with self._lock:
            if self._failure is not None:
                raise self._failure
            if not self._image_id:
                try:
                    image_id = await self._base_image()
                    await run_step(
                        self._docker,
                        image_id,
                        APT_UPDATE_SCRIPT,
                        binds=[f"{self._plan.apt_lists}:/var/lib/apt/lists"],
                        on_line=step_lines("base", self._plan.progress),
                        commit=False,
                    )
                except IMAGE_FAILURES as exc:
                    self._failure = ImageBuildError(f"the Debian base failed: {exc}")
                    raise self._failure from exc
                self._image_id = image_id
            return self._image_id

    async def _base_image(self) -> str:
        plan, docker = self._plan, self._docker
        suite = plan.suite
        ref, want = base_ref(plan.image_prefix, suite), debian_base_hash(suite)
        existing = await inspect(docker, ref)
        if existing and not plan.force and labels_of(existing).get(LABEL + "base-hash") == want:
            return str(existing["Id"])
        plan.progress(f"[base] bootstrapping {ref} (Debian essential + apt)")
        started = time.monotonic()
        image_id = await bootstrap(docker, plan)
        try:
            await finish(docker, ref, image_id, {LABEL + "base-hash": want}, None)
        except IMAGE_FAILURES:
            await drop_quietly(docker, image_id)
            raise
        if existing:
            await drop_quietly(docker, existing["Id"])
        tagged = await inspect(docker, ref)
        if tagged is None:
            raise ImageBuildError(f"{ref} vanished right after it was built")
        plan.progress(f"[base] built in {time.monotonic() - started:.1f} s")
        return str(tagged["Id"])


def step_lines(name: str, progress: Progress) -> Callable[[str], None]:
    """A build step's output, filtered to the lines worth showing."""

    def show(line: str) -> None:
        line = line.rstrip()
        if is_step_line(line) or line.startswith("Err:"):
            progress(f"[{name}] {line}")

    return show


async def bootstrap(docker: DockerClient, plan: BasePlan) -> str:
    """Run mmdebstrap for the base and stream its tar into Docker's import: the image id."""
    if shutil.which("mmdebstrap") is None:
        raise ImageBuildError("mmdebstrap is not installed (apt-get install mmdebstrap)")
    incoming = Path(tempfile.mkdtemp(prefix="apt-incoming-base-", dir=plan.apt_cache.parent))
    argv = base_mmdebstrap_argv(
        suite=plan.suite,
        sources=plan.sources,
        apt_cache=plan.apt_cache,
        apt_incoming=incoming,
    )
    # mmdebstrap's temp dir next to the cache, so that the hard links work.
    tmp_dir = plan.apt_cache.with_name("tmp")
    tmp_dir.mkdir(exist_ok=True)
    proc = await asyncio.create_subprocess_exec(
        "env",
        f"TMPDIR={tmp_dir}",
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    tail: list[str] = []
    log_task = asyncio.create_task(_relay_log(proc.stderr, "base", plan.progress, tail))
    image_id = ""
    import_error: Exception | None = None
    try:
        image_id = await import_rootfs(docker, _chunks(proc.stdout))
    except asyncio.CancelledError:
        proc.terminate()  # mmdebstrap cleans up its mounts on SIGTERM
        raise
    except IMAGE_FAILURES as exc:
        import_error = exc
        # Let mmdebstrap finish on its own: killing it would leave its mounts behind.
        discarded = 0
        async for chunk in _chunks(proc.stdout):
            discarded += len(chunk)
        log.info("base: discarded %d bytes of rootfs after the import failed", discarded)
    finally:
        returncode = await proc.wait()
        await log_task
        await asyncio.to_thread(merge_cache, incoming, plan.apt_cache)
    if returncode != 0:
        if image_id:
            await drop_quietly(docker, image_id)
        raise ImageBuildError(f"mmdebstrap exited {returncode}:\n" + "\n".join(tail[-40:]))
    if import_error is not None:
        raise ImageBuildError(f"docker import failed: {import_error}") from import_error
    return image_id


async def _chunks(stream: asyncio.StreamReader) -> AsyncIterator[bytes]:
    while chunk := await stream.read(1 << 20):
        yield chunk


async def _relay_log(
    stream: asyncio.StreamReader, lang_id: str, progress: Progress, tail: list[str]
) -> None:
    """Pass on mmdebstrap's step lines (`I:`, `W:`, `E:`); keep the rest for errors."""
    pending = b""
    while chunk := await stream.read(1 << 16):
        *lines, pending = re.split(rb"[\r\n]", pending + chunk)
        for raw in lines:
            line = raw.decode(errors="replace").rstrip()
            if not line:
                continue
            tail.append(line)
            del tail[:-50]
            if is_step_line(line):
                progress(f"[{lang_id}] {line}")
