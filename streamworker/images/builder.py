"""Build and list the runtime images: the steps, from the registry to tagged images.

Each language's image is bootstrapped by mmdebstrap straight into Docker's import (no
registry, only Debian's mirror), then tagged with its labels by a metadata-only build
after `version_cmd` ran once in it under the sandbox's flags (a smoke test). What goes
into an image is `streamworker.images.recipe`; the Docker requests are in `docker_io`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streamworker.errors import ImageBuildError
from streamworker.images.docker_io import (
    IMAGE_FAILURES,
    connected,
    drop_quietly,
    finish,
    import_rootfs,
    inspect,
    run_version,
)
from streamworker.images.mirror import debian_source_lines
from streamworker.images.recipe import (
    LABEL,
    base_hash,
    helper_tarball,
    image_labels,
    is_step_line,
    is_up_to_date,
    labels_of,
    mmdebstrap_argv,
    recipe_hash,
)
from streamworker.languages.registry import Language, get_language, image_ref, load_registry
from streamworker.sandbox.connection import DockerClient
from streamworker.sandbox.helper import build_helper, helper_source_hash
from streamworker.settings import Settings

BUILD_CONCURRENCY = 2
"""Images bootstrapped at once by default (`--jobs`): two mmdebstraps saturate 2 cores;
more only adds contention there, a bigger machine may pass more."""
Progress = Callable[[str], None]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildOutcome:
    """What happened to one language's image: built, refreshed, cached, external, failed."""

    lang_id: str
    image: str
    action: str
    elapsed_s: float
    size_bytes: int = 0
    version: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.action != "failed"


@dataclass(frozen=True)
class LanguageStatus:
    """One row of `streamworker languages`."""

    id: str
    name: str
    version: str
    image: str
    present: bool
    up_to_date: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Plan:
    """Inputs shared by every language in one `build_images` call."""

    settings: Settings
    sources: list[str]
    helper: bytes
    helper_tar: Path
    helper_hash: str
    apt_cache: Path
    force: bool
    progress: Progress


def _prepare(settings: Settings, force: bool, progress: Progress) -> _Plan:
    """Compile the helper, pack it, pick the mirror: the blocking part, done once."""
    data_dir = Path(settings.data_dir).resolve()
    helper_binary = build_helper(data_dir / "helper")
    helper_tar = helper_binary.with_suffix(".tar")
    if not helper_tar.exists():
        helper_tar.write_bytes(helper_tarball(helper_binary.read_bytes()))
    apt_cache = data_dir / "apt-cache"
    apt_cache.mkdir(parents=True, exist_ok=True)
    return _Plan(
        settings=settings,
        sources=debian_source_lines(settings.debian_suite, override=settings.debian_mirror),
        helper=helper_binary.read_bytes(),
        helper_tar=helper_tar,
        helper_hash=helper_source_hash(),
        apt_cache=apt_cache,
        force=force,
        progress=progress,
    )


async def build_images(
    lang_ids: list[str] | None,
    *,
    settings: Settings,
    force: bool = False,
    progress: Progress = print,
    jobs: int = BUILD_CONCURRENCY,
) -> list[BuildOutcome]:
    """Build the images of `lang_ids` (default: all) that are missing or out of date,
    `jobs` at a time."""
    langs = [get_language(i) for i in lang_ids] if lang_ids else list(load_registry().values())
    plan = await asyncio.to_thread(_prepare, settings, force, progress)
    started = time.monotonic()
    gate = asyncio.Semaphore(max(1, jobs))
    async with connected(settings) as docker:

        async def one(lang: Language) -> BuildOutcome:
            async with gate:
                return await _build_one(docker, lang, plan)

        outcomes = await asyncio.gather(*(one(lang) for lang in langs))
    built = sum(o.action in ("built", "refreshed") for o in outcomes)
    failed = [o.lang_id for o in outcomes if not o.ok]
    progress(
        f"images: {built} built, {len(outcomes) - built - len(failed)} up to date, "
        f"{len(failed)} failed{' (' + ', '.join(failed) + ')' if failed else ''} "
        f"in {time.monotonic() - started:.1f} s"
    )
    return list(outcomes)


