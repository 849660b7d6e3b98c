"""Reaching Docker over mutual TLS: a second real dockerd on 127.0.0.1, and Docker-in-Docker.

The right client certificate runs a submission under the full sandbox; a wrong one, a
missing one, a daemon certificate from another CA and plain TCP each fail with an error
that names the cause. The main dockerd is never reconfigured or stopped.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiodocker
import pytest

from streamworker.contract import Status, decode_submission
from streamworker.errors import ConfigError, SandboxError
from streamworker.judge import Verdict, judge
from streamworker.languages.registry import get_language
from streamworker.sandbox.connection import DockerEndpoint, connect, resolve_endpoint
from streamworker.sandbox.executor import DockerSandbox
from streamworker.sandbox.probe import probe
from streamworker.sandbox.spec import LABEL_PREFIX
from streamworker.sandbox.tls import explain_failure
from streamworker.settings import DockerSettings, Settings, load_settings
from tests.conftest import image_env, need
from tests.integration.dockerd_util import (
    PYTHON_IMAGE,
    AltDockerd,
    DindDaemon,
    alt_dockerd,
    build_dind_image,
    can_run_dockerd,
    dind_daemon,
    make_certs,
)
from tests.integration.kafka_util import event_bytes, produce, results_by_id

pytestmark = [pytest.mark.integration]

REJECTED = "rejected our client certificate"


@pytest.fixture(scope="module")
def tls_dockerd(
    docker_available: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AltDockerd]:
    need("a second dockerd (root and dockerd)", can_run_dockerd())
    certs = make_certs(tmp_path_factory.mktemp("tls"))
    with alt_dockerd(certs, images=(PYTHON_IMAGE,)) as daemon:
        yield daemon


def http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())


def tls_settings(host: str, cert_dir: Path) -> Settings:
    docker = DockerSettings(host=host, tls_verify=True, cert_path=str(cert_dir))
    prefix = image_env().get("STREAMWORKER_IMAGE_PREFIX", Settings.image_prefix)
    return Settings(worker_id="tls-tests", docker=docker, image_prefix=prefix)


def cert_dir(path: Path, ca_from: Path, pair_from: Path) -> Path:
    """A Docker-style cert dir: ca.pem from one set, cert.pem and key.pem from another."""
    path.mkdir()
    shutil.copy(ca_from / "ca.pem", path / "ca.pem")
    for name in ("cert.pem", "key.pem"):
        shutil.copy(pair_from / name, path / name)
    return path


async def judge_hello(docker: aiodocker.Docker, settings: Settings) -> tuple[str, Verdict]:
    sid = f"tls-{uuid.uuid4().hex[:12]}"
    event = {
        "submission_id": sid,
        "language": "python",
        "source": "print(input()[::-1])\n",
        "stdin": "slt\n",
        "expected_output": "tls\n",
    }
    submission = decode_submission(json.dumps(event).encode())
    sandbox = DockerSandbox(docker, settings)
    return sid, await judge(submission, get_language("python"), settings, sandbox)


async def leftovers(docker: aiodocker.Docker, sid: str) -> list[Any]:
    label = f"{LABEL_PREFIX}.submission-id={sid}"
    return list(await docker.containers.list(all=True, filters=json.dumps({"label": [label]})))


async def test_right_client_certificate_runs_a_submission(tls_dockerd: AltDockerd) -> None:
    settings = tls_settings(tls_dockerd.tls_host, tls_dockerd.client_certs)
    endpoint = resolve_endpoint(settings.docker)
    assert endpoint.kind == "tls" and endpoint.url.startswith("https://127.0.0.1:")
    docker = connect(endpoint)
    try:
        sid, verdict = await judge_hello(docker, settings)
        assert verdict.status is Status.ACCEPTED, verdict
        assert verdict.runs[0].stdout == "tls\n"
        assert await leftovers(docker, sid) == []
        found = await probe(docker, endpoint, [PYTHON_IMAGE])
        assert found.reachable and found.missing_images == ()
    finally:
        await docker.close()


async def test_client_certificate_of_another_ca_is_refused_naming_the_cause(
    tls_dockerd: AltDockerd, tmp_path: Path
) -> None:
    stranger = make_certs(tmp_path / "stranger") / "client"
    mixed = cert_dir(tmp_path / "mixed", tls_dockerd.client_certs, stranger)
    settings = tls_settings(tls_dockerd.tls_host, mixed)
    endpoint = resolve_endpoint(settings.docker)
    docker = connect(endpoint)
    try:
        found = await probe(docker, endpoint, [])
        assert not found.reachable
        assert found.error is not None and REJECTED in found.error
        with pytest.raises(SandboxError) as caught:
            await judge_hello(docker, settings)
        diagnosis = explain_failure(caught.value, endpoint)
        assert REJECTED in diagnosis.cause and "--tlscacert" in diagnosis.fix
    finally:
        await docker.close()


async def test_missing_client_certificate_is_refused_naming_the_cause(
    tls_dockerd: AltDockerd, tmp_path: Path
) -> None:
    only_ca = tmp_path / "only-ca"
    only_ca.mkdir()
    shutil.copy(tls_dockerd.client_certs / "ca.pem", only_ca / "ca.pem")
    with pytest.raises(ConfigError) as caught:
        resolve_endpoint(tls_settings(tls_dockerd.tls_host, only_ca).docker)
    assert caught.value.key == "DOCKER_CERT_PATH" and "cert file" in str(caught.value)
    # On the wire: a client that trusts the daemon but offers no certificate at all.
    context = ssl.create_default_context(cafile=str(only_ca / "ca.pem"))
    endpoint = DockerEndpoint(f"https://127.0.0.1:{tls_dockerd.tls_port}", "tls", context)
    docker = connect(endpoint)
    try:
        found = await probe(docker, endpoint, [])
    finally:
        await docker.close()
    assert not found.reachable and found.error is not None and REJECTED in found.error


async def test_daemon_certificate_of_another_ca_is_refused_naming_the_cause(
    tls_dockerd: AltDockerd, tmp_path: Path
) -> None:
    stranger = make_certs(tmp_path / "stranger") / "client"
    wrong_ca = cert_dir(tmp_path / "wrong-ca", stranger, tls_dockerd.client_certs)
    settings = tls_settings(tls_dockerd.tls_host, wrong_ca)
    endpoint = resolve_endpoint(settings.docker)
    docker = connect(endpoint)
    try:
        found = await probe(docker, endpoint, [])
    finally:
        await docker.close()
    assert not found.reachable and found.error is not None
    assert "not signed by DOCKER_CERT_PATH/ca.pem" in found.error


async def test_plain_tcp_is_refused_unless_allowed(tls_dockerd: AltDockerd) -> None:
    env = {"DOCKER_HOST": tls_dockerd.tls_host}
    with pytest.raises(ConfigError) as caught:
        resolve_endpoint(load_settings(env).docker)
    assert caught.value.key == "DOCKER_HOST"
    assert "STREAMWORKER_DOCKER_ALLOW_INSECURE_TCP=1" in str(caught.value)
    allowed = load_settings({**env, "STREAMWORKER_DOCKER_ALLOW_INSECURE_TCP": "1"})
    endpoint = resolve_endpoint(allowed.docker)
    assert endpoint.kind == "tcp"
    docker = connect(endpoint)
    try:
        found = await probe(docker, endpoint, [])  # this daemon insists on TLS, and says so
    finally:
        await docker.close()
    assert not found.reachable and found.error is not None and "requires TLS" in found.error


async def test_worker_answers_a_submission_through_the_tls_daemon(
    start_worker: Any, kafka_bootstrap: str, tls_dockerd: AltDockerd
) -> None:
    worker = start_worker(
        DOCKER_HOST=tls_dockerd.tls_host,
        DOCKER_TLS_VERIFY="1",
        DOCKER_CERT_PATH=str(tls_dockerd.client_certs),
        STREAMWORKER_REQUIRED_LANGUAGES="python",
    )
    sid = f"tls-e2e-{uuid.uuid4().hex[:10]}"
    event = {"submission_id": sid, "language": "python", "source": "print(6 * 7)\n"}
    event["expected_output"] = "42\n"
    await produce(kafka_bootstrap, worker.topics["submissions"], [event_bytes(event)])
    found = await results_by_id(kafka_bootstrap, worker.topics["results"], {sid}, timeout_s=90)
    assert [r["status"] for r in found.get(sid, [])] == ["accepted"], worker.log()
    status, body = await asyncio.to_thread(http_get, f"{worker.url}/health")
    assert status == 200 and json.loads(body)["docker"] == "connected"


# -- Docker-in-Docker ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def dind(docker_available: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DindDaemon]:
    need("mmdebstrap (to build the DinD image)", shutil.which("mmdebstrap") is not None)
    image = build_dind_image()
    certs = make_certs(tmp_path_factory.mktemp("dind-tls"))
    with dind_daemon(image, certs) as daemon:
        daemon.load(PYTHON_IMAGE)
        yield daemon


@pytest.mark.slow
async def test_docker_in_docker_over_tls_runs_a_submission(dind: DindDaemon) -> None:
    settings = tls_settings(dind.tls_host, dind.client_certs)
    endpoint = resolve_endpoint(settings.docker)
    docker = connect(endpoint)
    try:
        inner = await docker.system.info()
        assert inner["ID"] != await main_daemon_id()  # really the daemon in the container
        sid, verdict = await judge_hello(docker, settings)
        assert verdict.status is Status.ACCEPTED, verdict
        assert await leftovers(docker, sid) == []
    finally:
        await docker.close()


async def main_daemon_id() -> str:
    docker = connect(resolve_endpoint(load_settings().docker))
    try:
        return str((await docker.system.info())["ID"])
    finally:
        await docker.close()
