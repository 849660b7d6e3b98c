"""`streamworker doctor` as a user runs it, against the real stack and against broken set-ups."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streamworker.settings import load_settings
from streamworker.worker.topics import ensure_topics
from tests.conftest import free_port, image_env, need
from tests.integration.dockerd_util import (
    PYTHON_IMAGE,
    AltDockerd,
    alt_dockerd,
    can_run_dockerd,
    make_certs,
)

pytestmark = [pytest.mark.integration]

CHECKS = [
    "docker.endpoint",
    "docker.daemon",
    "docker.info",
    "runtime.images",
    "sandbox.run",
    "kafka",
    "kafka.topics",
    "database",
    "database.schema",
]
EXE = str(Path(sys.executable).with_name("streamworker"))


def doctor_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    tag = f"doc{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMWORKER_", "DOCKER_"))}
    env.update(
        {
            "STREAMWORKER_TOPIC_SUBMISSIONS": f"{tag}.submissions",
            "STREAMWORKER_TOPIC_RESULTS": f"{tag}.results",
            "STREAMWORKER_TOPIC_DLQ": f"{tag}.submissions.dlq",
            "STREAMWORKER_TOPIC_DOCKER_HEALTH": f"{tag}.docker-health",
            "STREAMWORKER_DATA_DIR": str(tmp_path / "data"),
            "STREAMWORKER_REQUIRED_LANGUAGES": "python",
            **image_env(),  # the images a checkout tests with its own prefix
        }
    )
    env.update(extra)
    return env


def doctor(env: dict[str, str], *args: str) -> tuple[int, str, float]:
    begin = time.monotonic()
    done = subprocess.run(
        [EXE, "doctor", *args], env=env, capture_output=True, text=True, timeout=180, check=False
    )
    return done.returncode, done.stdout, time.monotonic() - begin


def by_name(output: str) -> dict[str, dict[str, Any]]:
    checks = json.loads(output)
    assert [c["name"] for c in checks] == CHECKS
    return {c["name"]: c for c in checks}


async def test_all_checks_pass_on_the_stack(
    docker_available: None, kafka_bootstrap: str, pg_url: str, tmp_path: Path
) -> None:
    env = doctor_env(tmp_path, STREAMWORKER_DATABASE_URL=pg_url)
    upgrade = [EXE, "db", "upgrade"]
    await asyncio.to_thread(subprocess.run, upgrade, env=env, check=True, capture_output=True)
    await ensure_topics(load_settings(env))
    code, out, elapsed_s = await asyncio.to_thread(doctor, env, "--json")
    checks = by_name(out)
    assert {name: c["detail"] for name, c in checks.items() if not c["ok"]} == {}
    assert code == 0
    assert "seccomp" in checks["docker.info"]["detail"]
    assert "accepted" in checks["sandbox.run"]["detail"]
    assert "***" in checks["database"]["detail"] and "streamworker:streamworker@" not in out
    assert all(c["fix"] is None for c in checks.values())
    assert elapsed_s < 60


def test_each_broken_dependency_is_named_with_its_fix(
    docker_available: None, kafka_bootstrap: str, tmp_path: Path
) -> None:
    env = doctor_env(
        tmp_path,
        DOCKER_HOST=f"unix://{tmp_path}/no-docker.sock",
        STREAMWORKER_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/fresh.db",
    )
    code, out, _ = doctor(env, "--json")
    checks = by_name(out)
    assert code == 1
    failed = {name for name, c in checks.items() if not c["ok"]}
    docker_checks = {"docker.daemon", "docker.info", "runtime.images", "sandbox.run"}
    assert failed == docker_checks | {"kafka.topics", "database.schema"}
    assert "no Docker socket at" in checks["docker.daemon"]["detail"]
    assert "make up" in checks["docker.daemon"]["fix"]
    assert checks["database.schema"]["fix"] == "run `streamworker db upgrade`"
    assert "missing topics" in checks["kafka.topics"]["detail"]


def test_text_output_is_a_checklist_and_kafka_down_says_make_up(
    docker_available: None, tmp_path: Path
) -> None:
    env = doctor_env(tmp_path, STREAMWORKER_KAFKA_BOOTSTRAP=f"127.0.0.1:{free_port()}")
    code, out, elapsed_s = doctor(env)
    lines = out.splitlines()
    assert code == 1
    assert [line[0] for line in lines if line[:1] in "✔✘"] == [
        "✔" if name not in ("kafka", "kafka.topics", "database.schema") else "✘" for name in CHECKS
    ], out
    kafka = next(i for i, line in enumerate(lines) if line.startswith("✘ kafka "))
    assert "fix: run `make up`" in lines[kafka + 1]
    assert lines[-1] == f"{len(CHECKS) - 3} of {len(CHECKS)} checks passed"
    assert elapsed_s < 60


@pytest.fixture(scope="module")
def tls_dockerd(
    docker_available: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AltDockerd]:
    need("a second dockerd (root and dockerd)", can_run_dockerd())
    certs = make_certs(tmp_path_factory.mktemp("doctor-tls"))
    with alt_dockerd(certs, images=(PYTHON_IMAGE,)) as daemon:
        yield daemon


@pytest.mark.parametrize("certs", ["right", "stranger"])
def test_docker_over_tls(tls_dockerd: AltDockerd, tmp_path: Path, certs: str) -> None:
    cert_path = tls_dockerd.client_certs
    if certs == "stranger":
        cert_path = make_certs(tmp_path / "stranger") / "client"
    env = doctor_env(
        tmp_path,
        DOCKER_HOST=tls_dockerd.tls_host,
        DOCKER_TLS_VERIFY="1",
        DOCKER_CERT_PATH=str(cert_path),
    )
    _, out, _ = doctor(env, "--json")
    checks = by_name(out)
    assert "mutual TLS" in checks["docker.endpoint"]["detail"]
    if certs == "right":
        for name in ("docker.daemon", "docker.info", "runtime.images", "sandbox.run"):
            assert checks[name]["ok"], checks[name]
    else:
        daemon = checks["docker.daemon"]
        assert not daemon["ok"] and "not signed by DOCKER_CERT_PATH/ca.pem" in daemon["detail"]
        assert "DOCKER_CERT_PATH" in daemon["fix"]
