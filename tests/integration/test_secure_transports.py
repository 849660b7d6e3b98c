"""Kafka over SASL_SSL, SASL_PLAINTEXT and mutual TLS, PostgreSQL with verify-full: for
real, against `dev/stack.sh up-kafka-secure` / `up-postgres-tls`, and their failures (a
wrong password, a CA that did not sign the server) answered in one line, not a hang.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.engine import make_url

from streamworker import kafka_security
from streamworker.audit.store import AuditStore
from streamworker.client import topic_partitions
from streamworker.errors import KafkaTlsFailed
from streamworker.kafka_security import aiokafka_kwargs
from streamworker.settings import load_settings
from tests.conftest import REPO, free_port, image_env, need
from tests.integration.test_replay import pg_schema_url  # noqa: F401  (a fixture)

pytestmark = [pytest.mark.integration]

EXE = str(Path(sys.executable).with_name("streamworker"))
SECURE = REPO / ".state/kafka-secure"
PG_CA = REPO / ".state/postgres-tls/ca.pem"
CLI_TIMEOUT_S = 90
HELLO = 'print("hello over", "tls")\n'


def stack(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(REPO / "dev/stack.sh"), command],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def read_env(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


@pytest.fixture(scope="session")
def secure_kafka() -> dict[str, dict[str, str]]:
    """The secure broker's client settings per listener (starts it when it is down)."""
    started = stack("up-kafka-secure")
    need(
        f"secure Kafka (dev/stack.sh up-kafka-secure: {started.stderr[-500:]})",
        started.returncode == 0,
    )
    return {
        name: read_env(SECURE / f"{name}.env") for name in ("sasl-ssl", "sasl-plaintext", "ssl")
    }


@pytest.fixture(scope="session")
def pg_tls(pg_url: str) -> Path:
    """The CA PostgreSQL's certificate is signed by (gives it one when it is not)."""
    done = stack("up-postgres-tls")
    need(
        f"PostgreSQL TLS (dev/stack.sh up-postgres-tls: {done.stderr[-500:]})", done.returncode == 0
    )
    return PG_CA


@pytest.fixture(scope="session")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA that signed nothing of ours."""
    out = tmp_path_factory.mktemp("other-ca")
    subprocess.run(["bash", str(REPO / "dev/tls.sh"), str(out)], check=True, capture_output=True)
    return out / "ca.pem"


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("STREAMWORKER_")}
    return subprocess.run(
        [EXE, *args],
        capture_output=True,
        text=True,
        env={**base, **image_env(), **env},
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


def one_line(done: subprocess.CompletedProcess[str], *words: str) -> str:
    """The CLI failed with exactly one line, no traceback, naming `words`."""
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def topics_env(tag: str) -> dict[str, str]:
    return {
        "STREAMWORKER_TOPIC_SUBMISSIONS": f"{tag}.submissions",
        "STREAMWORKER_TOPIC_RESULTS": f"{tag}.results",
        "STREAMWORKER_TOPIC_DLQ": f"{tag}.submissions.dlq",
        "STREAMWORKER_TOPIC_DOCKER_HEALTH": f"{tag}.docker-health",
    }


@pytest.mark.parametrize("listener", ["sasl-ssl", "sasl-plaintext", "ssl"])
def test_a_submission_end_to_end(
    secure_kafka: dict[str, dict[str, str]], start_worker: Any, tmp_path: Path, listener: str
) -> None:
    """SCRAM-SHA-512 over TLS, PLAIN without TLS, mutual TLS: worker and `streamworker submit`
    both on the secure broker's listener only."""
    security = secure_kafka[listener]
    worker = start_worker(STREAMWORKER_REQUIRED_LANGUAGES="python", **security)
    with urllib.request.urlopen(f"{worker.url}/health", timeout=10) as page:
        assert json.loads(page.read())["kafka"] == "connected"
    source = tmp_path / "hello.py"
    source.write_text(HELLO)
    topics = {k: v for k, v in worker.env.items() if k.startswith("STREAMWORKER_TOPIC_")}
    done = cli("submit", str(source), "--json", env={**security, **topics})
    assert done.returncode == 0, f"{done.stderr}\n{worker.log()}"
    result = json.loads(done.stdout)
    assert result["status"] == "accepted"
    assert result["runs"][0]["stdout"] == "hello over tls\n"


async def round_trip(env: dict[str, str]) -> list[bytes]:
    """Produce three records to a fresh topic and read them back, with our clients."""
    settings = load_settings(env)
    topic = f"sec-{uuid.uuid4().hex[:10]}"
    sent = [f"record-{i}".encode() for i in range(3)]
    producer = AIOKafkaProducer(**aiokafka_kwargs(settings), acks="all")
    consumer = AIOKafkaConsumer(**aiokafka_kwargs(settings), enable_auto_commit=False)
    try:
        await kafka_security.start(settings, producer, consumer)
        for value in sent:
            await producer.send_and_wait(topic, value)
        partitions = await topic_partitions(consumer, topic)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        got: list[bytes] = []
        async with asyncio.timeout(30):
            while len(got) < len(sent):
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    got.extend(r.value for r in records if r.value is not None)
        return sorted(got)
    finally:
        await producer.stop()
        await consumer.stop()


async def test_scram_sha_256_and_mutual_tls_round_trips(
    secure_kafka: dict[str, dict[str, str]],
) -> None:
    expected = [b"record-0", b"record-1", b"record-2"]
    scram_256 = {
        **secure_kafka["sasl-ssl"],
        "STREAMWORKER_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
    }
    assert await round_trip(scram_256) == expected
    assert await round_trip(secure_kafka["ssl"]) == expected


