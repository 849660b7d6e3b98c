"""Helpers of the fault and shutdown tests: submissions, their containers, their rows."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import aiodocker

from streamworker.audit.store import AuditStore
from streamworker.sandbox.spec import LABEL_PREFIX, container_name_stem


def hello(sid: str, sleep_s: float = 0.0) -> dict[str, Any]:
    source = f"import time\ntime.sleep({sleep_s})\nprint('ok {sid}')\n"
    return {
        "submission_id": sid,
        "language": "python",
        "source": source,
        "expected_output": f"ok {sid}\n",
    }


def ids(prefix: str, n: int) -> list[str]:
    tag = uuid.uuid4().hex[:6]
    return [f"{prefix}-{tag}-{i:04d}" for i in range(n)]


async def labelled(sid: str) -> list[str]:
    """The submission's containers: cold ones by label, warm ones by their (renamed) name."""
    async with aiodocker.Docker() as docker:
        by_label = await docker.containers.list(
            all=True, filters=json.dumps({"label": [f"{LABEL_PREFIX}.submission-id={sid}"]})
        )
        by_name = await docker.containers.list(
            all=True, filters=json.dumps({"name": [f"^/{container_name_stem(sid)}-a"]})
        )
        return sorted({c.id for c in [*by_label, *by_name]})


async def executions(url: str, sids: list[str]) -> dict[str, dict[str, Any]]:
    store = await AuditStore.open(url)
    try:
        rows = {}
        for sid in sids:
            row = await store.get_execution(sid)
            if row is not None:
                rows[sid] = row
        return rows
    finally:
        await store.close()


async def wait_rows(url: str, sids: list[str], timeout_s: float) -> dict[str, dict[str, Any]]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        rows = await executions(url, sids)
        done = {k: v for k, v in rows.items() if v.get("status")}
        if len(done) == len(sids) or asyncio.get_running_loop().time() > deadline:
            return done
        await asyncio.sleep(1.0)


async def wait_container(sid: str, timeout_s: float = 20.0) -> None:
    """Until the submission's container exists (its run has started)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await labelled(sid):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"no container for {sid} within {timeout_s}s")


async def wait_gone(sid: str, timeout_s: float = 30.0) -> list[str]:
    """Until the submission has no container left (or timeout); what is left."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = await labelled(sid)
        if not left or time.monotonic() > deadline:
            return left
        await asyncio.sleep(0.5)
