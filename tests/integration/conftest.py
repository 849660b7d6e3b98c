"""Fixtures for sandbox-level integration tests (real Docker, no Kafka)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from streamworker.sandbox.connection import connect, resolve_endpoint
from streamworker.settings import load_settings
from tests.conftest import image_env
from tests.integration.sandbox_util import SandboxRunner, WarmOnlyPools


@pytest_asyncio.fixture(scope="session", params=["cold", "warm"])
async def sandbox_runner(
    request: pytest.FixtureRequest, docker_available: None
) -> AsyncIterator[SandboxRunner]:
    """Every sandbox test runs twice: in a fresh container (exec per step) and in a
    pooled one (attach stream to `sw-run serve`); the warm runner refuses pool misses."""
    settings = load_settings(
        {
            "STREAMWORKER_WORKER_ID": "sandbox-tests",
            "STREAMWORKER_POOL_MIN_SIZE": "2",
            "STREAMWORKER_POOL_MAX_SIZE": "2",
            **image_env(),
        }
    )
    docker = connect(resolve_endpoint(settings.docker))
    pools = WarmOnlyPools(docker, settings) if request.param == "warm" else None
    try:
        yield SandboxRunner(docker, settings, pools)
    finally:
        if pools is not None:
            await pools.stop()
        await docker.close()
