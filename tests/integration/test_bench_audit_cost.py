"""The audit-cost benchmark does the worker's audit cycle for real: every submission ends
projected, and the figures are per submission."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamworker.audit.migrate import upgrade
from streamworker.audit.store import AuditStore
from streamworker.bench import audit_cost

pytestmark = pytest.mark.no_runtime_images


async def test_each_submission_is_looked_up_appended_and_projected(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
    await upgrade(url)
    cpu_ms, wall_ms = await audit_cost.measure(url, 5)
    assert cpu_ms > 0 and wall_ms > 0
    store = await AuditStore.open(url)
    try:
        rows = await store.list_executions(limit=100)
        assert len(rows) == audit_cost.WARMUP + 5
        assert {row["status"] for row in rows} == {"accepted"}
        assert await store.unprojected() == 0
    finally:
        await store.close()
