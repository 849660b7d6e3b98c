"""Judge submissions directly through the real Docker sandbox (no Kafka) for sandbox tests."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aiodocker

from streamworker.contract import decode_submission
from streamworker.judge import Verdict, judge
from streamworker.languages.registry import get_language
from streamworker.sandbox.executor import DockerSandbox
from streamworker.sandbox.spec import LABEL_PREFIX
from streamworker.settings import Settings

BENIGN = "import sys\nprint(sum(int(x) for x in sys.stdin.read().split()))\n"


class SandboxRunner:
    """Runs events through `judge` with a shared Docker client."""

    def __init__(self, docker: aiodocker.Docker, settings: Settings) -> None:
        self.docker = docker
        self.settings = settings
        self.sandbox = DockerSandbox(docker, settings)

    async def run(self, language: str = "python", **fields: Any) -> tuple[str, Verdict]:
        sid = fields.pop("submission_id", f"sbx-{uuid.uuid4().hex[:12]}")
        event = {"submission_id": sid, "language": language, **fields}
        submission = decode_submission(json.dumps(event).encode())
        verdict = await judge(submission, get_language(language), self.settings, self.sandbox)
        return sid, verdict

    async def leftovers(self, sid: str) -> list[str]:
        """Containers still labelled with this submission id."""
        found = await self.docker.containers.list(
            all=True, filters=json.dumps({"label": [f"{LABEL_PREFIX}.submission-id={sid}"]})
        )
        return [c.id for c in found]

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