async def test_mutual_tls_refuses_a_client_without_a_certificate(
    secure_kafka: dict[str, dict[str, str]],
) -> None:
    """The SSL listener really wants our certificate, so the round trip above used it."""
    anonymous = {
        k: v for k, v in secure_kafka["ssl"].items() if "CERTFILE" not in k and "KEYFILE" not in k
    }
    with pytest.raises(KafkaTlsFailed, match="client certificate"):
        await round_trip(anonymous)


def test_wrong_password_is_one_line_from_submit_and_stops_the_worker(
    secure_kafka: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    wrong = {**secure_kafka["sasl-ssl"], "STREAMWORKER_KAFKA_SASL_PASSWORD": "not-the-password"}
    source = tmp_path / "hello.py"
    source.write_text(HELLO)
    tag = f"t{uuid.uuid4().hex[:10]}"
    began = time.monotonic()
    one_line(
        cli("submit", str(source), env={**wrong, **topics_env(tag)}),
        "Kafka refused us",
        "SaslAuthenticationFailed",
        "STREAMWORKER_KAFKA_SASL_PASSWORD",
    )
    # The worker does not retry a refused login for half a minute; it says why and exits.
    worker_env = {
        **wrong,
        **topics_env(tag),
        "STREAMWORKER_APP_ID": f"streamworker-{tag}",
        "STREAMWORKER_DATA_DIR": str(tmp_path / "data"),
        "STREAMWORKER_HTTP_PORT": str(free_port()),
    }
    done = cli("worker", env=worker_env)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1].startswith("streamworker: Kafka refused us")
    assert "Traceback" not in done.stderr
    assert time.monotonic() - began < 60


def test_untrusted_ca_is_one_line_from_submit_and_doctor(
    secure_kafka: dict[str, dict[str, str]], other_ca: Path, tmp_path: Path
) -> None:
    untrusted = {**secure_kafka["sasl-ssl"], "STREAMWORKER_KAFKA_SSL_CAFILE": str(other_ca)}
    source = tmp_path / "hello.py"
    source.write_text(HELLO)
    tag = f"t{uuid.uuid4().hex[:10]}"
    one_line(
        cli("submit", str(source), env={**untrusted, **topics_env(tag)}),
        "Kafka refused us",
        "certificate is not trusted",
        "STREAMWORKER_KAFKA_SSL_CAFILE",
    )
    doctor = cli(
        "doctor",
        "--json",
        env={
            **untrusted,
            **topics_env(tag),
            "STREAMWORKER_DATA_DIR": str(tmp_path / "data"),
            "STREAMWORKER_REQUIRED_LANGUAGES": "python",
        },
    )
    checks = {c["name"]: c for c in json.loads(doctor.stdout)}
    assert doctor.returncode == 1
    assert not checks["kafka"]["ok"]
    assert "certificate is not trusted" in checks["kafka"]["detail"]
    assert "STREAMWORKER_KAFKA_SSL_CAFILE" in checks["kafka"]["fix"]


# --- PostgreSQL --------------------------------------------------------------------------


def with_tls(url: str, **params: str) -> str:
    return make_url(url).update_query_dict(params).render_as_string(hide_password=False)


@pytest.fixture
async def verify_full_url(pg_tls: Path, pg_schema_url: str) -> AsyncIterator[str]:  # noqa: F811
    yield with_tls(pg_schema_url, sslmode="verify-full", sslrootcert=str(pg_tls))


def test_db_upgrade_and_history_with_verify_full(verify_full_url: str) -> None:
    env = {"STREAMWORKER_DATABASE_URL": verify_full_url}
    upgraded = cli("db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    history = cli("history", "--json", env=env)
    assert history.returncode == 0, history.stderr
    assert json.loads(history.stdout) == []


async def test_the_audit_store_connection_is_encrypted(verify_full_url: str) -> None:
    store = await AuditStore.open(verify_full_url)
    try:
        async with store.engine.connect() as conn:
            row = (
                await conn.execute(
                    text("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                )
            ).one()
    finally:
        await store.close()
    assert row.ssl is True
    assert row.version.startswith("TLSv1.")


def test_asyncpg_style_ssl_parameter_works_too(pg_tls: Path, pg_url: str) -> None:
    url = with_tls(pg_url, ssl="verify-full", sslrootcert=str(pg_tls))
    history = cli("history", "--json", "--limit", "1", env={"STREAMWORKER_DATABASE_URL": url})
    assert history.returncode == 0, history.stderr


def test_wrong_ca_for_the_database_is_one_line(pg_tls: Path, pg_url: str, other_ca: Path) -> None:
    url = with_tls(pg_url, sslmode="verify-full", sslrootcert=str(other_ca))
    one_line(
        cli("history", env={"STREAMWORKER_DATABASE_URL": url}),
        "TLS to the audit database failed",
        "certificate verify failed",
        "sslrootcert",
    )


def test_a_protocol_the_port_does_not_speak_is_named(
    secure_kafka: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    """SASL without TLS against the SASL_SSL port: the broker hangs up; say which setting."""
    plain_to_tls = {
        **secure_kafka["sasl-plaintext"],
        "STREAMWORKER_KAFKA_BOOTSTRAP": secure_kafka["sasl-ssl"]["STREAMWORKER_KAFKA_BOOTSTRAP"],
    }
    source = tmp_path / "hello.py"
    source.write_text(HELLO)
    one_line(
        cli("submit", str(source), env={**plain_to_tls, **topics_env(f"t{uuid.uuid4().hex[:10]}")}),
        "Kafka refused us",
        "TLS rather than SASL_PLAINTEXT",
        "STREAMWORKER_KAFKA_SECURITY_PROTOCOL",
    )
