"""Judge submissions directly through the real Docker sandbox (no Kafka) for sandbox tests."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aiodocker

from streamworker.contract import decode_submission
from streamworker.judge import Verdict, judge
from streamworker.languages.registry import Language, get_language
from streamworker.sandbox.executor import DockerSandbox
from streamworker.sandbox.pool import PoolManager, fits
from streamworker.sandbox.pooled import PooledContainer, wait_removals
from streamworker.sandbox.spec import LABEL_PREFIX, ContainerPolicy, container_name_stem
from streamworker.settings import Settings

BENIGN = "import sys\nprint(sum(int(x) for x in sys.stdin.read().split()))\n"


class WarmOnlyPools(PoolManager):
    """Pools for tests of the warm path: a miss is a test failure, not a silent cold run."""

    async def acquire(self, language: Language, policy: ContainerPolicy) -> PooledContainer | None:
        pooled = await super().acquire(language, policy)
        assert pooled is not None or not fits(policy, self.pools[language.id].policy), (
            f"warm pool miss for {language.id}: the test would have run cold"
        )
        return pooled

    async def fill(self, language: str) -> None:
        """Until `language`'s pool (and every other) holds its target."""
        await self.start([language])
        await self.wait_ready(timeout_s=120)


class SandboxRunner:
    """Runs events through `judge` with a shared Docker client, cold or (with `pools`)
    warm."""

    def __init__(
        self, docker: aiodocker.Docker, settings: Settings, pools: WarmOnlyPools | None = None
    ) -> None:
        self.docker = docker
        self.settings = settings
        self.pools = pools
        self.sandbox = DockerSandbox(docker, settings, pools=pools)

    @property
    def warm(self) -> bool:
        return self.pools is not None

    async def run(self, language: str = "python", **fields: Any) -> tuple[str, Verdict]:
        sid = fields.pop("submission_id", f"sbx-{uuid.uuid4().hex[:12]}")
        event = {"submission_id": sid, "language": language, **fields}
        submission = decode_submission(json.dumps(event).encode())
        if self.pools is not None:
            await self.pools.fill(language)
        verdict = await judge(submission, get_language(language), self.settings, self.sandbox)
        return sid, verdict

    async def leftovers(self, sid: str) -> list[str]:
        """Containers of this submission: cold ones by label, warm ones by their name."""
        if self.pools is not None:
            await wait_removals()  # used warm containers are removed in the background
        by_label = await self.docker.containers.list(
            all=True, filters=json.dumps({"label": [f"{LABEL_PREFIX}.submission-id={sid}"]})
        )
        by_name = await self.docker.containers.list(
            all=True, filters=json.dumps({"name": [f"^/{container_name_stem(sid)}-a"]})
        )
        return sorted({c.id for c in [*by_label, *by_name]})

    async def with_benign(self, **attack: Any) -> Verdict:
        """Run an attack and a benign submission at once; check the benign one and cleanup."""
        (sid, verdict), (benign_sid, benign) = await asyncio.gather(
            self.run(**attack), self.run(source=BENIGN, stdin="1 2 3\n", expected_output="6\n")
        )
        assert benign.status.value == "accepted", benign
        assert await self.leftovers(sid) == []
        assert await self.leftovers(benign_sid) == []
        await self.docker.version()  # the daemon still answers
        return verdict
