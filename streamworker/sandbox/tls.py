"""Why Docker could not be reached — TLS above all — in words an operator can act on.

aiodocker reports every transport failure as `DockerError(900, "Cannot connect …")`
with the real cause buried in the exception chain, and a daemon that rejects our client
certificate under TLS 1.3 shows up only as "connection reset by peer" after a handshake
that looked fine. `explain_failure` walks the chain and names the cause and the fix.
"""

from __future__ import annotations

import errno
import socket
import ssl
from collections.abc import Iterator
from typing import NamedTuple

from streamworker.sandbox.connection import DockerEndpoint

START_DOCKER = "start Docker: run `make up` (it starts dockerd), or `systemctl start docker`"
# OpenSSL reasons for alerts a daemon sends when it does not accept our client certificate.
_CLIENT_CERT_ALERTS = (
    "ALERT_BAD_CERTIFICATE",
    "ALERT_UNKNOWN_CA",
    "ALERT_CERTIFICATE_REQUIRED",
    "ALERT_CERTIFICATE_EXPIRED",
    "ALERT_CERTIFICATE_UNKNOWN",
    "ALERT_DECRYPT_ERROR",
)
_NOT_TLS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG")


class Diagnosis(NamedTuple):
    """A failure to reach Docker: what went wrong, and what to do about it."""

    cause: str
    fix: str


def causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps (cause, context, aiohttp's `os_error`)."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for attr in ("certificate_error", "os_error"):
            inner = getattr(current, attr, None)
            if isinstance(inner, BaseException):
                pending.append(inner)
        pending += [current.__cause__, current.__context__]


def _where(endpoint: DockerEndpoint) -> str:
    return endpoint.url.split("://", 1)[1] if endpoint.kind == "unix" else endpoint.url


def _reason(err: BaseException) -> str:
    return str(getattr(err, "reason", "") or "").upper()


def explain_failure(exc: BaseException, endpoint: DockerEndpoint) -> Diagnosis:
    """Name the cause of a failed request to `endpoint`, and the fix."""
    chain = list(causes(exc))
    where = _where(endpoint)
    tls = endpoint.kind == "tls"
    # aiohttp's certificate error subclasses ssl's too; the one inside has the details.
    verify = [err for err in chain if isinstance(err, ssl.SSLCertVerificationError)]
    if verify:
        return _server_cert(verify[-1], where)
    for err in chain:
        if isinstance(err, ssl.SSLError) and any(a in _reason(err) for a in _CLIENT_CERT_ALERTS):
            return _client_cert_rejected(where)
        if isinstance(err, ssl.SSLError) and any(r in _reason(err) for r in _NOT_TLS):
            return Diagnosis(
                f"{where} does not speak TLS ({_reason(err).lower()})",
                "point DOCKER_HOST at the daemon's TLS port (2376 by convention), "
                "or drop DOCKER_TLS_VERIFY if the daemon really serves plain TCP",
            )
    text = " ".join(str(err) for err in chain)
    if "HTTP request to an HTTPS server" in text:
        return Diagnosis(
            f"{where} requires TLS but we spoke plain HTTP",
            "set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH (a directory with ca.pem, "
            "cert.pem and key.pem)",
        )
    for err in chain:
        if isinstance(err, TimeoutError):
            return Diagnosis(
                f"{where} did not answer in time",
                "check that the daemon is alive and not overloaded (`docker info`)",
            )
        if isinstance(err, FileNotFoundError):
            return Diagnosis(f"no Docker socket at {where}", START_DOCKER)
        if isinstance(err, PermissionError):
            return Diagnosis(
                f"permission denied on {where}",
                "run as root, or add this user to the `docker` group",
            )
        if isinstance(err, ConnectionRefusedError):
            return Diagnosis(f"nothing listens at {where} (is dockerd running?)", START_DOCKER)
        if isinstance(err, socket.gaierror):
            return Diagnosis(f"cannot resolve the host of {where}: {err}", "fix DOCKER_HOST")
        if tls and (
            isinstance(err, ConnectionResetError)
            or getattr(err, "errno", None) == errno.ECONNRESET
            or type(err).__name__ == "ServerDisconnectedError"
        ):
            # TLS 1.3: the server checks our certificate after the client's side of the
            # handshake is done, so a rejection reaches us as a reset on the first read.
            return _client_cert_rejected(where, certain=False)
    first = str(chain[-1] if len(chain) > 1 else exc) or type(exc).__name__
    return Diagnosis(
        f"cannot reach Docker at {where}: {first}",
        "check DOCKER_HOST and that the daemon is running (`docker info`)",
    )


def _server_cert(err: ssl.SSLCertVerificationError, where: str) -> Diagnosis:
    detail = str(getattr(err, "verify_message", None) or err)
    if "mismatch" in detail.lower():
        return Diagnosis(
            f"the daemon's certificate does not name the host in {where} ({detail})",
            "re-issue the daemon's certificate with that host in its subjectAltName "
            "(e.g. `dev/tls.sh DIR IP:<address> DNS:<name>`), or connect by a name it holds",
        )
    if "expired" in detail.lower():
        return Diagnosis(
            f"the daemon's certificate at {where} has expired",
            "re-issue the daemon's --tlscert (dev/tls.sh makes a fresh set)",
        )
    return Diagnosis(
        f"the daemon's certificate at {where} is not signed by DOCKER_CERT_PATH/ca.pem ({detail})",
        "set DOCKER_CERT_PATH to the directory whose ca.pem signed the daemon's --tlscert",
    )


def _client_cert_rejected(where: str, certain: bool = True) -> Diagnosis:
    how = "" if certain else "closed the connection after the TLS handshake: most likely it "
    return Diagnosis(
        f"the daemon at {where} {how}rejected our client certificate",
        "DOCKER_CERT_PATH/cert.pem must be signed by the CA the daemon trusts (--tlscacert) "
        "and not expired; `dev/tls.sh` issues a matching set",
    )
