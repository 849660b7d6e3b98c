"""Build the runtime images offline from Debian packages, with no container registry.

`mmdebstrap --variant=essential --include=<packages>` writes a root filesystem as a tar
stream that goes straight into Docker's import API, so nothing but Debian's mirror is
needed. A hook copies in the trusted helper `sw-run`. A second, metadata-only build step
adds the labels, including the version that `version_cmd` printed when run once in a
throw-away container under the sandbox's flags (which doubles as a smoke test).

The recipe hash (packages, setup, suite, helper source, builder version) is stored as a
label: an image whose label matches is not rebuilt. When only the helper changed, the
helper is re-copied onto the imported base instead of bootstrapping Debian again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import re
import shlex
import shutil
import tarfile
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiodocker
import aiohttp

from streamworker.errors import DockerUnavailable, ImageBuildError
from streamworker.languages.mirror import debian_source_lines
from streamworker.languages.registry import Language, get_language, load_registry
from streamworker.sandbox.connection import connect, resolve_endpoint
from streamworker.sandbox.helper import HELPER_PATH, build_helper, helper_source_hash
from streamworker.sandbox.spec import ContainerPolicy, container_config, sandbox_env
from streamworker.sandbox.tls import explain_failure
from streamworker.settings import Settings

BUILDER_VERSION = "1"
LABEL = "org.streamworker."
BUILD_CONCURRENCY = 2  # two mmdebstraps saturate 2 cores; more only adds contention
VERSION_TIMEOUT_S = 120.0
# Docs, man pages and translations are dead weight in a sandbox. Deleted after install
# rather than skipped with dpkg's path-exclude: that makes mmdebstrap pipe every
# essential package through a Python tar filter (+15 s per image) and breaks postinsts
# that expect /usr/share/man (openjdk's update-alternatives).
TRIM_HOOK = (
    'find "$1/usr/share/doc" -type f ! -name copyright -delete; '
    'rm -rf "$1/usr/share/man" "$1/usr/share/info" "$1/usr/share/locale" '
    '"$1/usr/share/lintian" "$1/var/log/"*.log "$1/var/cache/debconf/"*-old '
    '"$1/var/lib/dpkg/"*-old'
)

# Merged /usr by symlinks (as debootstrap does) instead of the usrmerge package, which
# would drag full Perl (~50 MB) into every image. Ships with mmdebstrap >= 1.3.
MERGED_USR_HOOKS = "/usr/share/mmdebstrap/hooks/maybe-merged-usr"
Progress = Callable[[str], None]
# mmdebstrap's lines worth showing while building; hooks and checks are noise.
_STEP_LINES = tuple(
    f"I: {step}"
    for step in ("running apt-get update", "downloading", "extracting", "installing", "success")
)


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


def image_ref(lang: Language, settings: Settings) -> str:
    """The user's own image if the entry names one, else ours for the suite."""
    return lang.image or f"{settings.image_prefix}/{lang.id}:{settings.debian_suite}"


def base_hash(lang: Language, suite: str) -> str:
    """Everything mmdebstrap installs; a change means bootstrapping Debian again."""
    return _hash(BUILDER_VERSION, suite, lang.recipe_hash())


def recipe_hash(lang: Language, suite: str, helper_hash: str) -> str:
    """The whole image: the base plus the helper binary."""
    return _hash(base_hash(lang, suite), helper_hash)


