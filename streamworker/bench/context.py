"""The resources every in-process scenario shares: settings, the Docker client, policies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import aiodocker

from streamworker.bench.programs import Program
from streamworker.contract import iso, now_utc
from streamworker.languages.registry import Language, image_ref
from streamworker.sandbox.spec import SANDBOX_PATH, ContainerPolicy, container_labels
from streamworker.settings import Settings

RUN_TIMEOUT_S = 120.0
"""No benchmark run legitimately takes this long; past it the sample is a failure."""


@dataclass
class BenchContext:
    """Owned by the runner; scenarios only borrow it."""

    settings: Settings
    docker: aiodocker.Docker
    languages: dict[str, Language]
    policies: dict[str, ContainerPolicy]
    """The policy `judge()` asks for, by program key (see `policy.judged_policy`)."""

    def language(self, program: Program) -> Language:
        return self.languages[program.language]

    def image(self, program: Program) -> str:
        return image_ref(self.language(program), self.settings)

    def labels(
        self, run_id: str, program: Program, lifetime_s: float = RUN_TIMEOUT_S + 30
    ) -> dict[str, str]:
        """The executor's labels, so the reaper cleans up after a crashed benchmark too.

        Any worker's reaper removes the container after `lifetime_s`: long-lived bench
        containers must say so.
        """
        created = now_utc()
        deadline = created + timedelta(seconds=lifetime_s)
        return container_labels(
            run_id,
            f"bench-{self.settings.worker_id}",
            iso(created) or "",
            iso(deadline) or "",
            program.language,
        )

    def docker_cli_env(self) -> dict[str, str]:
        """The `docker` CLI's environment, built from our settings (not inherited)."""
        docker = self.settings.docker
        env = {"PATH": SANDBOX_PATH, "DOCKER_HOST": docker.host}
        if docker.tls_verify:
            env["DOCKER_TLS_VERIFY"] = "1"
        if docker.cert_path:
            env["DOCKER_CERT_PATH"] = docker.cert_path
        return env
