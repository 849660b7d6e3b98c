"""Fixtures for sandbox-level integration tests (real Docker, no Kafka)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from streamworker.sandbox.connection import connect, resolve_endpoint
from streamworker.settings import load_settings
from tests.integration.sandbox_util import SandboxRunner


@pytest_asyncio.fixture(scope="session")
async def sandbox_runner(docker_available: None) -> AsyncIterator[SandboxRunner]:
    settings = load_settings({"STREAMWORKER_WORKER_ID": "sandbox-tests"})
    docker = connect(resolve_endpoint(settings.docker))
    try:
        yield SandboxRunner(docker, settings)
    finally:
        await docker.close()
