"""`/health` body and bounded dependency checks; `/metrics` names and units."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamworker import metrics
from streamworker.audit.status import AuditHealth
from streamworker.contract import DockerHealthEvent, DockerStatus, RunResult, Status, now_utc
from streamworker.errors import ConfigError
from streamworker.judge import Verdict
from streamworker.settings import load_settings
from streamworker.worker.health import (
    CHECK_TIMEOUT_S,
    HealthReport,
    check,
    decide_readiness,
    gather_health,
)

BODY_KEYS = {"status", "docker", "kafka", "database", "timestamp"}


class TestHealthReport:
    def test_all_connected_is_healthy(self) -> None:
        report = HealthReport("connected", "connected", "connected", "2024-01-01T00:00:00Z")
        assert report.healthy is True
        assert report.body() == {
            "status": "healthy",
            "docker": "connected",
            "kafka": "connected",
            "database": "connected",
            "timestamp": "2024-01-01T00:00:00Z",
        }

    @pytest.mark.parametrize("broken", ["docker", "kafka", "database"])
    def test_any_error_is_unhealthy(self, broken: str) -> None:
        values = {"docker": "connected", "kafka": "connected", "database": "connected"}
        values[broken] = "ConnectionRefusedError: refused"
        report = HealthReport(timestamp="t", **values)
        assert report.healthy is False
        body = report.body()
        assert set(body) == BODY_KEYS
        assert body["status"] == "unhealthy"
        assert body[broken] == "ConnectionRefusedError: refused"

    def test_starting_is_unhealthy(self) -> None:
        assert HealthReport("starting", "starting", "starting", "").healthy is False


class TestCheck:
    async def test_success(self) -> None:
        async def probe() -> None:
            return None

        status, elapsed = await check(probe)
        assert status == "connected"
        assert 0 <= elapsed < 5

    async def test_exception_becomes_its_type_and_text(self) -> None:
        async def probe() -> None:
            raise ConnectionRefusedError("connection refused")

        status, _ = await check(probe)
        assert status == "ConnectionRefusedError: connection refused"

    async def test_exception_without_text(self) -> None:
        async def probe() -> None:
            raise RuntimeError

        status, _ = await check(probe)
        assert status == "RuntimeError: RuntimeError"

    async def test_long_error_text_is_bounded(self) -> None:
        async def probe() -> None:
            raise OSError("x" * 5000)

        status, _ = await check(probe)
        assert status.startswith("OSError: xxx")
        assert len(status) <= 300

    async def test_timeout(self) -> None:
        async def probe() -> None:
            await asyncio.sleep(10)

        status, elapsed = await check(probe, timeout_s=0.05)
        assert status == "timeout after 0.05s"
        assert elapsed < 5  # the probe alone would take 10 s

    @pytest.mark.parametrize(("timeout_s", "text"), [(0.01, "0.01s"), (0.1, "0.1s")])
    async def test_timeout_text_is_compact(self, timeout_s: float, text: str) -> None:
        never = asyncio.Event()

        async def probe() -> None:
            await never.wait()

        status, _ = await check(probe, timeout_s=timeout_s)
        assert status == f"timeout after {text}"

    async def test_default_bound(self) -> None:
        assert 0 < CHECK_TIMEOUT_S <= 10

    async def test_probe_raising_timeout_error_itself(self) -> None:
        async def probe() -> None:
            raise TimeoutError

        status, _ = await check(probe, timeout_s=5)
        assert status == "timeout after 5s"


async def test_gather_health() -> None:
    async def ok() -> None:
        return None

    async def down() -> None:
        raise ConnectionError("no broker")

    report = await gather_health(ok, down, ok)
    assert report.docker == "connected"
    assert report.kafka == "ConnectionError: no broker"
    assert report.database == "connected"
    assert report.healthy is False
    assert report.timestamp.endswith("Z")
    datetime.fromisoformat(report.timestamp)
    assert set(report.body()) == BODY_KEYS


async def test_gather_health_runs_probes_concurrently() -> None:
    """Each probe waits until all three have started: run one after another, none ends.

    A barrier, not a stopwatch: a busy CI machine cannot make it flaky.
    """
    started = 0
    all_started = asyncio.Event()

    async def meet() -> None:
        nonlocal started
        started += 1
        if started == 3:
            all_started.set()
        await all_started.wait()

    async with asyncio.timeout(CHECK_TIMEOUT_S + 5):
        report = await gather_health(meet, meet, meet)
    assert started == 3
    assert report.healthy is True, report.body()


# -------------------------------------------------------------------------------- metrics

METRIC_NAME = re.compile(r"^streamworker_[a-z0-9_]+$")


def test_every_metric_is_prefixed_and_in_base_units() -> None:
    families = list(text_string_to_metric_families(metrics.render().decode()))
    names = {f.name for f in families}
    assert names >= {
        "streamworker_submissions",
        "streamworker_execution_duration_seconds",
        "streamworker_submission_duration_seconds",
        "streamworker_runs_in_flight",
        "streamworker_dead_letters",
        "streamworker_docker_up",
    }
    for family in families:
        assert METRIC_NAME.match(family.name), family.name
        assert family.documentation, family.name
        for unit in ("_ms", "_milliseconds", "_kb", "_mb", "_minutes"):
            assert unit not in family.name, family.name
        if family.type == "counter":
            assert not family.name.endswith("_total"), family.name  # client adds it


def test_observe_verdict() -> None:
    verdict = Verdict(
        status=Status.WRONG_ANSWER,
        message=None,
        compile=RunResult(None, Status.ACCEPTED, wall_time_s=0.5),
        runs=(
            RunResult("1", Status.ACCEPTED, wall_time_s=0.1),
            RunResult("2", Status.WRONG_ANSWER, wall_time_s=0.2),
            RunResult("3", Status.RUNTIME_ERROR),
        ),
        image="img",
        image_id="sha",
        started_at=None,
    )
    registry = metrics.REGISTRY

    def value(name: str, labels: dict[str, str]) -> float:
        return registry.get_sample_value(name, labels) or 0.0

    lang = "unit-test-lang"
    metrics.observe_verdict(lang, verdict, 1.25)
    # Answered submissions are counted by Pipeline.record_result, not here.
    assert (
        value("streamworker_submissions_total", {"language": lang, "status": "wrong_answer"}) == 0
    )
    assert value("streamworker_submission_duration_seconds_sum", {"language": lang}) == 1.25
    assert (
        value(
            "streamworker_execution_duration_seconds_count", {"language": lang, "stage": "compile"}
        )
        == 1
    )
    assert (
        value("streamworker_execution_duration_seconds_count", {"language": lang, "stage": "run"})
        == 2
    )
    assert value(
        "streamworker_execution_duration_seconds_sum", {"language": lang, "stage": "run"}
    ) == pytest.approx(0.3)


# -------------------------------------------------------------------------------- audit


class TestAuditInHealth:
    def test_lag_beyond_the_threshold_is_degraded_and_says_so(self) -> None:
        audit = AuditHealth(lag_s=45.2, quarantined=0, lag_degraded_s=30)
        report = HealthReport("connected", "connected", "connected", "t", audit.text())
        body = report.body()
        assert body["status"] == "degraded"
        assert body["audit"] == "degraded: lag 45s > 30s"
        assert set(body) == BODY_KEYS | {"audit"}
        # Still served with 200: a liveness restart would drop the queued records.
        assert report.healthy is True

    def test_quarantine_is_degraded(self) -> None:
        audit = AuditHealth(lag_s=0.0, quarantined=2)
        assert audit.text() == "degraded: 2 record(s) quarantined"
        report = HealthReport("connected", "connected", "connected", "t", audit.text())
        assert report.status == "degraded"

    def test_both_reasons_are_named(self) -> None:
        text = AuditHealth(lag_s=31, quarantined=1, lag_degraded_s=30).text()
        assert text == "degraded: lag 31s > 30s; 1 record(s) quarantined"

    def test_lag_at_the_threshold_is_fine(self) -> None:
        assert AuditHealth(lag_s=30.0, quarantined=0, lag_degraded_s=30).text() == "ok"
        report = HealthReport("connected", "connected", "connected", "t", "ok")
        assert report.body()["status"] == "healthy" and report.body()["audit"] == "ok"

    def test_a_dependency_down_outranks_a_degraded_audit(self) -> None:
        report = HealthReport("connected", "down", "connected", "t", "degraded: lag 99s > 30s")
        assert report.status == "unhealthy" and report.healthy is False

    async def test_gather_health_asks_the_audit(self) -> None:
        async def ok() -> None:
            return None

        async def lagging() -> AuditHealth:
            return AuditHealth(lag_s=120, quarantined=0, lag_degraded_s=30)

        report = await gather_health(ok, ok, ok, audit=lagging)
        assert report.body()["status"] == "degraded"
        assert report.audit == "degraded: lag 120s > 30s"

    async def test_an_audit_probe_that_fails_is_reported_not_raised(self) -> None:
        async def ok() -> None:
            return None

        async def broken() -> AuditHealth:
            raise RuntimeError("no writer")

        report = await gather_health(ok, ok, ok, audit=broken)
        assert report.audit == "unknown: RuntimeError: no writer"
        assert report.status == "degraded"

    def test_readiness_reports_the_audit_but_stays_ready(self) -> None:
        docker = DockerHealthEvent(
            "w-1", DockerStatus.HEALTHY, None, True, "unix", "20.10", "1.41", 1.0, 0, (), now_utc()
        )
        audit = AuditHealth(lag_s=0, quarantined=3)
        report = decide_readiness(docker, "connected", "assigned", audit)
        assert report.ready
        assert report.body()["status"] == "ready"
        assert report.body()["audit"] == "degraded: 3 record(s) quarantined"
        assert "audit" not in decide_readiness(docker, "connected", "assigned").body()


def test_the_lag_threshold_is_a_setting() -> None:
    base = {"STREAMWORKER_WORKER_ID": "w"}
    assert load_settings(base).audit_lag_degraded_s == 30.0
    env = {**base, "STREAMWORKER_AUDIT_LAG_DEGRADED_S": "5"}
    assert load_settings(env).audit_lag_degraded_s == 5.0
    with pytest.raises(ConfigError, match="STREAMWORKER_AUDIT_LAG_DEGRADED_S"):
        load_settings({**base, "STREAMWORKER_AUDIT_LAG_DEGRADED_S": "0"})
