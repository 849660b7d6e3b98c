"""A worker's warm pools on the real Docker daemon, for the pool tests."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from streamworker.contract import decode_submission
from streamworker.judge import Verdict, judge
from streamworker.languages.registry import get_language
from streamworker.sandbox.connection import connect, resolve_endpoint
from streamworker.sandbox.executor import DockerSandbox
from streamworker.sandbox.pool import PoolManager
from streamworker.sandbox.spec import LABEL_PREFIX
from streamworker.settings import load_settings
from tests.conftest import image_env


class Harness:
    """A `DockerSandbox` with pools (min 2, max 4 unless `env` says otherwise) of its
    own worker id, so its containers can be told from everyone else's."""

    def __init__(self, worker_id: str, **env: str) -> None:
        self.settings = load_settings(
            {
                "STREAMWORKER_WORKER_ID": worker_id,
                "STREAMWORKER_POOL_MIN_SIZE": "2",
                "STREAMWORKER_POOL_MAX_SIZE": "4",
                **image_env(),
                **env,
            }
        )
        self.docker = connect(resolve_endpoint(self.settings.docker))
        self.pools = PoolManager(self.docker, self.settings)
        self.sandbox = DockerSandbox(self.docker, self.settings, pools=self.pools)

    async def run(
        self, source: str = "print('hi')", language: str = "python", **fields: object
    ) -> tuple[str, Verdict]:
        sid = f"pool-{uuid.uuid4().hex[:10]}"
        event = {
            "submission_id": sid,
            "language": language,
            "source": source,
            "expected_output": "hi\n",
            **fields,
        }
        sub = decode_submission(json.dumps(event).encode())
        return sid, await judge(sub, get_language(language), self.settings, self.sandbox)

    async def containers(self) -> list[dict[str, object]]:
        filters = {"label": [f"{LABEL_PREFIX}.worker-id={self.settings.worker_id}"]}
        found = await self.docker.containers.list(all=True, filters=json.dumps(filters))
        return [c._container for c in found]


@asynccontextmanager
async def pool_harness(language: str = "python", **env: str) -> AsyncIterator[Harness]:
    """A started harness with `language`'s pool filled; everything removed afterwards."""
    h = Harness(f"pooltest-{uuid.uuid4().hex[:8]}", **env)
    try:
        await h.pools.start([language])
        await h.pools.wait_ready(timeout_s=120)
        yield h
    finally:
        await h.pools.stop()
        for info in await h.containers():
            await h.docker.containers.container(str(info["Id"])).delete(force=True)
        await h.docker.close()
