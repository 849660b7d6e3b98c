"""The executor scenarios: `judge()` over `DockerSandbox`, cold (a container per run) and
warm (the warm container pool)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from streamworker.bench.context import RUN_TIMEOUT_S, BenchContext
from streamworker.bench.policy import submission_for
from streamworker.bench.programs import Program
from streamworker.bench.scenario import EXECUTOR_COLD, EXECUTOR_WARM, RunFailed, Unavailable
from streamworker.contract import Status
from streamworker.judge import Sandbox, judge
from streamworker.sandbox.executor import DockerSandbox
from streamworker.sandbox.pool import PoolManager
from streamworker.sandbox.pooled import wait_removals

POOL_FILL_TIMEOUT_S = 120.0


async def _judge_once(ctx: BenchContext, sandbox: Sandbox, program: Program, run_id: str) -> None:
    submission = submission_for(program, run_id)
    async with asyncio.timeout(RUN_TIMEOUT_S):
        verdict = await judge(submission, ctx.language(program), ctx.settings, sandbox)
    # The submission carries the expected output, so `accepted` means it printed the answer.
    if verdict.status is not Status.ACCEPTED:
        raise RunFailed(f"{program.key}: {verdict.status.value} ({verdict.message})")


class ExecutorCold:
    """What a worker without a pool pays: create, inspect, start, exec, remove per run."""

    name = EXECUTOR_COLD

    def __init__(self, ctx: BenchContext) -> None:
        self.ctx = ctx
        self.sandbox = DockerSandbox(ctx.docker, ctx.settings)

    async def run_once(self, program: Program, run_id: str) -> None:
        await _judge_once(self.ctx, self.sandbox, program, run_id)

    async def settle(self) -> None:
        return None


class ExecutorWarm:
    """`judge()` with `DockerSandbox(..., pools=PoolManager)`: runs in pre-started containers.

    The pool refills and removes used containers in the background; `settle` waits for
    both, so that work is not billed to whichever scenario runs next.
    """

    name = EXECUTOR_WARM

    def __init__(self, ctx: BenchContext, pools: PoolManager) -> None:
        self.ctx = ctx
        self.pools = pools
        self.sandbox = DockerSandbox(ctx.docker, ctx.settings, pools=pools)

    @classmethod
    async def start(cls, ctx: BenchContext, languages: Sequence[str]) -> ExecutorWarm:
        """Start and fill pools for `languages`; `Unavailable` if they cannot fill."""
        pools = PoolManager(ctx.docker, ctx.settings)
        await pools.start(list(languages))
        try:
            await pools.wait_ready(timeout_s=POOL_FILL_TIMEOUT_S)
        except TimeoutError as exc:
            await pools.stop()
            raise Unavailable(f"warm pools did not fill in {POOL_FILL_TIMEOUT_S}s") from exc
        return cls(ctx, pools)

    async def run_once(self, program: Program, run_id: str) -> None:
        await _judge_once(self.ctx, self.sandbox, program, run_id)

    async def settle(self) -> None:
        await wait_removals()
        await self.pools.wait_ready(timeout_s=POOL_FILL_TIMEOUT_S)

    async def stop(self) -> None:
        await self.pools.stop()
