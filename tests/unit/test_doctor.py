"""The doctor's machinery and wording, and the diagnosis of Docker connection failures."""

from __future__ import annotations

import asyncio
import errno
import json
import ssl
from pathlib import Path

import aiodocker
import pytest

from streamworker.doctor import (
    Check,
    CheckFailed,
    Doctor,
    _security,
    render_json,
    render_text,
    run_check,
)
from streamworker.sandbox.connection import DockerEndpoint
from streamworker.sandbox.tls import explain_failure
from streamworker.settings import DockerSettings, Settings

UNIX = DockerEndpoint("unix:///var/run/docker.sock", "unix")
TLS = DockerEndpoint("https://10.0.0.5:2376", "tls")
TCP = DockerEndpoint("http://10.0.0.5:2375", "tcp")


# -- running checks -------------------------------------------------------------------


async def test_a_passing_check_keeps_its_detail() -> None:
    async def fine() -> str:
        return "all good"

    check = await run_check("x", fine)
    assert (check.ok, check.detail, check.fix) == (True, "all good", None)


async def test_a_failing_check_carries_its_fix() -> None:
    async def broken() -> str:
        raise CheckFailed("socket missing", "run `make up`")

    check = await run_check("x", broken)
    assert (check.ok, check.detail, check.fix) == (False, "socket missing", "run `make up`")


async def test_a_hanging_check_is_cut_off_at_its_bound() -> None:
    async def hangs() -> str:
        await asyncio.Event().wait()
        return "never"

    check = await run_check("x", hangs, timeout_s=0.05)
    assert not check.ok and "0.05 s" in check.detail
    assert check.elapsed_s < 5  # the check alone never ends


async def test_an_unexpected_error_is_a_failed_check_not_a_crash() -> None:
    async def buggy() -> str:
        raise KeyError("Version")

    check = await run_check("x", buggy)
    assert not check.ok and "KeyError" in check.detail and check.fix


def test_text_is_a_checklist_with_fixes_and_a_total() -> None:
    text = render_text(
        [
            Check("docker.daemon", True, "Docker 20.10", None, 0.01),
            Check("database.schema", False, "not at head", "run `streamworker db upgrade`", 0.1),
        ]
    )
    lines = text.splitlines()
    assert lines[0].startswith("✔ docker.daemon") and "Docker 20.10" in lines[0]
    assert lines[1].startswith("✘ database.schema") and "not at head" in lines[1]
    assert lines[2].strip() == "fix: run `streamworker db upgrade`"
    assert lines[-1] == "1 of 2 checks passed"


def test_json_is_a_list_of_checks() -> None:
    checks = [Check("kafka", False, "down", "run `make up`", 0.5)]
    assert json.loads(render_json(checks)) == [
        {"name": "kafka", "ok": False, "detail": "down", "fix": "run `make up`", "elapsed_s": 0.5}
    ]


def test_security_options_are_named() -> None:
    assert _security(["name=seccomp,profile=default", "name=cgroupns"]) == [
        "seccomp (default profile)",
        "cgroupns",
    ]


# -- checks that need no service --------------------------------------------------------


async def test_plain_tcp_is_refused_and_docker_checks_are_skipped() -> None:
    doctor = Doctor(Settings(docker=DockerSettings(host="tcp://10.0.0.5:2375")))
    try:
        endpoint = await run_check("docker.endpoint", doctor.docker_endpoint)
        daemon = await run_check("docker.daemon", doctor.docker_daemon)
        sandbox = await run_check("sandbox.run", doctor.sandbox_run)
    finally:
        await doctor.close()
    assert not endpoint.ok and "plain TCP" in endpoint.detail
    assert endpoint.fix is not None and "DOCKER_TLS_VERIFY=1" in endpoint.fix
    assert not daemon.ok and daemon.detail.startswith("skipped")
    assert not sandbox.ok and sandbox.detail.startswith("skipped")


async def test_missing_cert_dir_points_at_cert_path(tmp_path: Path) -> None:
    settings = DockerSettings(host="tcp://10.0.0.5:2376", tls_verify=True, cert_path=str(tmp_path))
    doctor = Doctor(Settings(docker=settings))
    try:
        check = await run_check("docker.endpoint", doctor.docker_endpoint)
    finally:
        await doctor.close()
    assert not check.ok and "ca.pem" in check.detail
    assert check.fix is not None and "DOCKER_CERT_PATH" in check.fix


async def test_unix_endpoint_is_described() -> None:
    doctor = Doctor(Settings(docker=DockerSettings(host="unix:///run/x.sock")))
    try:
        check = await run_check("docker.endpoint", doctor.docker_endpoint)
    finally:
        await doctor.close()
    assert check.ok and check.detail == "unix:///run/x.sock (unix socket)"


# -- explaining connection failures --------------------------------------------------------


def wrapped(inner: BaseException) -> aiodocker.DockerError:
    """What aiodocker raises: a DockerError(900) whose context is the transport error."""
    try:
        try:
            raise inner
        except BaseException as exc:
            raise aiodocker.DockerError(900, f"Cannot connect to Docker Engine [{exc}]") from None
    except aiodocker.DockerError as outer:
        outer.__context__ = inner
        return outer


def cert_error(message: str) -> ssl.SSLCertVerificationError:
    err = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] {message}")
    err.verify_message = message
    return err


def alert(reason: str) -> ssl.SSLError:
    err = ssl.SSLError(1, f"[SSL: {reason}] alert")
    err.reason = reason
    return err


@pytest.mark.parametrize(
    ("endpoint", "error", "cause", "fix"),
    [
        (UNIX, FileNotFoundError(2, "No such file"), "no Docker socket at", "make up"),
        (UNIX, PermissionError(13, "denied"), "permission denied", "docker` group"),
        (UNIX, ConnectionRefusedError(111, "refused"), "nothing listens", "make up"),
        (TLS, cert_error("unable to get local issuer certificate"), "not signed by", "CERT_PATH"),
        (TLS, cert_error("IP address mismatch"), "does not name", "subjectAltName"),
        (TLS, cert_error("certificate has expired"), "has expired", "re-issue"),
        (TLS, alert("TLSV13_ALERT_CERTIFICATE_REQUIRED"), "rejected our client", "--tlscacert"),
        (TLS, alert("SSLV3_ALERT_BAD_CERTIFICATE"), "rejected our client", "cert.pem"),
        (TLS, ConnectionResetError(errno.ECONNRESET, "reset"), "rejected our client", "cert"),
        (TLS, alert("WRONG_VERSION_NUMBER"), "does not speak TLS", "TLS port"),
        (TCP, TimeoutError(), "did not answer in time", "docker info"),
    ],
)
def test_connection_failures_are_explained(
    endpoint: DockerEndpoint, error: BaseException, cause: str, fix: str
) -> None:
    diagnosis = explain_failure(wrapped(error), endpoint)
    assert cause in diagnosis.cause
    assert fix in diagnosis.fix


def test_http_to_a_tls_daemon_says_to_turn_on_tls() -> None:
    error = aiodocker.DockerError(400, "Client sent an HTTP request to an HTTPS server.")
    diagnosis = explain_failure(error, TCP)
    assert "requires TLS" in diagnosis.cause and "DOCKER_TLS_VERIFY=1" in diagnosis.fix


def test_a_reset_on_plain_tcp_is_not_blamed_on_certificates() -> None:
    diagnosis = explain_failure(wrapped(ConnectionResetError(104, "reset")), TCP)
    assert "certificate" not in diagnosis.cause
    assert "10.0.0.5:2375" in diagnosis.cause
