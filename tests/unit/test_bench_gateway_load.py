"""The bench's gateway process: configured to measure the path, not the rate limiter."""

from __future__ import annotations

from pathlib import Path

from streamworker.bench.gateway_load import GatewayProcess
from streamworker.gateway.tenants import load_tenants
from streamworker.settings import load_settings


def test_the_bench_gateway_does_not_rate_limit_its_bursts(tmp_path: Path) -> None:
    # Three rounds of a 40-submission burst for each of three programs within a few
    # minutes: at the default 120 a minute the later programs were answered 429.
    gateway = GatewayProcess(
        load_settings({"STREAMWORKER_WORKER_ID": "bench-gw"}), 18099, tmp_path / "gateway.log"
    )
    assert gateway.env["STREAMWORKER_GATEWAY_PORT"] == "18099"
    tenant = load_tenants(gateway.env).default
    assert tenant.submissions_per_minute >= 3 * 3 * 40 * 10
