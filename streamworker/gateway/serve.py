"""Run the gateway: uvicorn on `STREAMWORKER_GATEWAY_HOST:PORT` (127.0.0.1:2358)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import uvicorn

from streamworker.gateway.app import create_app
from streamworker.settings import Settings


def run_gateway(settings: Settings, env: Mapping[str, str], log_level: str = "warning") -> None:
    """Serve until SIGINT/SIGTERM; uvicorn drains open requests on the way out."""
    config = uvicorn.Config(
        create_app(settings, env),
        host=settings.gateway.host,
        port=settings.gateway.port,
        log_level=log_level,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=int(settings.gateway.max_wait_s) + 5,
    )
    asyncio.run(uvicorn.Server(config).serve())
