"""`streamworker bench` in quick mode: python hello world through every in-process
scenario (baselines A, B, C, executor cold and warm) on the real Docker daemon.

End to end through Kafka is left out to keep this short; the JSON is what we check.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamworker.bench.options import BenchOptions
from streamworker.bench.runner import run_bench
from streamworker.bench.scenario import (
    BASELINE_A,
    BASELINE_B,
    BASELINE_C,
    EXEC_FLOOR,
    EXECUTOR_COLD,
    EXECUTOR_WARM,
)
from streamworker.settings import load_settings
from tests.conftest import image_env

pytestmark = [pytest.mark.integration]

IN_PROCESS = {BASELINE_A, BASELINE_B, BASELINE_C, EXECUTOR_COLD, EXECUTOR_WARM, EXEC_FLOOR}


async def test_quick_bench_writes_every_scenario(docker_available: None, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    options = BenchOptions.quick(
        languages=("python",), kinds=("hello",), e2e=False, json_path=out, command="smoke"
    )
    settings = load_settings({"STREAMWORKER_WORKER_ID": "bench-smoke", **image_env()})
    returned = await run_bench(settings, options)

    doc = json.loads(out.read_text())
    assert doc == json.loads(json.dumps(returned))
    rows = {row["scenario"]: row for row in doc["results"]}
    assert set(rows) == IN_PROCESS
    for name, row in rows.items():
        assert row["program"] == "python-hello"
        assert row["status"] == "ok", (name, row)
        assert row["errors"] == 0, (name, row["first_error"])
        lat = row["latency_ms"]
        assert lat["n"] == options.iterations
        assert 0 < lat["min"] <= lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"] < 60_000
        assert row["throughput_per_s"] > 0
        assert row["ratio_to_b"]["p50"] > 0
    assert rows[BASELINE_B]["ratio_to_b"]["p50"] == 1.0
    # The floor: no container at all must beat the cheapest container run.
    assert rows[BASELINE_C]["latency_ms"]["p50"] < rows[BASELINE_B]["latency_ms"]["p50"]

    meta = doc["meta"]
    assert meta["command"] == "smoke"
    assert meta["machine"]["cores"] >= 1
    assert meta["machine"]["docker_version"]
    assert meta["machine"]["cgroup_version"] in ("1", "2")
    assert "python-hello" in meta["policies"]
    warm_check = doc["targets"][0]
    assert warm_check["program"] == "python-hello" and warm_check["met"] in (True, False)
    assert all(check["met"] is None for check in doc["targets"][1:])  # no e2e in quick smoke
