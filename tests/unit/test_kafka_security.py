"""Kafka TLS/SASL settings: parsed strictly, turned into the same client arguments for
aiokafka and Faust, and their failures answered in one line naming the setting to fix."""

from __future__ import annotations

import dataclasses
import re
import ssl
import subprocess
from pathlib import Path

import pytest
from aiokafka.errors import SaslAuthenticationFailed
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from streamworker.bench.worker import settings_env
from streamworker.cli import explain
from streamworker.errors import ConfigError, KafkaAuthFailed, KafkaTlsFailed
from streamworker.kafka_security import aiokafka_kwargs, faust_credentials, first_broker
from streamworker.settings import KafkaSecurity, load_settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server and a client certificate, made by the script the stack uses."""
    out = tmp_path_factory.mktemp("tls")
    subprocess.run(["bash", str(REPO / "dev/tls.sh"), str(out)], check=True, capture_output=True)
    return out


def sasl_ssl(tls: Path, **extra: str) -> dict[str, str]:
    return {
        "STREAMWORKER_KAFKA_BOOTSTRAP": "127.0.0.1:9094",
        "STREAMWORKER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "STREAMWORKER_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "STREAMWORKER_KAFKA_SASL_USERNAME": "alice",
        "STREAMWORKER_KAFKA_SASL_PASSWORD": "s3cret",
        "STREAMWORKER_KAFKA_SSL_CAFILE": str(tls / "ca.pem"),
        **extra,
    }


def config_error(env: dict[str, str]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    return info.value


def test_plaintext_is_the_default() -> None:
    settings = load_settings({})
    assert settings.kafka_security == KafkaSecurity()
    assert aiokafka_kwargs(settings) == {
        "bootstrap_servers": "127.0.0.1:9092",
        "security_protocol": "PLAINTEXT",
    }
    assert faust_credentials(settings) is None


def test_sasl_ssl_with_scram(tls: Path) -> None:
    settings = load_settings(sasl_ssl(tls))
    kwargs = aiokafka_kwargs(settings)
    context = kwargs.pop("ssl_context")
    assert kwargs == {
        "bootstrap_servers": "127.0.0.1:9094",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "alice",
        "sasl_plain_password": "s3cret",
    }
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert len(context.get_ca_certs()) == 1  # our CA only, not the system's
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        ("SASL_SSL", {"STREAMWORKER_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256"}),
        ("SASL_PLAINTEXT", {"STREAMWORKER_KAFKA_SASL_MECHANISM": "PLAIN"}),
        ("SSL", {}),
    ],
)
def test_faust_gets_what_aiokafka_gets(tls: Path, name: str, extra: dict[str, str]) -> None:
    env = sasl_ssl(tls, STREAMWORKER_KAFKA_SECURITY_PROTOCOL=name, **extra)
    if name == "SASL_PLAINTEXT":
        del env["STREAMWORKER_KAFKA_SSL_CAFILE"]
    if name == "SSL":
        for key in ("MECHANISM", "USERNAME", "PASSWORD"):
            del env[f"STREAMWORKER_KAFKA_SASL_{key}"]
    settings = load_settings(env)
    ours = aiokafka_kwargs(settings)
    ours.pop("bootstrap_servers")
    faust_side = dict(credentials_to_aiokafka_auth(faust_credentials(settings)))
    faust_context = faust_side.pop("ssl_context", None)
    our_context = ours.pop("ssl_context", None)
    assert (faust_context is None) == (our_context is None) == (name == "SASL_PLAINTEXT")
    assert {k: v for k, v in faust_side.items() if v is not None} == ours
    assert ours["security_protocol"] == name


def test_mutual_tls_loads_our_certificate(tls: Path) -> None:
    env = {
        "STREAMWORKER_KAFKA_SECURITY_PROTOCOL": "SSL",
        "STREAMWORKER_KAFKA_SSL_CAFILE": str(tls / "ca.pem"),
        "STREAMWORKER_KAFKA_SSL_CERTFILE": str(tls / "client/cert.pem"),
        "STREAMWORKER_KAFKA_SSL_KEYFILE": str(tls / "client/key.pem"),
        "STREAMWORKER_KAFKA_SSL_CHECK_HOSTNAME": "false",
    }
    context = aiokafka_kwargs(load_settings(env))["ssl_context"]
    assert not context.check_hostname
    assert context.verify_mode is ssl.CERT_REQUIRED  # the chain is still verified
    mismatched = {**env, "STREAMWORKER_KAFKA_SSL_KEYFILE": str(tls / "server-key.pem")}
    with pytest.raises(ConfigError, match="STREAMWORKER_KAFKA_SSL_CERTFILE"):
        aiokafka_kwargs(load_settings(mismatched))


def test_a_ca_file_that_is_no_certificate_is_a_config_error(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate\n")
    env = {
        "STREAMWORKER_KAFKA_SECURITY_PROTOCOL": "SSL",
        "STREAMWORKER_KAFKA_SSL_CAFILE": str(bogus),
    }
    with pytest.raises(ConfigError, match="STREAMWORKER_KAFKA_SSL_CAFILE"):
        aiokafka_kwargs(load_settings(env))


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        ({"STREAMWORKER_KAFKA_SECURITY_PROTOCOL": "TLS"}, "SECURITY_PROTOCOL", "one of"),
        ({"STREAMWORKER_KAFKA_SASL_MECHANISM": "GSSAPI"}, "SASL_MECHANISM", "one of"),
        ({"STREAMWORKER_KAFKA_SASL_MECHANISM": ""}, "SASL_MECHANISM", "required"),
        ({"STREAMWORKER_KAFKA_SASL_USERNAME": ""}, "SASL_USERNAME", "required"),
        ({"STREAMWORKER_KAFKA_SASL_PASSWORD": ""}, "SASL_PASSWORD", "required"),
        ({"STREAMWORKER_KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"}, "SSL_CAFILE", "readable"),
        ({"STREAMWORKER_KAFKA_SSL_KEYFILE": "@key"}, "SSL_CERTFILE", "key file"),
        ({"STREAMWORKER_KAFKA_SSL_CHECK_HOSTNAME": "maybe"}, "SSL_CHECK_HOSTNAME", "boolean"),
        ({"STREAMWORKER_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}, "SECURITY_PROTOCOL", "SASL"),
        ({"STREAMWORKER_KAFKA_SECURITY_PROTOCOL": "SSL"}, "SECURITY_PROTOCOL", "SASL"),
    ],
)
def test_half_a_configuration_is_refused(
    tls: Path, change: dict[str, str], key: str, words: str
) -> None:
    env = sasl_ssl(tls, **change)
    env = {k: v.replace("@key", str(tls / "client/key.pem")) for k, v in env.items()}
    error = config_error(env)
    assert error.key == f"STREAMWORKER_KAFKA_{key}"
    assert words in error.message


def test_tls_files_under_a_protocol_without_tls_are_refused(tls: Path) -> None:
    env = sasl_ssl(tls, STREAMWORKER_KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT")
    error = config_error(env)
    assert error.key == "STREAMWORKER_KAFKA_SECURITY_PROTOCOL"
    assert "STREAMWORKER_KAFKA_SSL_CAFILE" in error.message


def test_the_bench_worker_gets_the_security_too(tls: Path) -> None:
    settings = load_settings(
        sasl_ssl(tls, STREAMWORKER_KAFKA_SSL_CHECK_HOSTNAME="0", STREAMWORKER_WORKER_ID="w")
    )
    env = settings_env(settings)
    assert env["STREAMWORKER_KAFKA_SASL_PASSWORD"] == "s3cret"
    assert env["STREAMWORKER_KAFKA_SSL_CHECK_HOSTNAME"] == "0"
    assert load_settings(env) == settings


@pytest.mark.parametrize(
    ("bootstrap", "expected"),
    [
        ("127.0.0.1:9094", ("127.0.0.1", 9094)),
        ("kafka-0.kafka:9093, kafka-1.kafka:9093", ("kafka-0.kafka", 9093)),
        ("[::1]:9092", ("::1", 9092)),
        ("broker", ("broker", 9092)),
    ],
)
def test_first_broker(bootstrap: str, expected: tuple[str, int]) -> None:
    assert first_broker(bootstrap) == expected


@pytest.mark.parametrize(
    ("error", "fix"),
    [
        (KafkaAuthFailed("Authentication failed"), "STREAMWORKER_KAFKA_SASL_PASSWORD"),
        (SaslAuthenticationFailed("Authentication failed"), "STREAMWORKER_KAFKA_SASL_PASSWORD"),
        (
            KafkaTlsFailed("not trusted: unable to get local issuer"),
            "STREAMWORKER_KAFKA_SSL_CAFILE",
        ),
        (
            ssl.SSLCertVerificationError(1, "certificate verify failed"),
            "sslrootcert in STREAMWORKER_DATABASE_URL",
        ),
    ],
)
def test_the_cli_says_what_to_fix(error: Exception, fix: str) -> None:
    message = explain(error, "submit")
    assert message is not None
    assert "\n" not in message
    assert fix in message


def test_every_kafka_client_is_built_from_the_one_place() -> None:
    """`bootstrap_servers=` anywhere else would be a client without TLS or SASL."""
    stray = [
        f"{path.relative_to(REPO)}:{number}"
        for folder in ("streamworker", "dev")
        for path in sorted((REPO / folder).rglob("*.py"))
        if path.name != "kafka_security.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\bbootstrap_servers\s*=", line)
    ]
    assert stray == []


def test_security_fields_map_to_their_variables() -> None:
    """The Helm chart maps exactly these names."""
    names = {f"STREAMWORKER_KAFKA_{f.name.upper()}" for f in dataclasses.fields(KafkaSecurity)}
    assert names == {
        "STREAMWORKER_KAFKA_SECURITY_PROTOCOL",
        "STREAMWORKER_KAFKA_SASL_MECHANISM",
        "STREAMWORKER_KAFKA_SASL_USERNAME",
        "STREAMWORKER_KAFKA_SASL_PASSWORD",
        "STREAMWORKER_KAFKA_SSL_CAFILE",
        "STREAMWORKER_KAFKA_SSL_CERTFILE",
        "STREAMWORKER_KAFKA_SSL_KEYFILE",
        "STREAMWORKER_KAFKA_SSL_CHECK_HOSTNAME",
    }
