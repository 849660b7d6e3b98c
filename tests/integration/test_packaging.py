"""Packaging: the worker image (built for real), docker-compose.yml and the Helm chart.

Tools come from `dev/packaging/install-tools.sh` (helm built from the Go module proxy,
Debian's docker-compose, kubernetes-validate) and the image from
`dev/packaging/build-worker-image.sh`, which skips the build when the image's label
carries the hash of its inputs. A missing tool skips locally and fails in CI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.conftest import KAFKA, REPO, docker_ok, free_port, need, port_open

pytestmark = [pytest.mark.integration]

# A fresh machine bootstraps the base image and installs every dependency (≈ 4 min);
# `make test` builds the image before pytest, so the fixture usually finds it cached.
IMAGE_BUILD_TIMEOUT = pytest.mark.timeout(1800)
IMAGE = os.environ.get("STREAMWORKER_WORKER_IMAGE", "streamworker/worker:local")
CHART = REPO / "helm" / "streamworker"
COMPOSE_FILE = REPO / "docker-compose.yml"
# The socket's group as an operator would pass it (`stat -c %g /var/run/docker.sock`).
DOCKER_GID = "998"
WORKER_UID = "10001"
# Oldest Kubernetes the chart supports (native sidecars) and the newest schema shipped.
K8S_VERSIONS = ("1.29.0", "latest")
CRD_KINDS = {"ServiceMonitor", "ScaledObject", "PrometheusRule"}


def tool(name: str) -> str | None:
    """A tool from .state/bin (where the packaging scripts put them), else from PATH."""
    local = REPO / ".state" / "bin" / name
    return str(local) if os.access(local, os.X_OK) else shutil.which(name)


def run(argv: list[str], timeout_s: float = 120, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout_s, check=False, cwd=REPO, **kw
    )


# --- Dockerfile (static) -----------------------------------------------------------------


def test_dockerfile_is_multi_stage_non_root_with_tini_and_healthcheck() -> None:
    text = (REPO / "Dockerfile").read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    instructions = [line for line in lines if not line.startswith("#")]
    assert instructions[0] == "ARG BASE_IMAGE=streamworker-base/python:bookworm"
    assert "--build-arg BASE_IMAGE=python:3.11-slim-bookworm" in text
    froms = [line for line in instructions if line.startswith("FROM ")]
    assert froms == ["FROM ${BASE_IMAGE} AS builder", "FROM ${BASE_IMAGE}"]
    final = instructions[instructions.index(froms[-1]) :]
    users = [line.split()[1] for line in final if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0", "0:0")
    assert any(line.startswith("COPY --from=builder") for line in final)
    assert 'ENTRYPOINT ["tini", "--"]' in final
    assert any(line.startswith("HEALTHCHECK") for line in final)
    assert "/health" in text and "STREAMWORKER_HTTP_HOST=0.0.0.0" in text


def test_dockerignore_keeps_state_and_secrets_out_of_the_context() -> None:
    rules = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*", "an allow-list: everything is excluded first"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "streamworker", "migrations"}


# --- the worker image (real build) ---------------------------------------------------------


@pytest.fixture(scope="module")
def worker_image() -> str:
    need("Docker", docker_ok())
    script = REPO / "dev" / "packaging" / "build-worker-image.sh"
    built = run(["bash", str(script)], timeout_s=1800)
    assert built.returncode == 0, built.stdout + built.stderr
    # The second call finds the label's input hash unchanged and does nothing.
    again = run(["bash", str(script)], timeout_s=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "up to date" in again.stdout, again.stdout
    return IMAGE


def inspect(ref: str) -> dict[str, Any]:
    out = run(["docker", "image", "inspect", ref])
    assert out.returncode == 0, out.stderr
    image: dict[str, Any] = json.loads(out.stdout)[0]
    return image


@pytest.mark.slow
@IMAGE_BUILD_TIMEOUT
def test_image_config_is_non_root_tini_with_healthcheck(worker_image: str) -> None:
    config = inspect(worker_image)["Config"]
    assert config["User"] == f"{WORKER_UID}:{WORKER_UID}"
    assert config["Entrypoint"] == ["tini", "--"]
    assert config["Cmd"] == ["streamworker", "worker"]
    assert "/health" in " ".join(config["Healthcheck"]["Test"])
    assert config["Labels"]["org.streamworker.inputs-hash"]
    assert "STREAMWORKER_DATA_DIR=/var/lib/streamworker" in config["Env"]
    # The image keeps the loopback default: publishing needs an explicit 0.0.0.0.
    assert not any(env.startswith("STREAMWORKER_HTTP_HOST=") for env in config["Env"])


@pytest.mark.slow
@IMAGE_BUILD_TIMEOUT
def test_image_runs_the_cli_as_non_root(worker_image: str) -> None:
    base = ["docker", "run", "--rm", "--network", "none", worker_image]
    helped = run([*base, "streamworker", "--help"])
    assert helped.returncode == 0, helped.stderr
    assert "usage: streamworker" in helped.stdout
    who = run([*base, "id", "-u"])
    assert who.returncode == 0 and who.stdout.strip() == WORKER_UID
    pid1 = run([*base, "cat", "/proc/1/cmdline"])
    assert pid1.stdout.split("\0")[0].endswith("tini")


@pytest.mark.slow
@IMAGE_BUILD_TIMEOUT
def test_image_migrates_sqlite_on_a_read_only_root(worker_image: str) -> None:
    """The Alembic scripts are packaged, and nothing needs a writable root filesystem."""
    argv = ["docker", "run", "--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp"]
    argv += ["--cap-drop", "ALL", "--security-opt", "no-new-privileges", worker_image]
    argv += ["streamworker", "db", "upgrade", "--url", "sqlite+aiosqlite:////tmp/audit.db"]
    migrated = run(argv)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert "database migrated" in migrated.stdout


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


@pytest.fixture
def container_names() -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        run(["docker", "rm", "-f", name])


@pytest.mark.slow
@IMAGE_BUILD_TIMEOUT
def test_container_worker_is_healthy_against_the_stack(
    worker_image: str, container_names: list[str]
) -> None:
    """The image as deployed: socket mount, its group, read-only root, tini, HEALTHCHECK."""
    host, port = KAFKA.rsplit(":", 1)
    need("Kafka", port_open(host, int(port)))
    tag = f"pkg{uuid.uuid4().hex[:8]}"
    http_port = free_port()
    name = f"streamworker-test-{tag}"
    container_names.append(name)
    gid = str(os.stat("/var/run/docker.sock").st_gid)
    env = {
        "STREAMWORKER_KAFKA_BOOTSTRAP": KAFKA,
        "STREAMWORKER_APP_ID": f"streamworker-{tag}",
        "STREAMWORKER_TOPIC_SUBMISSIONS": f"{tag}.submissions",
        "STREAMWORKER_TOPIC_RESULTS": f"{tag}.results",
        "STREAMWORKER_TOPIC_DLQ": f"{tag}.submissions.dlq",
        "STREAMWORKER_TOPIC_DOCKER_HEALTH": f"{tag}.docker-health",
        "STREAMWORKER_HTTP_PORT": str(http_port),
        "STREAMWORKER_DATABASE_URL": "sqlite+aiosqlite:////var/lib/streamworker/audit.db",
    }
    argv = ["docker", "run", "-d", "--name", name, "--network", "host", "--read-only"]
    argv += ["--tmpfs", "/tmp", "--tmpfs", f"/var/lib/streamworker:uid={WORKER_UID}"]
    argv += ["--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
    argv += ["-v", "/var/run/docker.sock:/var/run/docker.sock", "--group-add", gid]
    argv += ["--health-interval", "2s", "--health-start-period", "60s"]
    for key, value in env.items():
        argv += ["-e", f"{key}={value}"]
    argv += [worker_image, "sh", "-c", "streamworker db upgrade && exec streamworker worker"]
    started = run(argv)
    assert started.returncode == 0, started.stderr
    deadline = time.monotonic() + 120
    status = ""
    while time.monotonic() < deadline:
        state = json.loads(run(["docker", "inspect", name]).stdout)[0]["State"]
        assert state["Running"], run(["docker", "logs", name]).stderr[-3000:]
        status = state.get("Health", {}).get("Status", "")
        if status == "healthy":
            break
        time.sleep(1)
    logs = run(["docker", "logs", name])
    assert status == "healthy", logs.stdout[-2000:] + logs.stderr[-3000:]
    assert http_status(f"http://127.0.0.1:{http_port}/health") == 200
    assert http_status(f"http://127.0.0.1:{http_port}/metrics") == 200
    stopped = run(["docker", "stop", "-t", "40", name], timeout_s=60)
    assert stopped.returncode == 0
    exit_code = json.loads(run(["docker", "inspect", name]).stdout)[0]["State"]["ExitCode"]
    assert exit_code == 0, "SIGTERM through tini is a clean stop"


# --- docker-compose.yml ------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The file as Docker Compose itself resolves it (schema, anchors, interpolation)."""
    binary = tool("docker-compose")
    need("docker-compose (dev/packaging/install-tools.sh compose)", binary is not None)
    assert binary is not None
    own = ("KAFKA_", "POSTGRES_", "GATEWAY_", "STREAMWORKER_GATEWAY_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(own)}
    resolved = run(
        [binary, "-f", str(COMPOSE_FILE), "config"], env={**env, "DOCKER_GID": DOCKER_GID}
    )
    assert resolved.returncode == 0, resolved.stderr
    config: dict[str, Any] = yaml.safe_load(resolved.stdout)
    return config


def test_compose_services_and_profiles(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {
        "kafka",
        "postgres",
        "migrate",
        "worker",
        "dind",
        "worker-dind",
        "worker-remote-tls",
        "gateway",
    }
    for always in ("kafka", "postgres", "migrate", "worker", "gateway"):
        assert "profiles" not in services[always], always
    assert services["dind"]["profiles"] == ["dind"]
    assert services["worker-dind"]["profiles"] == ["dind"]
    assert services["worker-remote-tls"]["profiles"] == ["remote-tls"]


def test_compose_start_order_and_healthchecks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    ready = {"condition": "service_healthy"}
    for worker in ("worker", "worker-dind", "worker-remote-tls"):
        depends = services[worker]["depends_on"]
        assert depends["kafka"] == ready and depends["postgres"] == ready
        assert depends["migrate"] == {"condition": "service_completed_successfully"}
        assert services[worker]["healthcheck"]["test"], worker
    assert services["worker-dind"]["depends_on"]["dind"] == ready
    assert services["migrate"]["depends_on"] == {"postgres": ready}
    assert services["migrate"]["command"] == ["streamworker", "db", "upgrade"]
    for name in ("kafka", "postgres", "dind"):
        assert services[name]["healthcheck"]["test"], name


def published(service: dict[str, Any]) -> list[str]:
    ports = service.get("ports", [])
    return [p if isinstance(p, str) else f"{p.get('host_ip', '')}:{p['published']}" for p in ports]


def test_compose_publishes_on_loopback_only(compose: dict[str, Any]) -> None:
    found = 0
    for name, service in compose["services"].items():
        for port in published(service):
            found += 1
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port}"
    assert found >= 6
    assert published(compose["services"]["gateway"]) == ["127.0.0.1:2358:2358/tcp"]


def test_compose_gateway(compose: dict[str, Any]) -> None:
    """The worker image running `streamworker gateway`: no Docker access, locked down,
    started once Kafka answers and the migrations are in, healthy on /health."""
    services = compose["services"]
    gateway = services["gateway"]
    assert gateway["image"] == services["worker"]["image"]
    assert gateway["command"] == ["streamworker", "gateway"]
    assert gateway["read_only"] is True and gateway["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in gateway["security_opt"]
    assert not gateway.get("privileged") and "group_add" not in gateway
    assert not any("docker.sock" in v for v in gateway.get("volumes", []))
    env = gateway["environment"]
    assert not [k for k in env if k.startswith("DOCKER_")]
    assert env["STREAMWORKER_GATEWAY_HOST"] == "0.0.0.0", "inside its container only"
    assert env["STREAMWORKER_GATEWAY_PORT"] == "2358"
    assert env["STREAMWORKER_KAFKA_BOOTSTRAP"] == "kafka:19092"
    assert env["STREAMWORKER_DATABASE_URL"].startswith("postgresql+asyncpg://")
    # Secrets come from the caller's environment only; unset, none.
    for secret in ("TENANTS", "ADMIN_TOKENS", "CALLBACK_SECRET"):
        assert env[f"STREAMWORKER_GATEWAY_{secret}"] == "", secret
    assert gateway["depends_on"]["kafka"] == {"condition": "service_healthy"}
    assert gateway["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    test = " ".join(gateway["healthcheck"]["test"])
    assert "127.0.0.1:2358/health" in test


def test_compose_gateway_port_and_secrets_from_the_environment() -> None:
    binary = tool("docker-compose")
    need("docker-compose (dev/packaging/install-tools.sh compose)", binary is not None)
    assert binary is not None
    env = {**os.environ, "DOCKER_GID": DOCKER_GID, "GATEWAY_HTTP_PORT": "12358"}
    env["STREAMWORKER_GATEWAY_TENANTS"] = "alice:alice-token-0123456789abcdef"
    resolved = run([binary, "-f", str(COMPOSE_FILE), "config"], env=env)
    assert resolved.returncode == 0, resolved.stderr
    gateway = yaml.safe_load(resolved.stdout)["services"]["gateway"]
    assert published(gateway) == ["127.0.0.1:12358:2358/tcp"]
    tenants = gateway["environment"]["STREAMWORKER_GATEWAY_TENANTS"]
    assert tenants == "alice:alice-token-0123456789abcdef"
    assert "alice-token" not in COMPOSE_FILE.read_text(), "never written in the file"


def test_compose_worker_docker_access_modes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("worker", "worker-dind", "worker-remote-tls", "migrate"):
        service = services[name]
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
    for name in ("worker", "worker-dind", "worker-remote-tls"):
        assert services[name]["environment"]["STREAMWORKER_HTTP_HOST"] == "0.0.0.0"
        assert services[name]["environment"]["STREAMWORKER_KAFKA_BOOTSTRAP"] == "kafka:19092"

    socket = services["worker"]
    assert socket["environment"]["DOCKER_HOST"] == "unix:///var/run/docker.sock"
    assert any("/var/run/docker.sock:/var/run/docker.sock" in v for v in socket["volumes"])
    assert socket["group_add"] == [DOCKER_GID], "uid 10001 joins the socket's group only"

    dind, worker_dind = services["dind"], services["worker-dind"]
    assert dind["privileged"] is True and not worker_dind.get("privileged")
    assert dind["environment"]["DOCKER_TLS_CERTDIR"] == "/certs"
    assert dind["hostname"] == "dind"
    env = worker_dind["environment"]
    assert env["DOCKER_HOST"] == "tcp://dind:2376" and env["DOCKER_TLS_VERIFY"] == "1"
    assert env["DOCKER_CERT_PATH"] == "/certs/client"
    assert "dind-certs:/certs:ro" in worker_dind["volumes"]
    assert any(v.startswith("dind-certs:/certs") for v in dind["volumes"])
    assert not any("docker.sock" in v for v in worker_dind["volumes"])

    remote = services["worker-remote-tls"]["environment"]
    assert remote["DOCKER_HOST"].startswith("tcp://") and remote["DOCKER_TLS_VERIFY"] == "1"
    assert any(v.endswith(":/certs:ro") for v in services["worker-remote-tls"]["volumes"])


def test_compose_kafka_is_single_node_kraft(compose: dict[str, Any]) -> None:
    env = compose["services"]["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert "INTERNAL://kafka:19092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"


def test_compose_interpolation_keeps_ports_and_listeners_consistent() -> None:
    binary = tool("docker-compose")
    need("docker-compose (dev/packaging/install-tools.sh compose)", binary is not None)
    assert binary is not None
    env = {**os.environ, "KAFKA_HOST_PORT": "19092", "REMOTE_DOCKER_HOST": "tcp://d.test:2376"}
    env["DOCKER_GID"] = DOCKER_GID
    resolved = run([binary, "-f", str(COMPOSE_FILE), "config"], env=env)
    assert resolved.returncode == 0, resolved.stderr
    services = yaml.safe_load(resolved.stdout)["services"]
    assert published(services["kafka"])[0].startswith("127.0.0.1:19092:9092")
    listeners = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert "EXTERNAL://127.0.0.1:19092" in listeners
    remote = services["worker-remote-tls"]["environment"]["DOCKER_HOST"]
    assert remote == "tcp://d.test:2376"


@pytest.mark.parametrize("profile", [[], ["--profile", "dind"]])
def test_compose_refuses_to_start_without_the_sockets_group(profile: list[str]) -> None:
    """No guessed group (root's 0 was the old default): Compose stops and says what to set."""
    binary = tool("docker-compose")
    need("docker-compose (dev/packaging/install-tools.sh compose)", binary is not None)
    assert binary is not None
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_GID"}
    resolved = run([binary, "-f", str(COMPOSE_FILE), *profile, "config"], env=env)
    assert resolved.returncode != 0
    assert "set DOCKER_GID to the group of /var/run/docker.sock" in resolved.stderr
    assert "stat -c %g /var/run/docker.sock" in resolved.stderr
    empty = run([binary, "-f", str(COMPOSE_FILE), "config"], env={**env, "DOCKER_GID": ""})
    assert empty.returncode != 0 and "set DOCKER_GID" in empty.stderr


# --- the Helm chart ------------------------------------------------------------------------

# What every install chooses, there being no default: the database URL (or an existing
# Secret), the Docker mode (and in socket mode the socket's group), and the NetworkPolicy's
# peers for Kafka and PostgreSQL (none named: no egress to them).
DATABASE = "database.url=postgresql+asyncpg://sw:s3cret@db.jobs:5432/sw"
PEERS = [
    "networkPolicy.egress.kafka.to[0].ipBlock.cidr=10.20.0.0/24",
    "networkPolicy.egress.database.to[0].podSelector.matchLabels.app=postgres",
    "networkPolicy.ingress.from[0].namespaceSelector.matchLabels.name=monitoring",
]
DOCKER_PEERS = ["networkPolicy.egress.docker.to[0].ipBlock.cidr=10.30.0.5/32"]
SOCKET = ["docker.mode=socket", f"docker.socket.groupId={DOCKER_GID}"]
# The gateway's secrets, given inline (the chart puts them into a Secret of its own).
TENANTS = "alice:alice-token-0123456789abcdef,bob:bob-token-0123456789abcdef:30:10"
ADMIN_TOKENS = "admin-token-0123456789abcdef"
CALLBACK_SECRET = "callback-s3cret-0123456789abcdef"
GATEWAY_SECRETS = [
    f"gateway.auth.tenants={TENANTS.replace(',', chr(92) + ',')}",
    f"gateway.auth.adminTokens={ADMIN_TOKENS}",
    f"gateway.auth.callbackSecret={CALLBACK_SECRET}",
]
MODES: dict[str, list[str]] = {
    "socket": [DATABASE, *PEERS, *SOCKET],
    "socket-root-group": [
        DATABASE,
        "docker.mode=socket",
        "docker.socket.groupId=0",
        "docker.socket.allowRootGroup=true",
    ],
    "dind": [DATABASE, *PEERS, "docker.mode=dind"],
    "dind-plain-sidecar": [DATABASE, *PEERS, "docker.mode=dind", "docker.dind.nativeSidecar=false"],
    "remoteTls-inline": [
        DATABASE,
        *PEERS,
        *DOCKER_PEERS,
        "docker.mode=remoteTls",
        "docker.remoteTls.caPem=CA",
        "docker.remoteTls.certPem=CERT",
        "docker.remoteTls.keyPem=KEY",
    ],
    "remoteTls-secret": [
        DATABASE,
        *PEERS,
        *DOCKER_PEERS,
        "docker.mode=remoteTls",
        "docker.remoteTls.existingSecret=docker-tls",
    ],
    "kafka-sasl-inline": [
        DATABASE,
        *PEERS,
        *SOCKET,
        "kafka.security.protocol=SASL_PLAINTEXT",
        "kafka.security.sasl.mechanism=SCRAM-SHA-512",
        "kafka.security.sasl.username=worker",
        "kafka.security.sasl.password=kafka-s3cret",
    ],
    "everything": [
        "docker.mode=dind",
        *PEERS,
        "metrics.serviceMonitor.enabled=true",
        "metrics.prometheusRule.enabled=true",
        "autoscaling.keda.enabled=true",
        "database.existingSecret=db",
        "probes.readiness.path=/ready",
        "kafka.security.protocol=SASL_SSL",
        "kafka.security.sasl.mechanism=SCRAM-SHA-256",
        "kafka.security.sasl.username=worker",
        "kafka.security.sasl.existingSecret=kafka-creds",
        "kafka.security.sasl.existingSecretKey=pw",
        "kafka.security.ssl.existingSecret=kafka-tls",
        "kafka.security.ssl.certFile=tls.crt",
        "kafka.security.ssl.keyFile=tls.key",
    ],
    "hpa": [
        DATABASE,
        "docker.mode=dind",
        "autoscaling.hpa.enabled=true",
        "networkPolicy.enabled=false",
    ],
    "gateway-off": [DATABASE, *PEERS, *SOCKET, "gateway.enabled=false"],
    # Every optional object of the gateway, inline secrets, Kafka over SASL_SSL with TLS files.
    "gateway-full": [
        DATABASE,
        *PEERS,
        *DOCKER_PEERS,
        "docker.mode=remoteTls",
        "docker.remoteTls.existingSecret=docker-tls",
        "metrics.serviceMonitor.enabled=true",
        "kafka.security.protocol=SASL_SSL",
        "kafka.security.sasl.mechanism=SCRAM-SHA-512",
        "kafka.security.sasl.username=worker",
        "kafka.security.sasl.password=kafka-s3cret",
        "kafka.security.ssl.existingSecret=kafka-tls",
        *GATEWAY_SECRETS,
        "gateway.config.STREAMWORKER_GATEWAY_CALLBACK_ALLOW=10.40.0.0/16",
        "gateway.ingress.enabled=true",
        "gateway.ingress.className=nginx",
        "gateway.ingress.annotations.nginx\\.ingress\\.kubernetes\\.io/proxy-body-size=8m",
        "gateway.ingress.hosts[0].host=judge0.example.internal",
        "gateway.ingress.tls[0].secretName=judge0-tls",
        "gateway.ingress.tls[0].hosts[0]=judge0.example.internal",
        "gateway.autoscaling.enabled=true",
        "gateway.podDisruptionBudget.minAvailable=1",
        "gateway.networkPolicy.ingress.from[0].namespaceSelector.matchLabels.name=ingress-nginx",
        "gateway.networkPolicy.egress.callbacks.cidrs[0]=203.0.113.0/24",
        "gateway.networkPolicy.egress.callbacks.cidrs[1].cidr=0.0.0.0/0",
        "gateway.networkPolicy.egress.callbacks.cidrs[1].except[0]=10.0.0.0/8",
    ],
    "gateway-existing-secret": [
        DATABASE,
        *PEERS,
        "docker.mode=dind",
        "gateway.auth.existingSecret=gateway-auth",
        "gateway.replicaCount=3",
        "gateway.podDisruptionBudget.enabled=false",
        "gateway.topologySpreadConstraints=null",
    ],
}


@pytest.fixture(scope="module")
def helm() -> str:
    binary = tool("helm")
    need("helm (dev/packaging/install-tools.sh helm)", binary is not None)
    assert binary is not None
    return binary


def set_args(values: list[str]) -> list[str]:
    return [arg for value in values for arg in ("--set", value)]


def render(helm: str, values: list[str]) -> list[dict[str, Any]]:
    out = run([helm, "template", "sw", str(CHART), "--namespace", "jobs", *set_args(values)])
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(docs, kind)
    assert len(found) == 1, f"{len(found)} {kind}"
    return found[0]


# The release `sw` names the worker's objects sw-streamworker, the gateway's
# sw-streamworker-gateway.
WORKER = "sw-streamworker"
GATEWAY = "sw-streamworker-gateway"


def named(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [doc for doc in by_kind(docs, kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"{len(found)} {kind} {name}"
    return found[0]


@pytest.mark.parametrize("mode", MODES)
def test_helm_lint_strict(helm: str, mode: str) -> None:
    linted = run([helm, "lint", "--strict", str(CHART), *set_args(MODES[mode])])
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert "0 chart(s) failed" in linted.stdout


@pytest.mark.parametrize("mode", MODES)
def test_helm_manifests_match_kubernetes_schemas(helm: str, mode: str) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    docs = render(helm, MODES[mode])
    for doc in docs:
        if doc["kind"] in CRD_KINDS:
            continue  # CRDs have no schema in kubernetes-validate: checked below instead
        for version in K8S_VERSIONS:
            wanted = kubernetes_validate.latest_version() if version == "latest" else version
            try:
                kubernetes_validate.validate(doc, wanted, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{doc['kind']} {doc['metadata']['name']} ({wanted}): {exc}")


def worker_pod(docs: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = named(docs, "Deployment", WORKER)["spec"]["template"]["spec"]
    return spec


def gateway_pod(docs: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = named(docs, "Deployment", GATEWAY)["spec"]["template"]["spec"]
    return spec


def container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    found = [c for c in pod.get("containers", []) + pod.get("initContainers", [])]
    matches = [c for c in found if c["name"] == name]
    assert len(matches) == 1, name
    match: dict[str, Any] = matches[0]
    return match


def env_of(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


def assert_hardened_worker(pod: dict[str, Any]) -> None:
    ctx = pod["securityContext"]
    assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] == 10001
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    worker = container(pod, "worker")
    sec = worker["securityContext"]
    assert sec["readOnlyRootFilesystem"] is True
    assert sec["allowPrivilegeEscalation"] is False
    assert sec["capabilities"]["drop"] == ["ALL"]
    assert not sec.get("privileged")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert worker[probe]["httpGet"]["port"] == "http"
    mounts = {m["mountPath"] for m in worker["volumeMounts"]}
    assert {"/var/lib/streamworker", "/tmp"} <= mounts


def test_helm_socket_mode(helm: str) -> None:
    docs = render(helm, MODES["socket"])
    pod = worker_pod(docs)
    assert_hardened_worker(pod)
    assert [c["name"] for c in pod["containers"]] == ["worker"]
    assert "initContainers" not in pod
    socket = next(v for v in pod["volumes"] if v["name"] == "docker-socket")
    assert socket["hostPath"] == {"path": "/var/run/docker.sock", "type": "Socket"}
    assert pod["securityContext"]["supplementalGroups"] == [int(DOCKER_GID)]
    assert env_of(container(pod, "worker"))["DOCKER_HOST"] == "unix:///var/run/docker.sock"
    worker = container(pod, "worker")
    assert worker["livenessProbe"]["httpGet"]["path"] == "/health"
    assert worker["readinessProbe"]["httpGet"]["path"] == "/health"


@pytest.mark.parametrize("mode", ["dind", "dind-plain-sidecar"])
def test_helm_dind_mode_only_the_sidecar_is_privileged(helm: str, mode: str) -> None:
    pod = worker_pod(render(helm, MODES[mode]))
    assert_hardened_worker(pod)
    dind = container(pod, "dind")
    assert dind["securityContext"]["privileged"] is True
    native = mode == "dind"
    assert (dind in pod.get("initContainers", [])) is native
    assert (dind.get("restartPolicy") == "Always") is native
    others = [c for c in pod["containers"] + pod.get("initContainers", []) if c is not dind]
    assert all(not c.get("securityContext", {}).get("privileged") for c in others)
    certs = next(v for v in pod["volumes"] if v["name"] == "docker-certs")
    assert "emptyDir" in certs
    dind_mounts = {m["name"]: m for m in dind["volumeMounts"]}
    worker_mounts = {m["name"]: m for m in container(pod, "worker")["volumeMounts"]}
    assert dind_mounts["docker-certs"]["mountPath"] == "/certs"
    assert worker_mounts["docker-certs"]["readOnly"] is True
    assert {"name": "DOCKER_TLS_CERTDIR", "value": "/certs"} in dind["env"]
    env = env_of(container(pod, "worker"))
    assert env["DOCKER_HOST"] == "tcp://127.0.0.1:2376" and env["DOCKER_TLS_VERIFY"] == "1"
    assert env["DOCKER_CERT_PATH"] == "/certs/client"
    assert not any("hostPath" in v for v in pod["volumes"])


@pytest.mark.parametrize("mode", ["remoteTls-inline", "remoteTls-secret"])
def test_helm_remote_tls_mode(helm: str, mode: str) -> None:
    docs = render(helm, MODES[mode])
    pod = worker_pod(docs)
    assert_hardened_worker(pod)
    tls = next(v for v in pod["volumes"] if v["name"] == "docker-tls")
    secret_name = tls["secret"]["secretName"]
    secrets = {s["metadata"]["name"]: s for s in by_kind(docs, "Secret")}
    if mode == "remoteTls-secret":
        assert secret_name == "docker-tls" and secret_name not in secrets
    else:
        assert set(secrets[secret_name]["stringData"]) == {"ca.pem", "cert.pem", "key.pem"}
    env = env_of(container(pod, "worker"))
    assert env["DOCKER_HOST"].startswith("tcp://") and env["DOCKER_CERT_PATH"] == "/certs"
    policy = named(docs, "NetworkPolicy", WORKER)
    ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert ports == {53, 9092, 5432, 2376}


def test_helm_config_secret_service_and_migration_hook(helm: str) -> None:
    docs = render(helm, MODES["socket"])
    configs = {c["metadata"]["name"]: c for c in by_kind(docs, "ConfigMap")}
    assert set(configs) == {WORKER, f"{WORKER}-dashboard", GATEWAY}
    config = configs["sw-streamworker"]["data"]
    assert config["STREAMWORKER_HTTP_HOST"] == "0.0.0.0"
    assert config["STREAMWORKER_APP_ID"] == "streamworker"
    assert config["STREAMWORKER_TOPIC_SUBMISSIONS"] == "streamworker.submissions"
    assert all(key.startswith("STREAMWORKER_") for key in config)
    worker = container(worker_pod(docs), "worker")
    assert worker["envFrom"] == [{"configMapRef": {"name": "sw-streamworker"}}]
    db_ref = env_of(worker)["STREAMWORKER_DATABASE_URL"]["secretKeyRef"]
    assert db_ref == {"name": "sw-streamworker-db", "key": "database-url"}
    assert "STREAMWORKER_DATABASE_URL" not in config, "the URL holds a password: Secret only"

    service = named(docs, "Service", WORKER)
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 6066, "targetPort": "http", "protocol": "TCP"}
    ]
    job = one(docs, "Job")
    hooks = job["metadata"]["annotations"]
    assert hooks["helm.sh/hook"] == "pre-install,pre-upgrade"
    job_pod = job["spec"]["template"]["spec"]
    assert job_pod["restartPolicy"] == "Never"
    migrate = container(job_pod, "migrate")
    assert migrate["args"] == ["streamworker", "db", "upgrade"]
    assert migrate["securityContext"]["readOnlyRootFilesystem"] is True
    # Hooks run before the release's Secret exists: the Job's own copy is a hook too.
    job_secret = env_of(migrate)["STREAMWORKER_DATABASE_URL"]["secretKeyRef"]["name"]
    hook_secret = next(s for s in by_kind(docs, "Secret") if s["metadata"]["name"] == job_secret)
    secret_hooks = hook_secret["metadata"]["annotations"]
    assert secret_hooks["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert int(secret_hooks["helm.sh/hook-weight"]) < int(hooks["helm.sh/hook-weight"])
    assert "serviceAccountName" not in job_pod


def test_helm_network_policy_allows_only_dependencies(helm: str) -> None:
    policy = named(render(helm, MODES["socket"]), "NetworkPolicy", WORKER)["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "streamworker",
        "app.kubernetes.io/instance": "sw",
    }
    # Workers and the migration Job; the gateway has its own policy (no Docker egress).
    assert policy["podSelector"]["matchExpressions"] == [
        {"key": "app.kubernetes.io/component", "operator": "In", "values": ["worker", "migrate"]}
    ]
    egress = {(p["port"], p["protocol"]) for rule in policy["egress"] for p in rule["ports"]}
    assert egress == {(53, "UDP"), (53, "TCP"), (9092, "TCP"), (5432, "TCP")}
    assert [p["port"] for p in policy["ingress"][0]["ports"]] == [6066]


def test_helm_everything_service_monitor_and_keda(helm: str) -> None:
    docs = render(helm, MODES["everything"])
    monitor = named(docs, "ServiceMonitor", WORKER)
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"
    service = named(docs, "Service", WORKER)
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["jobs"]}

    scaled = one(docs, "ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"]["name"] == WORKER
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["consumerGroup"] == "streamworker"
    assert trigger["metadata"]["topic"] == "streamworker.submissions"
    assert int(trigger["metadata"]["lagThreshold"]) > 0
    deployment = named(docs, "Deployment", WORKER)
    assert "replicas" not in deployment["spec"], "KEDA owns the replica count"
    assert not by_kind(docs, "HorizontalPodAutoscaler")
    worker = container(worker_pod(docs), "worker")
    assert worker["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert worker["livenessProbe"]["httpGet"]["path"] == "/health"
    assert not [s for s in by_kind(docs, "Secret") if "database-url" in s.get("stringData", {})]
    assert env_of(worker)["STREAMWORKER_DATABASE_URL"]["secretKeyRef"]["name"] == "db"


def test_helm_hpa(helm: str) -> None:
    docs = render(helm, MODES["hpa"])
    hpa = one(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == WORKER
    assert not by_kind(docs, "NetworkPolicy")
    assert "replicas" not in named(docs, "Deployment", WORKER)["spec"]
    assert named(docs, "Deployment", GATEWAY)["spec"]["replicas"] == 2, "the gateway's own"


# --- the gateway -----------------------------------------------------------------------


COMPONENT = "app.kubernetes.io/component"


def gateway_docs(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["metadata"].get("labels", {}).get(COMPONENT) == "gateway"]


def test_helm_gateway_by_default(helm: str) -> None:
    """On by default: its Deployment runs `streamworker gateway` from the worker image, two
    replicas behind a Service on 2358, probes on /health, settings from both ConfigMaps."""
    docs = render(helm, MODES["socket"])
    deployment = named(docs, "Deployment", GATEWAY)
    assert deployment["spec"]["replicas"] == 2
    pod = gateway_pod(docs)
    gateway = container(pod, "gateway")
    assert gateway["args"] == ["streamworker", "gateway"]
    assert gateway["image"] == container(worker_pod(docs), "worker")["image"]
    assert [c["name"] for c in pod["containers"]] == ["gateway"]
    assert gateway["ports"] == [{"name": "http", "containerPort": 2358, "protocol": "TCP"}]
    for probe in ("livenessProbe", "readinessProbe"):
        assert gateway[probe]["httpGet"] == {"path": "/health", "port": "http"}
    assert gateway["envFrom"] == [
        {"configMapRef": {"name": WORKER}},
        {"configMapRef": {"name": GATEWAY}},
    ]
    config = named(docs, "ConfigMap", GATEWAY)["data"]
    assert config["STREAMWORKER_GATEWAY_HOST"] == "0.0.0.0"
    assert config["STREAMWORKER_GATEWAY_PORT"] == "2358"
    assert config["STREAMWORKER_GATEWAY_MAX_WAIT_S"] == "60"
    assert config["STREAMWORKER_DATA_DIR"].startswith("/tmp/")
    assert pod["terminationGracePeriodSeconds"] > 60, "open wait=true requests finish"
    db_ref = env_of(gateway)["STREAMWORKER_DATABASE_URL"]["secretKeyRef"]
    assert db_ref == {"name": f"{WORKER}-db", "key": "database-url"}
    # No tenants given: no secret settings at all (the gateway then serves loopback only).
    assert not [k for k in env_of(gateway) if k.startswith("STREAMWORKER_GATEWAY_")]
    assert not [s for s in by_kind(docs, "Secret") if s["metadata"]["name"] == GATEWAY]

    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels[COMPONENT] == "gateway"
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = named(docs, "Service", GATEWAY)
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 2358, "targetPort": "http", "protocol": "TCP"}
    ]
    assert service["spec"]["selector"].items() <= labels.items()
    worker_labels = named(docs, "Deployment", WORKER)["spec"]["template"]["metadata"]["labels"]
    assert not service["spec"]["selector"].items() <= worker_labels.items()
    assert not named(docs, "Service", WORKER)["spec"]["selector"].items() <= labels.items()

    (spread,) = pod["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    pdb = named(docs, "PodDisruptionBudget", GATEWAY)
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert not by_kind(docs, "Ingress"), "opt-in"
    assert not by_kind(docs, "HorizontalPodAutoscaler"), "opt-in"


def test_helm_gateway_off_renders_nothing_of_it(helm: str) -> None:
    docs = render(helm, MODES["gateway-off"])
    assert not gateway_docs(docs)
    assert not [d for d in docs if "gateway" in d["metadata"]["name"]]
    assert by_kind(docs, "Deployment") == [named(docs, "Deployment", WORKER)]


def test_helm_gateway_optional_objects(helm: str) -> None:
    docs = render(helm, MODES["gateway-full"])
    ingress = named(docs, "Ingress", GATEWAY)["spec"]
    assert ingress["ingressClassName"] == "nginx"
    assert ingress["tls"] == [{"secretName": "judge0-tls", "hosts": ["judge0.example.internal"]}]
    (rule,) = ingress["rules"]
    assert rule["host"] == "judge0.example.internal"
    (path,) = rule["http"]["paths"]
    assert path["backend"] == {"service": {"name": GATEWAY, "port": {"name": "http"}}}
    annotations = named(docs, "Ingress", GATEWAY)["metadata"]["annotations"]
    assert annotations == {"nginx.ingress.kubernetes.io/proxy-body-size": "8m"}

    hpa = named(docs, "HorizontalPodAutoscaler", GATEWAY)["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": GATEWAY}
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 6)
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    assert "replicas" not in named(docs, "Deployment", GATEWAY)["spec"], "the HPA owns it"
    assert named(docs, "Deployment", WORKER)["spec"]["replicas"] == 1, "the worker's own"
    pdb = named(docs, "PodDisruptionBudget", GATEWAY)["spec"]
    assert pdb["minAvailable"] == 1 and "maxUnavailable" not in pdb
    config = named(docs, "ConfigMap", GATEWAY)["data"]
    assert config["STREAMWORKER_GATEWAY_CALLBACK_ALLOW"] == "10.40.0.0/16"

    # Kafka's credentials and TLS files reach the gateway as they reach the worker.
    pod = gateway_pod(docs)
    gateway = container(pod, "gateway")
    password = env_of(gateway)["STREAMWORKER_KAFKA_SASL_PASSWORD"]
    assert password == {"secretKeyRef": {"name": f"{WORKER}-kafka", "key": "sasl-password"}}
    mount = next(m for m in gateway["volumeMounts"] if m["name"] == "kafka-tls")
    assert mount["mountPath"] == "/etc/streamworker/kafka-tls" and mount["readOnly"] is True
    assert next(v for v in pod["volumes"] if v["name"] == "kafka-tls")["secret"]["secretName"] == (
        "kafka-tls"
    )


def test_helm_gateway_secrets_inline_or_existing(helm: str) -> None:
    docs = render(helm, MODES["gateway-full"])
    secret = named(docs, "Secret", GATEWAY)
    assert secret["stringData"] == {
        "tenants": TENANTS,
        "admin-tokens": ADMIN_TOKENS,
        "callback-secret": CALLBACK_SECRET,
    }
    env = env_of(container(gateway_pod(docs), "gateway"))
    for variable, key in [
        ("STREAMWORKER_GATEWAY_TENANTS", "tenants"),
        ("STREAMWORKER_GATEWAY_ADMIN_TOKENS", "admin-tokens"),
        ("STREAMWORKER_GATEWAY_CALLBACK_SECRET", "callback-secret"),
    ]:
        assert env[variable] == {"secretKeyRef": {"name": GATEWAY, "key": key}}

    existing = render(helm, MODES["gateway-existing-secret"])
    assert not [s for s in by_kind(existing, "Secret") if s["metadata"]["name"] == GATEWAY]
    env = env_of(container(gateway_pod(existing), "gateway"))
    for variable, key in [
        ("STREAMWORKER_GATEWAY_TENANTS", "tenants"),
        ("STREAMWORKER_GATEWAY_ADMIN_TOKENS", "admin-tokens"),
        ("STREAMWORKER_GATEWAY_CALLBACK_SECRET", "callback-secret"),
    ]:
        ref = {"name": "gateway-auth", "key": key, "optional": True}
        assert env[variable] == {"secretKeyRef": ref}, "each key of the Secret is optional"
    deployment = named(existing, "Deployment", GATEWAY)
    assert deployment["spec"]["replicas"] == 3
    assert "topologySpreadConstraints" not in deployment["spec"]["template"]["spec"]
    assert not by_kind(existing, "PodDisruptionBudget")

    # Only the secrets given inline land in the chart's Secret and the pod's environment.
    only = render(helm, [*MODES["dind"], f"gateway.auth.callbackSecret={CALLBACK_SECRET}"])
    assert named(only, "Secret", GATEWAY)["stringData"] == {"callback-secret": CALLBACK_SECRET}
    env = env_of(container(gateway_pod(only), "gateway"))
    assert [k for k in env if k.startswith("STREAMWORKER_GATEWAY_")] == [
        "STREAMWORKER_GATEWAY_CALLBACK_SECRET"
    ]


def test_helm_gateway_service_monitor_has_its_own_job(helm: str) -> None:
    docs = render(helm, MODES["gateway-full"])
    monitor = named(docs, "ServiceMonitor", GATEWAY)["spec"]
    selector = monitor["selector"]["matchLabels"]
    assert selector.items() <= named(docs, "Service", GATEWAY)["metadata"]["labels"].items()
    assert not selector.items() <= named(docs, "Service", WORKER)["metadata"]["labels"].items()
    worker_selector = named(docs, "ServiceMonitor", WORKER)["spec"]["selector"]["matchLabels"]
    gateway_labels = named(docs, "Service", GATEWAY)["metadata"]["labels"]
    assert not worker_selector.items() <= gateway_labels.items(), "scraped once, by its own"
    (endpoint,) = monitor["endpoints"]
    assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"
    assert {"targetLabel": "job", "replacement": "streamworker-gateway"} in endpoint["relabelings"]
    drop = endpoint["metricRelabelings"][0]
    assert drop["action"] == "drop" and drop["regex"] == "streamworker_docker_.*"
    assert "jobLabel" not in monitor
    assert not by_kind(render(helm, MODES["socket"]), "ServiceMonitor"), "opt-in"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([DATABASE, "docker.mode=podman"], "docker.mode must be socket, dind or remoteTls"),
        (
            [*MODES["dind"], "autoscaling.hpa.enabled=true", "autoscaling.keda.enabled=true"],
            "either hpa or keda",
        ),
        ([DATABASE, "docker.mode=remoteTls"], "docker.remoteTls.caPem"),
        ([*MODES["dind"], "config.OTHER=1"], "config keys are STREAMWORKER_"),
    ],
)
def test_helm_refuses_bad_values(helm: str, values: list[str], message: str) -> None:
    out = run([helm, "template", "sw", str(CHART), *set_args(values)])
    assert out.returncode != 0
    assert message in out.stderr


def test_helm_chart_files_are_plain_yaml() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["name"] == "streamworker"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["docker"]["mode"] == "", "the operator chooses"
    assert values["docker"]["socket"]["groupId"] == "", "no root fallback"
    assert values["database"]["url"] == "", "no default password"
    assert values["kafka"]["appId"] == "streamworker"
    assert values["kafka"]["topics"]["submissions"] == "streamworker.submissions"
    assert values["metrics"]["serviceMonitor"]["enabled"] is False
    gateway = values["gateway"]
    assert gateway["enabled"] is True and gateway["replicaCount"] == 2
    assert gateway["ingress"]["enabled"] is False and gateway["autoscaling"]["enabled"] is False
    assert gateway["networkPolicy"]["ingress"]["from"] == [], "no client until named"
    assert gateway["networkPolicy"]["egress"]["callbacks"]["cidrs"] == [], "no callbacks"
    assert not any(gateway["auth"][k] for k in ("tenants", "adminTokens", "callbackSecret"))