def _hash(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def mmdebstrap_argv(
    lang: Language,
    *,
    suite: str,
    sources: list[str],
    helper_tar: Path,
    apt_cache: Path,
    apt_incoming: Path,
) -> list[str]:
    """The mmdebstrap command writing `lang`'s root filesystem as a tar to stdout.

    Cached .debs are hard-linked in from `apt_cache` (copied across file systems) and the
    ones used are linked out to `apt_incoming`, so a package shared by several images (a
    compiler, a JDK) is downloaded once. mmdebstrap's cleanup keeps them out of the image.
    """
    archives = '"$1/var/cache/apt/archives"'
    argv = [
        "mmdebstrap",
        "--variant=essential",
        "--format=tar",
        "--skip=essential/unlink",
        f"--hook-dir={MERGED_USR_HOOKS}",
    ]
    if lang.packages:
        argv.append("--include=" + ",".join(lang.packages))
    argv += [
        f"--setup-hook=mkdir -p {archives}; {_link_debs(str(apt_cache), archives)}",
        f"--customize-hook=mkdir -p {shlex.quote(str(apt_incoming))}; "
        + _link_debs(archives, shlex.quote(str(apt_incoming))),
        f"--customize-hook=tar-in {helper_tar} /",
    ]
    argv += [f'--customize-hook=chroot "$1" sh -c {shlex.quote(cmd)}' for cmd in lang.setup]
    argv += [f"--customize-hook={TRIM_HOOK}", suite, "-", *sources]
    return argv


def _link_debs(src: str, dst: str) -> str:
    """Shell: hard-link (else copy) every .deb of `src` into `dst`; best effort."""
    src = src if src.startswith('"') else shlex.quote(src)
    return (
        f'for f in {src}/*.deb; do [ -e "$f" ] || continue; '
        f'ln -f "$f" {dst}/ 2>/dev/null || cp "$f" {dst}/; done; true'
    )


def helper_tarball(helper_binary: Path) -> bytes:
    """A tar holding the helper at its in-image path, root-owned, mode 0755."""
    data = helper_binary.read_bytes()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for directory in ("opt", "opt/streamworker"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        info = tarfile.TarInfo(HELPER_PATH.lstrip("/"))
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _build_context(dockerfile: str, files: dict[str, tuple[bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, (data, mode) in {"Dockerfile": (dockerfile.encode(), 0o644), **files}.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


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
        helper_tar.write_bytes(helper_tarball(helper_binary))
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
) -> list[BuildOutcome]:
    """Build the images of `lang_ids` (default: all) that are missing or out of date."""
    langs = [get_language(i) for i in lang_ids] if lang_ids else list(load_registry().values())
    plan = await asyncio.to_thread(_prepare, settings, force, progress)
    started = time.monotonic()
    gate = asyncio.Semaphore(BUILD_CONCURRENCY)
    async with _connect(settings) as docker:

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
    async with _connect(settings) as docker:
        for lang in load_registry().values():
            ref = image_ref(lang, settings)
            labels = await _labels(docker, ref)
            want = recipe_hash(lang, settings.debian_suite, helper_hash)
            fresh = labels is not None and (
                lang.image is not None or labels.get(LABEL + "recipe-hash") == want
            )
            version = (labels or {}).get(LABEL + "version", "")
            rows.append(LanguageStatus(lang.id, lang.name, version, ref, labels is not None, fresh))
    return rows


class _connect:
    """The configured Docker endpoint as a context manager; a dead daemon is `DockerUnavailable`."""

    def __init__(self, settings: Settings) -> None:
        self.endpoint = resolve_endpoint(settings.docker)

    async def __aenter__(self) -> Any:
        self.docker = connect(self.endpoint)
        try:
            await self.docker.version()
        except (aiodocker.DockerError, aiohttp.ClientError, OSError) as exc:
            await self.docker.close()
            cause = explain_failure(exc, self.endpoint).cause
            raise DockerUnavailable(f"cannot reach Docker: {cause}") from exc
        return self.docker

    async def __aexit__(self, *exc: object) -> None:
        await self.docker.close()


async def _inspect(docker: Any, ref: str) -> dict[str, Any] | None:
    try:
        image: dict[str, Any] = await docker.images.inspect(ref)
    except aiodocker.DockerError as exc:
        if exc.status == 404:
            return None
        raise
    return image


async def _labels(docker: Any, ref: str) -> dict[str, str] | None:
    image = await _inspect(docker, ref)
    return None if image is None else dict(image["Config"].get("Labels") or {})


async def _build_one(docker: Any, lang: Language, plan: _Plan) -> BuildOutcome:
    ref = image_ref(lang, plan.settings)
    started = time.monotonic()

    def outcome(action: str, image: dict[str, Any] | None = None, error: str = "") -> BuildOutcome:
        labels = (image or {}).get("Config", {}).get("Labels") or {}
        elapsed_s = round(time.monotonic() - started, 1)
        size = int((image or {}).get("Size", 0))
        done = BuildOutcome(
            lang.id, ref, action, elapsed_s, size, labels.get(LABEL + "version", ""), error
        )
        detail = error or f"{size / 1e6:.0f} MB, {done.version}"
        plan.progress(f"[{lang.id}] {action} in {elapsed_s:.1f} s: {detail}")
        return done

    existing = await _inspect(docker, ref)
    if lang.image:
        return (
            outcome("external", existing)
            if existing
            else outcome("failed", error=f"{ref} is not present")
        )
    labels = (existing or {}).get("Config", {}).get("Labels") or {}
    suite = plan.settings.debian_suite
    want_base = base_hash(lang, suite)
    want = recipe_hash(lang, suite, plan.helper_hash)
    if existing and not plan.force and labels.get(LABEL + "recipe-hash") == want:
        return outcome("cached", existing)
    base_id, fresh_base = labels.get(LABEL + "base-image", ""), ""
    try:
        if (
            existing
            and not plan.force
            and labels.get(LABEL + "base-hash") == want_base
            and await _inspect(docker, base_id)
        ):
            plan.progress(f"[{lang.id}] helper changed: refreshing {ref}")
            action, version, copy_helper = "refreshed", labels.get(LABEL + "version", ""), True
        else:
            plan.progress(
                f"[{lang.id}] building {ref} from {', '.join(lang.packages) or 'essential'}"
            )
            base_id = fresh_base = await _bootstrap(docker, lang, plan)
            action, copy_helper = "built", False
            version = await _version(docker, base_id, lang, plan.settings)
        new_labels = {
            LABEL + "language": lang.id,
            LABEL + "recipe-hash": want,
            LABEL + "base-hash": want_base,
            LABEL + "base-image": base_id,
            LABEL + "helper-hash": plan.helper_hash,
            LABEL + "packages": ",".join(lang.packages),
            LABEL + "suite": suite,
            LABEL + "mirror": " ".join(dict.fromkeys(s.split()[1] for s in plan.sources)),
            LABEL + "build-date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            LABEL + "builder": BUILDER_VERSION,
            LABEL + "version": version,
        }
        await _finish(docker, ref, base_id, new_labels, plan.helper if copy_helper else None)
    except (ImageBuildError, aiodocker.DockerError, aiohttp.ClientError) as exc:
        if fresh_base:
            await _drop_quietly(docker, fresh_base)
        return outcome("failed", error=str(exc))
    if existing:
        await _drop_quietly(docker, existing["Id"])
    return outcome(action, await _inspect(docker, ref))


async def _bootstrap(docker: Any, lang: Language, plan: _Plan) -> str:
    """Run mmdebstrap and stream its tar into `POST /images/create`; returns the image id."""
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
        image_id = await _import(docker, _chunks(proc.stdout))
    except asyncio.CancelledError:
        proc.terminate()  # mmdebstrap cleans up its mounts on SIGTERM
        raise
    except (aiodocker.DockerError, aiohttp.ClientError, ImageBuildError) as exc:
        import_error = exc
        # Let mmdebstrap finish on its own: killing it would leave its mounts behind.
        while await proc.stdout.read(1 << 20):
            pass
    finally:
        returncode = await proc.wait()
        await log_task
        await asyncio.to_thread(_merge_cache, incoming, plan.apt_cache)
    if returncode != 0:
        if image_id:
            await _drop_quietly(docker, image_id)
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
            if line.startswith(("W:", "E:")) or line.startswith(_STEP_LINES):
                progress(f"[{lang_id}] {line}")


async def _import(docker: Any, body: AsyncIterator[bytes]) -> str:
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


def _merge_cache(incoming: Path, cache: Path) -> None:
    """Move synced-out .debs into the shared cache; a rename is atomic for readers."""
    if incoming.is_dir():
        for deb in incoming.glob("*.deb"):
            deb.replace(cache / deb.name)
        shutil.rmtree(incoming, ignore_errors=True)


async def _version(docker: Any, image_id: str, lang: Language, settings: Settings) -> str:
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
    # The first line that is not a JVM's or a launcher's warning.
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    first = next((line for line in lines if "warning" not in line.lower()), "")
    return first[:200]


async def _finish(
    docker: Any, ref: str, base_id: str, labels: dict[str, str], helper: bytes | None
) -> None:
    """Tag `ref` as `base_id` plus labels (and a fresh helper): a metadata-only build."""
    dockerfile = f"FROM {base_id}\n"
    files: dict[str, tuple[bytes, int]] = {}
    if helper is not None:
        dockerfile += f"COPY sw-run {HELPER_PATH}\n"
        files["sw-run"] = (helper, 0o755)
    # One LABEL instruction: the API's `labels` parameter makes one image per label.
    pairs = " ".join(
        f"{json.dumps(k)}={json.dumps(v, ensure_ascii=False)}" for k, v in labels.items()
    )
    dockerfile += f"LABEL {pairs}\n"
    context = _build_context(dockerfile, files)
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


async def _drop_quietly(docker: Any, image_id: str) -> None:
    """Remove a superseded image; one still used by a container stays (and that is fine)."""
    with contextlib.suppress(aiodocker.DockerError):
        await docker.images.delete(image_id)
