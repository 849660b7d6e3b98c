"""The Docker-backed `Sandbox`: one hardened container per submission attempt.

A pooled container when its pool has one, else a cold one made on the spot; both are
served by `sw-run serve` as PID 1 and driven the same way (`container.AttachedSession`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import aiodocker

from streamworker.contract import iso, now_utc
from streamworker.errors import SandboxError
from streamworker.languages.registry import Language, image_ref
from streamworker.sandbox.budget import MemoryBudget
from streamworker.sandbox.calls import RENAME_TIMEOUT_S, docker_call
from streamworker.sandbox.container import AttachedSession, open_session, remove_by_name
from streamworker.sandbox.policy import SessionRequest
from streamworker.sandbox.pool import PoolManager
from streamworker.sandbox.pooled import PooledContainer
from streamworker.sandbox.reaper import remove_submission_containers
from streamworker.sandbox.spec import (
    ContainerPolicy,
    attached_config,
    container_config,
    container_labels,
    container_name,
    sandbox_env,
)
from streamworker.settings import Settings

log = logging.getLogger(__name__)
DEADLINE_SLACK_S = 30
"""How long past its time budget a container may live before the reaper removes it."""


RENAME_AFTER_S = 0.25
"""A taken container gets the submission's name only if its use lasts this long."""


@asynccontextmanager
async def warm_session(
    pools: PoolManager,
    pooled: PooledContainer,
    policy: ContainerPolicy,
    name: str,
    rename_after_s: float = RENAME_AFTER_S,
) -> AsyncIterator[AttachedSession]:
    """Use a pooled container for one submission: fit its limits, name it after the
    submission if the use lasts `rename_after_s`, and give it back to `pools` afterwards
    (recycled only when the use ended cleanly).

    Why the name waits: renaming a container there and back cost the worker ~3.5 ms of
    CPU per submission, a quarter of all it spent on a python hello (docs/benchmarks.md),
    for a name that matters only while something may look for it: a retry removing the
    run of a worker that died, the reaper telling taken containers from idle ones, an
    operator. A use shorter than `rename_after_s` is over before any of them looks; a
    longer one is renamed as before, and renamed back by `recycle`.
    """
    session = pooled.session()
    renaming = asyncio.create_task(_rename_later(pools.docker, pooled, name, rename_after_s))
    clean = False
    try:
        if (policy.memory_mb, policy.processes) != (
            pooled.policy.memory_mb,
            pooled.policy.processes,
        ):
            await session.restrict(policy.memory_mb, policy.processes)
        yield session
        clean = True
    finally:
        if pooled.renamed:  # under way or done: let it finish, `recycle` names it back
            await asyncio.shield(renaming)
        else:
            # Still asleep: cancelled at that sleep, it never renames (nothing to await,
            # so a second cancellation here cannot skip the release below).
            renaming.cancel()
        pools.release(pooled, session if clean else None)


async def _rename_later(
    docker: aiodocker.Docker, pooled: PooledContainer, name: str, after_s: float
) -> None:
    await asyncio.sleep(after_s)
    pooled.renamed = True  # before the request: from here on the name may change
    await _rename(docker, pooled, name)


async def _rename(docker: aiodocker.Docker, pooled: PooledContainer, name: str) -> None:
    """Give a taken container the submission attempt's deterministic name (off the hot
    path; never raises: unnamed, it is still found by its labels and deadline)."""
    for _ in range(2):
        try:
            await docker_call(pooled.container.rename(name), RENAME_TIMEOUT_S, "rename")
            return
        except aiodocker.DockerError as exc:
            if exc.status != 409:
                log.warning("renaming a pooled container to %s failed: %s", name, exc.message)
                return
        except SandboxError as exc:
            log.warning("renaming a pooled container to %s failed: %s", name, exc.message)
            return
        try:
            await remove_by_name(docker, name)  # a leftover of a failed try holds the name
        except (aiodocker.DockerError, SandboxError) as exc:
            log.warning("removing the leftover %s failed: %s", name, exc)
            return


class DockerSandbox:
    """Implements `judge.Sandbox` over an aiodocker client owned by the caller."""

    def __init__(
        self,
        docker: aiodocker.Docker,
        settings: Settings,
        host_config_extra: Mapping[str, Any] | None = None,
        pools: PoolManager | None = None,
    ) -> None:
        self.docker = docker
        self.settings = settings
        self.host_config_extra = dict(host_config_extra or {})
        self.pools = pools if not host_config_extra else None
        self.budget = MemoryBudget(settings.memory_budget_mb)

    def image_for(self, language: Language) -> str:
        return image_ref(language, self.settings)

    @asynccontextmanager
    async def session(self, request: SessionRequest) -> AsyncIterator[AttachedSession]:
        async with (
            self.budget.reserve(request.policy.memory_mb),
            self._session(request) as session,
        ):
            yield session

    @asynccontextmanager
    async def _session(self, request: SessionRequest) -> AsyncIterator[AttachedSession]:
        """A warm container when the pool has one that fits, else a cold one."""
        submission_id, attempt = request.submission_id, request.attempt
        language, policy = request.language, request.policy
        name = container_name(submission_id, attempt)
        if attempt > 1:
            # An earlier attempt may have died with its container still there.
            await remove_submission_containers(self.docker, submission_id)
            for earlier in range(1, attempt):
                await remove_by_name(self.docker, container_name(submission_id, earlier))
        pooled = await self.pools.acquire(language, policy) if self.pools is not None else None
        if pooled is not None and self.pools is not None:
            async with warm_session(self.pools, pooled, policy, name) as session:
                yield session
            return
        created = now_utc()
        deadline = created + timedelta(seconds=request.budget_s + DEADLINE_SLACK_S)
        labels = container_labels(
            submission_id,
            self.settings.worker_id,
            iso(created) or "",
            iso(deadline) or "",
            language.id,
        )
        config = attached_config(
            container_config(self.image_for(language), policy, labels, sandbox_env(language.env))
        )
        config["HostConfig"].update(self.host_config_extra)
        async with open_session(self.docker, config, name) as session:
            yield session
