"""Reaching Docker: unix socket (default), TCP with mutual TLS, or (only when allowed) plain TCP."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeAlias

import aiodocker

from streamworker.errors import ConfigError
from streamworker.settings import DockerSettings

ConnectionKind = Literal["unix", "tcp", "tls"]
DockerClient: TypeAlias = aiodocker.Docker
"""A connected client as code outside `streamworker.sandbox` holds it: an opaque handle
passed back to sandbox functions (`probe.ping`, `DockerSandbox`), never called itself."""


@dataclass(frozen=True)
class DockerEndpoint:
    """A resolved Docker endpoint: the URL aiodocker gets and how it is secured."""

    url: str
    kind: ConnectionKind
    ssl_context: ssl.SSLContext | None = None


def tls_context(cert_path: str) -> ssl.SSLContext:
    """Client context for mutual TLS from a Docker-style cert dir (ca.pem, cert.pem, key.pem)."""
    base = Path(cert_path)
    names = {"ca": base / "ca.pem", "cert": base / "cert.pem", "key": base / "key.pem"}
    for what, path in names.items():
        if not path.is_file():
            raise ConfigError("DOCKER_CERT_PATH", f"{what} file {path} is missing")
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(names["ca"]))
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            "DOCKER_CERT_PATH", f"{names['ca']} is not a readable PEM CA certificate ({exc})"
        ) from exc
    try:
        ctx.load_cert_chain(str(names["cert"]), str(names["key"]))
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            "DOCKER_CERT_PATH",
            f"{names['cert']} and {names['key']} are not a matching PEM certificate and key "
            f"({exc})",
        ) from exc
    return ctx


def resolve_endpoint(settings: DockerSettings) -> DockerEndpoint:
    """Turn settings into an endpoint, refusing plain TCP unless explicitly allowed."""
    host = settings.host
    if host.startswith("unix://"):
        return DockerEndpoint(host, "unix")
    if host.startswith(("tcp://", "https://", "http://")):
        rest = host.split("://", 1)[1]
        if settings.tls_verify or host.startswith("https://"):
            if not settings.cert_path:
                raise ConfigError("DOCKER_CERT_PATH", "TLS to Docker needs a cert directory")
            return DockerEndpoint(f"https://{rest}", "tls", tls_context(settings.cert_path))
        if not settings.allow_insecure_tcp:
            raise ConfigError(
                "DOCKER_HOST",
                f"{host} is plain TCP without TLS: anyone on that network controls Docker. "
                "Set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH, or "
                "STREAMWORKER_DOCKER_ALLOW_INSECURE_TCP=1 to accept the risk",
            )
        return DockerEndpoint(f"http://{rest}", "tcp")
    raise ConfigError("DOCKER_HOST", f"unsupported scheme in {host!r} (unix://, tcp://)")


def endpoint_of(docker: aiodocker.Docker) -> DockerEndpoint:
    """The endpoint a client talks to, as far as naming a failure needs (no TLS context).

    Lets a caller that holds only a client (`probe.ping`) explain a failure in the same
    words as one that resolved the endpoint itself.
    """
    # The URL as given: aiodocker rewrites `docker_host` of a unix socket to a dummy
    # `unix://localhost` for composing request URLs.
    url = str(docker._connection_info)
    if url.startswith("unix://"):
        return DockerEndpoint(url, "unix")
    return DockerEndpoint(url, "tls" if url.startswith("https://") else "tcp")


def connect(endpoint: DockerEndpoint) -> aiodocker.Docker:
    """An aiodocker client for the endpoint (no I/O until first request)."""
    if endpoint.ssl_context is not None:
        return aiodocker.Docker(url=endpoint.url, ssl_context=endpoint.ssl_context)
    return aiodocker.Docker(url=endpoint.url)
