"""Warm pools: per language, pre-created and started sandbox containers.

A container costs ~200 ms to create and start; a pooled one is taken in microseconds,
given the run's memory and pids limits (Docker can change those on a live container),
renamed to the submission's deterministic name if its use lasts (`executor.warm_session`)
and used by one submission; then its helper wipes it and it goes back to the pool
(`recycle`), up to `pool_max_uses` times, or it is destroyed. Everything else about it
is fixed at create time and identical to a cold container: the same payload
(`spec.attached_config` of `spec.container_config`), made the same way
(`container.start_served`) and driven the same way (`container.AttachedSession`), so a
run gets the same verdict warm or cold. One `LanguagePool` per language (in
`language_pool`) keeps the containers.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable

import aiodocker

from streamworker.errors import SandboxError
from streamworker.languages.registry import Language, get_language, image_ref
from streamworker.sandbox.calls import LIST_TIMEOUT_S, docker_call
from streamworker.sandbox.container import AttachedSession, remove_container
from streamworker.sandbox.language_pool import LanguagePool
from streamworker.sandbox.pool_sizing import pool_floor
from streamworker.sandbox.pooled import PooledContainer, in_background, remove_later, wait_removals
from streamworker.sandbox.reaper import POOL_NAME_PREFIX, container_name_of
from streamworker.sandbox.recycle import recycle
from streamworker.sandbox.spec import LABEL_PREFIX, ContainerPolicy
from streamworker.settings import Settings

log = logging.getLogger(__name__)


def fits(policy: ContainerPolicy, pooled: ContainerPolicy) -> bool:
    """Create-time-only settings must match; memory and pids are adjusted on take."""
    return (policy.workspace_mb, policy.tmp_mb, policy.cpus, policy.file_size_kb) == (
        pooled.workspace_mb,
        pooled.tmp_mb,
        pooled.cpus,
        pooled.file_size_kb,
    )


class PoolManager:
    """All warm pools of a worker: pre-warmed languages at start, others on demand."""

    def __init__(
        self,
        docker: aiodocker.Docker,
        settings: Settings,
        image_for: Callable[[Language], str] | None = None,
    ) -> None:
        self.docker = docker
        self.settings = settings
        self._image_for = image_for or (lambda lang: image_ref(lang, settings))
        self.pools: dict[str, LanguagePool] = {}

    def _pool(self, language: Language, min_size: int) -> LanguagePool:
        pool = self.pools.get(language.id)
        if pool is None:
            pool = LanguagePool(
                self.docker,
                self.settings,
                language,
                self._image_for(language),
                min_size,
                self.settings.pool_max_size,
            )
            self.pools[language.id] = pool
            pool.start()
        return pool

    async def start(self, languages: Iterable[str] | None = None) -> None:
        """Pre-warm `languages` (default: the configured ones) to their minimum size."""
        floor = pool_floor(self.settings)
        for lang_id in languages if languages is not None else self.settings.pool_languages:
            self._pool(get_language(lang_id), floor)

    async def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Until every pre-warmed pool holds its target (for benchmarks and tests)."""
        async with asyncio.timeout(timeout_s):
            while any(p.size < p.target for p in self.pools.values()):  # noqa: ASYNC110
                await asyncio.sleep(0.05)  # polling is fine here: a one-off wait

    async def acquire(self, language: Language, policy: ContainerPolicy) -> PooledContainer | None:
        """A warm container for a run with `policy`, or None: run cold."""
        if self.settings.pool_max_size == 0:
            return None
        pool = self._pool(language, 0)
        if not fits(policy, pool.policy):
            return None
        return await pool.acquire(self.settings.pool_wait_s)

    def release(self, pooled: PooledContainer, session: AttachedSession | None) -> None:
        """The end of a taken container's use: recycled in the background when `session`
        (None: the use failed) is still intact and its pool will take it back, else
        removed."""
        pool = self.pools.get(pooled.language_id)
        if pool is not None and pooled.lent and session is not None and session.intact:
            pool.recycling_started(pooled)
            in_background(recycle(pool, pooled, session))
            return
        if pool is not None:
            pool.give_up(pooled)
        remove_later(pooled)

    def discard_all(self) -> None:
        for pool in self.pools.values():
            pool.discard_all()

    async def stop(self) -> None:
        await asyncio.gather(*(p.drain() for p in self.pools.values()))
        await wait_removals()
        await self.sweep()

    async def sweep(self) -> int:
        """Remove this worker's never-taken pool containers that drain did not know of.

        A create cancelled mid-request can leave a container the daemon made but whose id
        never came back; a removal can fail under load. Runs have ended by now (the worker
        stops its pools last); one still going past its grace period carries its
        submission's name (any use that long was renamed) and is left to it.
        """
        filters = {
            "label": [
                f"{LABEL_PREFIX}.worker-id={self.settings.worker_id}",
                f"{LABEL_PREFIX}.pool",
            ]
        }
        try:
            found = await docker_call(
                self.docker.containers.list(all=True, filters=json.dumps(filters)),
                LIST_TIMEOUT_S,
                "list",
            )
        except (aiodocker.DockerError, SandboxError) as exc:
            log.warning("listing pool containers failed: %s", exc)
            return 0
        left = [c for c in found if container_name_of(c._container).startswith(POOL_NAME_PREFIX)]
        await asyncio.gather(*(remove_container(c) for c in left))
        return len(left)
