"""The Docker-backed `Sandbox`: one hardened container per submission attempt."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import aiodocker

from streamworker.contract import iso, now_utc
from streamworker.languages.registry import Language
from streamworker.sandbox.container import Session, open_session
from streamworker.sandbox.reaper import remove_submission_containers
from streamworker.sandbox.spec import (
    ContainerPolicy,
    container_config,
    container_labels,
    container_name,
    sandbox_env,
)
from streamworker.settings import Settings

DEADLINE_SLACK_S = 30
"""How long past its time budget a container may live before the reaper removes it."""


def image_ref(language: Language, settings: Settings) -> str:
    """The image a language runs in: its override, else the one we build."""
    return language.image or f"{settings.image_prefix}/{language.id}:{settings.debian_suite}"


class DockerSandbox:
    """Implements `judge.Sandbox` over an aiodocker client owned by the caller."""

    def __init__(
        self,
        docker: aiodocker.Docker,
        settings: Settings,
        host_config_extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.docker = docker
        self.settings = settings
        self.host_config_extra = dict(host_config_extra or {})

    def image_for(self, language: Language) -> str:
        return image_ref(language, self.settings)

    @asynccontextmanager
    async def session(
        self,
        *,
        submission_id: str,
        attempt: int,
        language: Language,
        policy: ContainerPolicy,
        budget_s: float,
    ) -> AsyncIterator[Session]:
        if attempt > 1:
            # An earlier attempt may have died with its container still there.
            await remove_submission_containers(self.docker, submission_id)
        created = now_utc()
        deadline = created + timedelta(seconds=budget_s + DEADLINE_SLACK_S)
        labels = container_labels(
            submission_id,
            self.settings.worker_id,
            iso(created) or "",
            iso(deadline) or "",
            language.id,
        )
        config = container_config(
            self.image_for(language), policy, labels, sandbox_env(language.env)
        )
        config["HostConfig"].update(self.host_config_extra)
        async with open_session(
            self.docker, config, container_name(submission_id, attempt)
        ) as session:
            yield session
