"""Shared fixtures: real-stack probes and factories that clean up after themselves.

A missing service skips a test locally; with STREAMWORKER_REQUIRE_STACK=1 (as in CI
and `make test`) it fails instead.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
KAFKA = os.environ.get("STREAMWORKER_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
PG_URL = os.environ.get(
    "STREAMWORKER_TEST_PG_URL",
    "postgresql+asyncpg://streamworker:streamworker@127.0.0.1:5432/streamworker",
)


def image_env() -> dict[str, str]:
    """The caller's runtime image prefix, if set: a checkout can test its own images
    (e.g. with a changed helper) without touching the shared ones."""
    prefix = os.environ.get("STREAMWORKER_IMAGE_PREFIX")
    return {"STREAMWORKER_IMAGE_PREFIX": prefix} if prefix else {}


UNIT = REPO / "tests" / "unit"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Unit tests never touch a runtime image: `make test` runs them, with the integration
    tests marked `no_runtime_images`, while the images are still being built."""
    for item in items:
        if item.path.is_relative_to(UNIT):
            item.add_marker(pytest.mark.no_runtime_images)


def require_stack() -> bool:
    return os.environ.get("STREAMWORKER_REQUIRE_STACK") == "1"


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def need(service: str, ok: bool) -> None:
    """Skip (locally) or fail (CI) when a service is not there."""
    if ok:
        return
    if require_stack():
        pytest.fail(f"{service} is not reachable and STREAMWORKER_REQUIRE_STACK=1")
    pytest.skip(f"{service} is not reachable")


def docker_ok() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    host, port = KAFKA.rsplit(":", 1)
    need("Kafka", port_open(host, int(port)))
    return KAFKA


@pytest.fixture(scope="session")
def docker_available() -> None:
    need("Docker", docker_ok())


@pytest.fixture(scope="session")
def pg_url() -> str:
    need("PostgreSQL", port_open("127.0.0.1", 5432))
    return PG_URL


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class WorkerHandle:
    """A real `streamworker worker` process with its own topics and consumer group."""

    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log_path: Path
    http_port: int

    @property
    def topics(self) -> dict[str, str]:
        return {
            "submissions": self.env["STREAMWORKER_TOPIC_SUBMISSIONS"],
            "results": self.env["STREAMWORKER_TOPIC_RESULTS"],
            "dlq": self.env["STREAMWORKER_TOPIC_DLQ"],
            "docker_health": self.env["STREAMWORKER_TOPIC_DOCKER_HEALTH"],
        }

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]


def wait_http(
    url: str, timeout_s: float, process: subprocess.Popen[bytes], healthy: bool = True
) -> None:
    """Wait until `url` answers 200 (or answers at all, when `healthy` is False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"worker exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            if not healthy:
                return
            time.sleep(0.3)
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout_s}s")


@pytest.fixture
def start_worker(tmp_path: Path, kafka_bootstrap: str, docker_available: None) -> Iterator[object]:
    """Factory: start a worker with isolated topics; all are stopped at teardown."""
    handles: list[WorkerHandle] = []

    def start(
        database_url: str | None = None,
        prefix: str | None = None,
        wait_healthy: bool = True,
        **extra: str,
    ) -> WorkerHandle:
        tag = prefix or f"t{uuid.uuid4().hex[:10]}"
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMWORKER_")}
        env.update(image_env())
        env.update(
            {
                "STREAMWORKER_KAFKA_BOOTSTRAP": kafka_bootstrap,
                "STREAMWORKER_APP_ID": f"streamworker-{tag}",
                "STREAMWORKER_TOPIC_SUBMISSIONS": f"{tag}.submissions",
                "STREAMWORKER_TOPIC_RESULTS": f"{tag}.results",
                "STREAMWORKER_TOPIC_DLQ": f"{tag}.submissions.dlq",
                "STREAMWORKER_TOPIC_DOCKER_HEALTH": f"{tag}.docker-health",
                "STREAMWORKER_HTTP_PORT": str(port),
                "STREAMWORKER_DATA_DIR": str(tmp_path / f"data-{tag}"),
                "STREAMWORKER_WORKER_ID": f"worker-{tag}-{len(handles)}",
            }
        )
        if database_url:
            env["STREAMWORKER_DATABASE_URL"] = database_url
        env.update(extra)
        exe = str(Path(sys.executable).with_name("streamworker"))
        subprocess.run([exe, "db", "upgrade"], env=env, check=True, capture_output=True)
        log_path = tmp_path / f"worker-{tag}-{len(handles)}.log"
        log_file = log_path.open("wb")
        process = subprocess.Popen(
            [exe, "worker"], env=env, stdout=log_file, stderr=subprocess.STDOUT, cwd=str(REPO)
        )
        handle = WorkerHandle(env, process, log_path, port)
        handles.append(handle)
        try:
            wait_http(f"{handle.url}/health", 60, process, healthy=wait_healthy)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}\n{handle.log()}") from exc
        return handle

    yield start
    for handle in handles:
        if handle.process.poll() is None:
            handle.process.terminate()
    for handle in handles:
        try:
            handle.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            handle.process.kill()
            handle.process.wait()
