"""The one place that turns `Settings.kafka_security` into what Kafka clients take.

Every aiokafka client of ours is built from `aiokafka_kwargs`, the Faust app from
`faust_credentials`, so TLS and SASL apply to all of them or to none. aiokafka reports a
refused login or an untrusted certificate only as "Unable to bootstrap" (the reason goes
to its log); `start` asks the broker once more, directly, and raises the typed reason.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any, Protocol

from aiokafka.conn import create_conn
from aiokafka.errors import (
    IllegalSaslStateError,
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)

from streamworker.errors import ConfigError, KafkaAuthFailed, KafkaRefused, KafkaTlsFailed
from streamworker.settings import KafkaSecurity, Settings

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT

AUTH_ERRORS = (SaslAuthenticationFailed, UnsupportedSaslMechanismError, IllegalSaslStateError)
"""What aiokafka raises when the broker refuses the SASL mechanism or the login."""
PROBE_TIMEOUT_MS = 10_000


def ssl_context(security: KafkaSecurity) -> ssl.SSLContext:
    """Verifying TLS: our CA file (else the system's CAs), the broker's name unless turned
    off, and our certificate when the broker asks for one (mutual TLS). Built afresh per
    client, so rotated files are read again."""
    try:
        context = ssl.create_default_context(cafile=security.ssl_cafile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError("STREAMWORKER_KAFKA_SSL_CAFILE", f"cannot load it: {exc}") from exc
    context.check_hostname = security.ssl_check_hostname
    if security.ssl_certfile:
        try:
            context.load_cert_chain(security.ssl_certfile, security.ssl_keyfile)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                "STREAMWORKER_KAFKA_SSL_CERTFILE", f"cannot load the certificate and key: {exc}"
            ) from exc
    return context


def security_kwargs(security: KafkaSecurity) -> dict[str, Any]:
    """aiokafka's security keywords (the same for clients, admin clients and connections)."""
    kwargs: dict[str, Any] = {"security_protocol": security.security_protocol}
    if security.uses_ssl:
        kwargs["ssl_context"] = ssl_context(security)
    if security.uses_sasl:
        kwargs["sasl_mechanism"] = security.sasl_mechanism
        kwargs["sasl_plain_username"] = security.sasl_username
        kwargs["sasl_plain_password"] = security.sasl_password
    return kwargs


def aiokafka_kwargs(settings: Settings) -> dict[str, Any]:
    """Keywords for any aiokafka client: the bootstrap servers and the security."""
    return {
        "bootstrap_servers": settings.kafka_bootstrap,
        **security_kwargs(settings.kafka_security),
    }


def faust_credentials(settings: Settings) -> CredentialsT | None:
    """Faust's `broker_credentials` for the same security; None for PLAINTEXT."""
    import faust  # here: the CLI's plain clients should not pay for importing Faust

    security = settings.kafka_security
    context = ssl_context(security) if security.uses_ssl else None
    if security.uses_sasl:
        return faust.SASLCredentials(
            username=security.sasl_username,
            password=security.sasl_password,
            ssl_context=context,
            mechanism=security.sasl_mechanism,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def first_broker(bootstrap: str) -> tuple[str, int]:
    """Host and port of the first bootstrap address (`host:port[,host:port...]`)."""
    first = bootstrap.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    return (host.strip("[]") or first, int(port)) if port.isdigit() else (first, 9092)


async def refusal(settings: Settings) -> KafkaRefused | None:
    """Why the first broker refuses us (TLS or SASL), or None: it lets us in, or it cannot
    be reached at all (which the caller's own error already says)."""
    host, port = first_broker(settings.kafka_bootstrap)
    kwargs = security_kwargs(settings.kafka_security)
    try:
        conn = await create_conn(host, port, request_timeout_ms=PROBE_TIMEOUT_MS, **kwargs)
    except AUTH_ERRORS as exc:
        return KafkaAuthFailed(_said(exc))
    except ssl.SSLCertVerificationError as exc:
        return KafkaTlsFailed(f"the broker's certificate is not trusted: {exc.verify_message}")
    except ssl.SSLError as exc:
        return KafkaTlsFailed(f"TLS handshake failed: {exc.reason or exc}")
    except KafkaConnectionError as exc:  # closed by the broker after we connected
        protocol = settings.kafka_security.security_protocol
        if settings.kafka_security.uses_ssl:
            return KafkaTlsFailed(
                f"{_said(exc)} after the TLS handshake: does the broker want a client "
                "certificate, or another security protocol on this port?"
            )
        if protocol == "PLAINTEXT":  # a broker going down closes connections too
            return None
        return KafkaRefused(f"{_said(exc)}: does this port want TLS rather than {protocol}?")
    except (OSError, KafkaError, TimeoutError):
        return None
    conn.close()
    return None


def _said(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or "refused"


class Startable(Protocol):
    async def start(self) -> None: ...


async def start(settings: Settings, *clients: Startable) -> None:
    """Start aiokafka clients in order; a broker that refuses us raises `KafkaAuthFailed`
    or `KafkaTlsFailed` instead of aiokafka's reasonless `KafkaConnectionError`."""
    try:
        for client in clients:
            await client.start()
    except KafkaConnectionError as exc:
        why = await refusal(settings)
        if why is None:
            raise
        raise why from exc
