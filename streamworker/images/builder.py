"""Build and list the runtime images: the steps, from the registry to tagged images.

A shared Debian base is bootstrapped once by mmdebstrap straight into Docker's import (no
registry, only Debian's mirror). Each language is a container of that base that installs
its packages from a shared deb cache and is committed; `version_cmd` runs once in it under
the sandbox's flags (a smoke test), and a small build adds the helper and the labels.
Bootstrapping Debian once instead of once per language is what keeps a fresh machine's
46 images within minutes. What goes into an image is `streamworker.images.recipe`; the
Docker requests are in `docker_io`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streamworker.images.apt_cache import linked_archives, merge_cache
from streamworker.images.debian_base import BasePlan, Progress, SharedBase, step_lines
from streamworker.images.docker_io import (
    IMAGE_FAILURES,
    connected,
    drop_quietly,
    finish,
    inspect,
    run_step,
    run_version,
)
from streamworker.images.mirror import debian_source_lines
from streamworker.images.recipe import (
    LABEL,
    base_hash,
    image_labels,
    install_script,
    is_up_to_date,
    labels_of,
    recipe_hash,
)
from streamworker.languages.registry import Language, get_language, image_ref, load_registry
from streamworker.sandbox.connection import DockerClient
from streamworker.sandbox.helper import build_helper, helper_source_hash
from streamworker.settings import Settings

BUILD_CONCURRENCY = 2
"""Images built at once by default (`--jobs`): two installs saturate 2 cores; more only
adds contention there, a bigger machine may pass more."""


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
    """Inputs shared by every language in one `build_images` call: the helper, and what
    the shared base needs too (mirror, caches, force, progress), held once in `base`."""

    settings: Settings
    helper: bytes
    helper_hash: str
    base: BasePlan


def _prepare(settings: Settings, force: bool, progress: Progress) -> _Plan:
    """Compile the helper, pick the mirror, make the cache dirs: the blocking part, once."""
    data_dir = Path(settings.data_dir).resolve()
    helper_binary = build_helper(data_dir / "helper")
    apt_cache, apt_lists = data_dir / "apt-cache", data_dir / "apt-lists"
    for directory in (apt_cache, apt_lists):
        directory.mkdir(parents=True, exist_ok=True)
    return _Plan(
        settings=settings,
        helper=helper_binary.read_bytes(),
        helper_hash=helper_source_hash(),
        base=BasePlan(
            image_prefix=settings.image_prefix,
            suite=settings.debian_suite,
            sources=debian_source_lines(settings.debian_suite, override=settings.debian_mirror),
            apt_cache=apt_cache,
            apt_lists=apt_lists,
            force=force,
            progress=progress,
        ),
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
        base = SharedBase(docker, plan.base)

        async def one(lang: Language) -> BuildOutcome:
            async with gate:
                return await _build_one(docker, lang, plan, base)

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


async def _build_one(
    docker: DockerClient, lang: Language, plan: _Plan, base: SharedBase
) -> BuildOutcome:
    ref = image_ref(lang, plan.settings)
    started = time.monotonic()

    def outcome(action: str, image: dict[str, Any] | None = None, error: str = "") -> BuildOutcome:
        elapsed_s = round(time.monotonic() - started, 1)
        size = int((image or {}).get("Size", 0))
        version = labels_of(image).get(LABEL + "version", "")
        done = BuildOutcome(lang.id, ref, action, elapsed_s, size, version, error)
        detail = error or f"{size / 1e6:.0f} MB, {done.version}"
        plan.base.progress(f"[{lang.id}] {action} in {elapsed_s:.1f} s: {detail}")
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
    if existing and not plan.base.force and labels.get(LABEL + "recipe-hash") == want:
        return outcome("cached", existing)
    layer_id, fresh_layer = labels.get(LABEL + "base-image", ""), ""
    try:
        if (
            existing
            and not plan.base.force
            and labels.get(LABEL + "base-hash") == base_hash(lang, suite)
            and await inspect(docker, layer_id)
        ):
            plan.base.progress(f"[{lang.id}] helper changed: refreshing {ref}")
            action, version = "refreshed", labels.get(LABEL + "version", "")
        else:
            base_id = await base.image()
            plan.base.progress(
                f"[{lang.id}] building {ref} from {', '.join(lang.packages) or 'base'}"
            )
            layer_id = fresh_layer = await _install_layer(docker, base_id, lang, plan)
            action = "built"
            version = await run_version(docker, layer_id, lang, plan.settings)
        new_labels = image_labels(
            lang,
            suite=suite,
            sources=plan.base.sources,
            base_id=layer_id,
            helper_hash=plan.helper_hash,
            version=version,
            built_at=datetime.now(UTC),
        )
        await finish(docker, ref, layer_id, new_labels, plan.helper)
    except IMAGE_FAILURES as exc:
        if fresh_layer:
            await drop_quietly(docker, fresh_layer)
        return outcome("failed", error=str(exc))
    if existing:
        await drop_quietly(docker, existing["Id"])
    return outcome(action, await inspect(docker, ref))


async def _install_layer(docker: DockerClient, base_id: str, lang: Language, plan: _Plan) -> str:
    """A container of the base installs the language and is committed: its layer's id.

    The container sees a private archive directory holding hard links to every cached
    .deb, so parallel builds never share apt's lock, and what it downloaded is moved into
    the cache afterwards: a JDK or a GCC that several languages use is fetched once.
    """
    archives = await asyncio.to_thread(linked_archives, plan.base.apt_cache, lang.id)
    try:
        return await run_step(
            docker,
            base_id,
            install_script(lang),
            binds=[
                f"{archives}:/var/cache/apt/archives",
                f"{plan.base.apt_lists}:/var/lib/apt/lists",
            ],
            on_line=step_lines(lang.id, plan.base.progress),
            commit=True,
        )
    finally:
        await asyncio.to_thread(merge_cache, archives, plan.base.apt_cache)
