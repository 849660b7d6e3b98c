"""Readiness (`/ready`) and the required-languages setting."""

from __future__ import annotations

import pytest

from streamworker.contract import DockerHealthEvent, DockerStatus, now_utc
from streamworker.settings import load_settings
from streamworker.worker.health import consumer_state, decide_readiness


def docker_event(status: DockerStatus, reason: str | None = None) -> DockerHealthEvent:
    return DockerHealthEvent(
        "w-1", status, reason, True, "unix", "20.10", "1.41", 1.0, 0, (), now_utc()
    )


def test_ready_when_docker_healthy_kafka_connected_and_partitions_assigned() -> None:
    report = decide_readiness(docker_event(DockerStatus.HEALTHY), "connected", "assigned")
    assert report.ready
    assert report.body()["status"] == "ready" and report.body()["docker"] == "healthy"


@pytest.mark.parametrize(
    ("docker", "kafka", "consumer"),
    [
        (None, "connected", "assigned"),
        (docker_event(DockerStatus.DEGRADED, "runtime images missing: x"), "connected", "assigned"),
        (docker_event(DockerStatus.UNHEALTHY, "no Docker socket"), "connected", "assigned"),
        (docker_event(DockerStatus.HEALTHY), "KafkaConnectionError: down", "assigned"),
        (docker_event(DockerStatus.HEALTHY), "connected", "rebalancing"),
        (docker_event(DockerStatus.HEALTHY), "connected", "joining"),
    ],
)
def test_not_ready_otherwise(docker: DockerHealthEvent | None, kafka: str, consumer: str) -> None:
    report = decide_readiness(docker, kafka, consumer)
    assert not report.ready and report.body()["status"] == "not_ready"


def test_a_degraded_docker_names_its_reason() -> None:
    event = docker_event(DockerStatus.DEGRADED, "runtime images missing: x")
    body = decide_readiness(event, "connected", "assigned").body()
    assert body["docker"] == "degraded: runtime images missing: x"


@pytest.mark.parametrize(
    ("joined", "rebalancing", "state"),
    [
        (False, False, "joining"),
        (False, True, "joining"),
        (True, True, "rebalancing"),
        (True, False, "assigned"),
    ],
)
def test_consumer_state(joined: bool, rebalancing: bool, state: str) -> None:
    assert consumer_state(joined, rebalancing) == state


def test_required_languages_are_read_as_a_list() -> None:
    env = {"STREAMWORKER_REQUIRED_LANGUAGES": "python, c,java"}
    assert load_settings(env).required_languages == ("python", "c", "java")
    assert load_settings({}).required_languages == ()
