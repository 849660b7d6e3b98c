"""The conformance suite: every registered language's sample cases through the real sandbox.

The cases are data (`streamworker/languages/conformance/<id>.toml`); adding a language
adds its cases here without code. A case may carry `limits` (the submission's), e.g. a
longer wall time for a heap that has to fill up on a busy machine.

The selected cases run ahead of their tests, two at a time (`Ahead`): one case mostly
waits on Docker and its process start-up, so two at once took 60 s where one at a time
took 112 s for ten languages' 41 cases. Each test still judges and reports its own case.
"""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from streamworker.contract import Status
from streamworker.judge import Verdict
from streamworker.languages.registry import load_registry
from tests.integration.sandbox_util import SandboxRunner

pytestmark = [pytest.mark.integration]

CONFORMANCE = Path(__file__).resolve().parents[2] / "streamworker" / "languages" / "conformance"
AT_ONCE = 2
"""Cases in flight at once: the warm pools hold 2 per language, so no take can miss."""


def cases() -> list[Any]:
    params = []
    for lang_id in load_registry():
        with (CONFORMANCE / f"{lang_id}.toml").open("rb") as fh:
            data = tomllib.load(fh)
        for case in data["case"]:
            params.append(pytest.param(lang_id, case, id=f"{lang_id}-{case['name']}"))
    return params


def submission_fields(case: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {"source": case["source"], "stdin": case.get("stdin", "")}
    for optional in ("expected_output", "limits"):
        if optional in case:
            fields[optional] = case[optional]
    return fields


class Ahead:
    """The selected cases of one runner (cold or warm), started in test order, `AT_ONCE`
    at a time; a test awaits its own case's run."""

    def __init__(self, runner: SandboxRunner, items: list[pytest.Item]) -> None:
        gate = asyncio.Semaphore(AT_ONCE)

        async def one(language: str, case: dict[str, Any]) -> tuple[str, Verdict]:
            async with gate:
                return await runner.run(language=language, **submission_fields(case))

        self.runs: dict[str, asyncio.Task[tuple[str, Verdict]]] = {}
        for item in items:
            params = item.callspec.params  # type: ignore[attr-defined]
            self.runs[item.nodeid] = asyncio.create_task(one(params["language"], params["case"]))

    async def close(self) -> None:
        for task in self.runs.values():
            task.cancel()
        await asyncio.gather(*self.runs.values(), return_exceptions=True)


@pytest_asyncio.fixture(scope="module")
async def ahead(request: pytest.FixtureRequest, sandbox_runner: SandboxRunner) -> Any:
    mode = "warm" if sandbox_runner.warm else "cold"
    mine = [
        item
        for item in request.session.items
        if item.module is request.module  # type: ignore[attr-defined]
        and item.callspec.params.get("sandbox_runner") == mode  # type: ignore[attr-defined]
    ]
    runs = Ahead(sandbox_runner, mine)
    try:
        yield runs
    finally:
        await runs.close()


@pytest.mark.parametrize(("language", "case"), cases())
async def test_conformance(
    request: pytest.FixtureRequest,
    sandbox_runner: SandboxRunner,
    ahead: Ahead,
    language: str,
    case: dict[str, Any],
) -> None:
    sid, verdict = await ahead.runs[request.node.nodeid]
    detail = (verdict.message, verdict.compile, verdict.runs)
    assert verdict.status is Status(case["expected_status"]), detail
    if verdict.status is Status.COMPILATION_ERROR:
        assert verdict.compile is not None and verdict.runs == ()
    else:
        assert len(verdict.runs) == 1
    if verdict.status is Status.MEMORY_LIMIT_EXCEEDED:
        # Honest figures: the heap, which follows the limit, was really filled.
        run = verdict.runs[0]
        assert run.memory_kb is not None and run.memory_kb > 100 * 1024, run
    assert await sandbox_runner.leftovers(sid) == []