async def list_languages(settings: Settings) -> list[LanguageStatus]:
    """Every registered language with its image's presence, freshness and version."""
    helper_hash = helper_source_hash()
    rows = []
    async with connected(settings) as docker:
        for lang in load_registry().values():
            ref = image_ref(lang, settings)
            image = await inspect(docker, ref)
            labels = labels_of(image)
            want = recipe_hash(lang, settings.debian_suite, helper_hash)
            fresh = image is not None and is_up_to_date(lang, labels, want)
            version = labels.get(LABEL + "version", "")
            rows.append(LanguageStatus(lang.id, lang.name, version, ref, image is not None, fresh))
    return rows


async def _build_one(docker: DockerClient, lang: Language, plan: _Plan) -> BuildOutcome:
    ref = image_ref(lang, plan.settings)
    started = time.monotonic()

    def outcome(action: str, image: dict[str, Any] | None = None, error: str = "") -> BuildOutcome:
        elapsed_s = round(time.monotonic() - started, 1)
        size = int((image or {}).get("Size", 0))
        version = labels_of(image).get(LABEL + "version", "")
        done = BuildOutcome(lang.id, ref, action, elapsed_s, size, version, error)
        detail = error or f"{size / 1e6:.0f} MB, {done.version}"
        plan.progress(f"[{lang.id}] {action} in {elapsed_s:.1f} s: {detail}")
        return done

    existing = await inspect(docker, ref)
    if lang.image:
        return (
            outcome("external", existing)
            if existing
            else outcome("failed", error=f"{ref} is not present")
        )
    labels = labels_of(existing)
    suite = plan.settings.debian_suite
    want = recipe_hash(lang, suite, plan.helper_hash)
    if existing and not plan.force and labels.get(LABEL + "recipe-hash") == want:
        return outcome("cached", existing)
    base_id, fresh_base = labels.get(LABEL + "base-image", ""), ""
    try:
        if (
            existing
            and not plan.force
            and labels.get(LABEL + "base-hash") == base_hash(lang, suite)
            and await inspect(docker, base_id)
        ):
            plan.progress(f"[{lang.id}] helper changed: refreshing {ref}")
            action, version, copy_helper = "refreshed", labels.get(LABEL + "version", ""), True
        else:
            plan.progress(
                f"[{lang.id}] building {ref} from {', '.join(lang.packages) or 'essential'}"
            )
            base_id = fresh_base = await _bootstrap(docker, lang, plan)
            action, copy_helper = "built", False
            version = await run_version(docker, base_id, lang, plan.settings)
        new_labels = image_labels(
            lang,
            suite=suite,
            sources=plan.sources,
            base_id=base_id,
            helper_hash=plan.helper_hash,
            version=version,
            built_at=datetime.now(UTC),
        )
        await finish(docker, ref, base_id, new_labels, plan.helper if copy_helper else None)
    except IMAGE_FAILURES as exc:
        if fresh_base:
            await drop_quietly(docker, fresh_base)
        return outcome("failed", error=str(exc))
    if existing:
        await drop_quietly(docker, existing["Id"])
    return outcome(action, await inspect(docker, ref))


async def _bootstrap(docker: DockerClient, lang: Language, plan: _Plan) -> str:
    """Run mmdebstrap and stream its tar into Docker's import; returns the image id."""
    if shutil.which("mmdebstrap") is None:
        raise ImageBuildError("mmdebstrap is not installed (apt-get install mmdebstrap)")
    incoming = Path(tempfile.mkdtemp(prefix=f"apt-incoming-{lang.id}-", dir=plan.apt_cache.parent))
    argv = mmdebstrap_argv(
        lang,
        suite=plan.settings.debian_suite,
        sources=plan.sources,
        helper_tar=plan.helper_tar,
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
    log_task = asyncio.create_task(_relay_log(proc.stderr, lang.id, plan.progress, tail))
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
        log.info("%s: discarded %d bytes of rootfs after the import failed", lang.id, discarded)
    finally:
        returncode = await proc.wait()
        await log_task
        await asyncio.to_thread(_merge_cache, incoming, plan.apt_cache)
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


def _merge_cache(incoming: Path, cache: Path) -> None:
    """Move synced-out .debs into the shared cache; a rename is atomic for readers."""
    if incoming.is_dir():
        for deb in incoming.glob("*.deb"):
            deb.replace(cache / deb.name)
        shutil.rmtree(incoming, ignore_errors=True)
