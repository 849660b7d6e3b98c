"""The conformance suite: every registered language's sample cases through the real sandbox.

The cases are data (`streamworker/languages/conformance/<id>.toml`); adding a language
adds its cases here without code. A case may carry `limits` (the submission's), e.g. a
longer wall time for a heap that has to fill up on a busy machine.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from streamworker.contract import Status
from streamworker.languages.registry import load_registry
from tests.integration.sandbox_util import SandboxRunner

pytestmark = [pytest.mark.integration]

CONFORMANCE = Path(__file__).resolve().parents[2] / "streamworker" / "languages" / "conformance"


def cases() -> list[Any]:
    params = []
    for lang_id in load_registry():
        with (CONFORMANCE / f"{lang_id}.toml").open("rb") as fh:
            data = tomllib.load(fh)
        for case in data["case"]:
            params.append(pytest.param(lang_id, case, id=f"{lang_id}-{case['name']}"))
    return params


@pytest.mark.parametrize(("language", "case"), cases())
async def test_conformance(
    sandbox_runner: SandboxRunner, language: str, case: dict[str, Any]
) -> None:
    fields: dict[str, Any] = {"source": case["source"], "stdin": case.get("stdin", "")}
    if "expected_output" in case:
        fields["expected_output"] = case["expected_output"]
    if "limits" in case:
        fields["limits"] = case["limits"]
    sid, verdict = await sandbox_runner.run(language=language, **fields)
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
