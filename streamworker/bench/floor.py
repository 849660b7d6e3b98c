"""Scenario D, the warm floor: one `exec` into an already running hardened container.

Any single-use warm design still has to start the program in its container through the
Docker API at least once per submission; this measures that alone (exec create, start,
stream the output), without a pool, the helper, renames or limit updates. It is the
number the warm-executor target has to be weighed against.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import uuid

import aiodocker

from streamworker.bench.baseline_spec import SOURCE_ENV, shell_script
from streamworker.bench.context import RUN_TIMEOUT_S, BenchContext
from streamworker.bench.programs import Program
from streamworker.bench.scenario import EXEC_FLOOR, RunFailed, check_output
from streamworker.sandbox.spec import SANDBOX_UID, WORKDIR, container_config, sandbox_env

FLOOR_LIFETIME_S = 6 * 3600.0
"""These containers live for the whole in-process part; a reaper must not take them."""


class ExecFloor:
    """One started container per program (same payload as the executor's), reused."""

    name = EXEC_FLOOR

    def __init__(self, ctx: BenchContext) -> None:
        self.ctx = ctx
        self._containers: dict[str, aiodocker.containers.DockerContainer] = {}

    async def start(self, programs: list[Program]) -> None:
        for program in programs:
            config = container_config(
                self.ctx.image(program),
                self.ctx.policies[program.key],
                self.ctx.labels(
                    f"bench-floor-{uuid.uuid4().hex[:10]}", program, lifetime_s=FLOOR_LIFETIME_S
                ),
                sandbox_env(self.ctx.language(program).env),
            )
            container = await self.ctx.docker.containers.create(config)
            self._containers[program.key] = container
            await container.start()

    async def run_once(self, program: Program, run_id: str) -> None:
        container = self._containers[program.key]
        language = self.ctx.language(program)
        # A fresh directory per run: earlier runs' files must not be reused.
        script = f"mkdir {shlex.quote(run_id)} && cd {shlex.quote(run_id)} && " + shell_script(
            language, self.ctx.policies[program.key].memory_mb
        )
        env = sandbox_env(language.env)
        env[SOURCE_ENV] = program.source
        execution = await container.exec(
            ["sh", "-c", script],
            stdout=True,
            stderr=True,
            user=f"{SANDBOX_UID}:{SANDBOX_UID}",
            workdir=WORKDIR,
            environment=env,
        )
        out = bytearray()
        try:
            async with asyncio.timeout(RUN_TIMEOUT_S), execution.start(detach=False) as stream:
                while (message := await stream.read_out()) is not None:
                    if message.stream == 1:
                        out.extend(message.data)
        except (aiodocker.DockerError, TimeoutError) as exc:
            raise RunFailed(f"{self.name}: {exc}") from exc
        check_output(program, out.decode(errors="replace"), self.name)

    async def settle(self) -> None:
        return None

    async def stop(self) -> None:
        for container in self._containers.values():
            with contextlib.suppress(aiodocker.DockerError):
                await container.delete(force=True, v=True)
        self._containers.clear()
