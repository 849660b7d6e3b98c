"""One frozen, typed settings object read from the environment once.

`os.environ` is read here and nowhere else; a malformed value fails at start-up
with the name of the key.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from streamworker.budgets import BUDGETS, DecodeBudgets
from streamworker.errors import ConfigError
from streamworker.limits import COMPILE_LIMITS, DEFAULT_LIMITS, LIMIT_NAMES, MAX_LIMITS, RunLimits


@dataclass(frozen=True)
class Topics:
    """Kafka topic names; defaults are the contract's."""

    submissions: str = "streamworker.submissions"
    results: str = "streamworker.results"
    docker_health: str = "streamworker.docker-health"
    dlq: str = "streamworker.submissions.dlq"


@dataclass(frozen=True)
class DockerSettings:
    """How the worker reaches Docker: unix socket (default), tcp, or tcp with mutual TLS."""

    host: str = "unix:///var/run/docker.sock"
    tls_verify: bool = False
    cert_path: str | None = None
    allow_insecure_tcp: bool = False


KAFKA_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class KafkaSecurity:
    """How every Kafka client of ours protects and authenticates its connections.

    Field `x` is `STREAMWORKER_KAFKA_X`; `streamworker.kafka_security` turns it into
    client arguments. Without a CA file, TLS trusts the system's CAs.
    """

    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_check_hostname: bool = True

    @property
    def uses_ssl(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")


@dataclass(frozen=True)
class GatewaySettings:
    """The HTTP gateway (`streamworker gateway`): where it listens and its bounds. Its
    secrets (tenant tokens, the callback key) are read by `gateway/tenants.py` and
    `gateway/callbacks.py` from the same environment, at the edge."""

    host: str = "127.0.0.1"
    port: int = 2358
    """Judge0's port, so a Judge0 user changes only the host."""
    max_wait_s: float = 60.0
    """Longest a `wait=true` (or a Piston execute) holds its request; then the current state."""
    max_in_flight: int = 100
    """Submissions this replica produced and has not seen answered; beyond: 503 "queue is full"."""
    max_body_bytes: int = 4 * 1024 * 1024
    callbacks_dlq_topic: str = "streamworker.callbacks.dlq"
    """Where a callback goes after its last try failed (the body, token and error)."""


EVENT_LOOPS = ("asyncio", "uvloop")


@dataclass(frozen=True)
class Settings:
    """Everything configurable, with the contract's values as defaults."""

    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_security: KafkaSecurity = field(default_factory=KafkaSecurity)
    app_id: str = "streamworker"
    processing_guarantee: str = "exactly_once"
    event_loop: str = "uvloop"
    """The worker's event loop: `uvloop`, or `asyncio` (benchmarked in docs/benchmarks.md)."""
    topics: Topics = field(default_factory=Topics)
    database_url: str = ""
    data_dir: Path = Path(".state")
    worker_id: str = ""
    http_host: str = "127.0.0.1"
    http_port: int = 6066
    docker: DockerSettings = field(default_factory=DockerSettings)
    image_prefix: str = "streamworker-runtime"
    debian_suite: str = "bookworm"
    debian_mirror: str = ""
    default_limits: RunLimits = DEFAULT_LIMITS
    max_limits: RunLimits = MAX_LIMITS
    compile_limits: RunLimits = COMPILE_LIMITS
    workspace_mb: int = 128
    max_source_bytes: int = BUDGETS.max_source_bytes
    max_test_cases: int = BUDGETS.max_test_cases
    max_attempts: int = 3
    """Attempts of one submission that may start without finishing (the worker died or
    restarted each time) before it is answered `internal_error` instead of run again."""
    result_output_kb: int = 64
    topic_partitions: int = 4
    concurrency: int = 4
    memory_budget_mb: int = 4096
    health_interval_s: float = 15.0
    audit_lag_degraded_s: float = 30.0
    """`/health` and `/ready` say the audit is degraded while a record waits longer."""
    required_languages: tuple[str, ...] = ()
    """Languages whose images must be present for Docker to count as healthy; () = all."""
    reap_interval_s: float = 30.0
    pool_languages: tuple[str, ...] = ("python",)
    pool_min_size: int | None = None
    """None ("auto"): concurrency + 1 with reuse (never a miss at full concurrency), else 2."""
    pool_max_size: int = 8
    pool_max_idle_s: float = 300.0
    pool_max_uses: int = 100
    """Submissions one pooled container serves, wiped between them (1: single-use)."""
    pool_idle_shrink_s: float = 60.0
    pool_check_interval_s: float = 10.0
    pool_wait_s: float = 2.0
    """On a miss, wait this long for the pool's next container before running cold: the
    pool is then the only creator, so a burst creates no container twice over."""
    commit_interval_s: float = 0.5
    commit_after_ack_s: float = 0.0
    """Commit this long after an acknowledgement (acks during a commit join the next);
    < 0: only on the interval. With exactly_once a result is visible to read_committed
    consumers only after its transaction commits."""
    session_timeout_s: float = 10.0
    shutdown_grace_s: float = 20.0
    gateway: GatewaySettings = field(default_factory=GatewaySettings)

    def decode_budgets(self) -> DecodeBudgets:
        """The contract's decode budgets with the two that operators configure."""
        return replace(
            BUDGETS, max_source_bytes=self.max_source_bytes, max_test_cases=self.max_test_cases
        )

    def resolved_database_url(self) -> str:
        """The configured URL, else an embedded SQLite file under `data_dir`."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'streamworker.db').resolve()}"


def _get(env: Mapping[str, str], key: str) -> str | None:
    value = env.get(key)
    return value if value not in (None, "") else None


def _int(env: Mapping[str, str], key: str, default: int, minimum: int = 0) -> int:
    raw = _get(env, key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(key, f"expected an integer, got {raw!r}") from exc
    if value < minimum:
        raise ConfigError(key, f"must be at least {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], key: str, default: float, positive: bool = True) -> float:
    raw = _get(env, key)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(key, f"expected a number, got {raw!r}") from exc
    if not math.isfinite(value):
        raise ConfigError(key, f"must be a finite number, got {raw!r}")
    if positive and value <= 0:
        raise ConfigError(key, f"must be positive, got {value}")
    return value


def _bool(env: Mapping[str, str], key: str, default: bool) -> bool:
    raw = _get(env, key)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(key, f"expected a boolean (1/0, true/false), got {raw!r}")


def _list(env: Mapping[str, str], key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = env.get(key)
    if raw is None:
        return default
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _choice(env: Mapping[str, str], key: str, choices: tuple[str, ...], default: str) -> str:
    raw = _get(env, key)
    if raw is None:
        return default
    if raw not in choices:
        raise ConfigError(key, f"expected one of {choices}, got {raw!r}")
    return raw


def _limits(env: Mapping[str, str], prefix: str, base: RunLimits) -> RunLimits:
    return RunLimits(
        cpu_time_s=_float(env, f"{prefix}_CPU_TIME_S", base.cpu_time_s),
        wall_time_s=_float(env, f"{prefix}_WALL_TIME_S", base.wall_time_s),
        memory_mb=_int(env, f"{prefix}_MEMORY_MB", base.memory_mb, minimum=8),
        processes=_int(env, f"{prefix}_PROCESSES", base.processes, minimum=1),
        output_kb=_int(env, f"{prefix}_OUTPUT_KB", base.output_kb, minimum=1),
        file_size_kb=_int(env, f"{prefix}_FILE_SIZE_KB", base.file_size_kb, minimum=1),
    )


def _docker(env: Mapping[str, str]) -> DockerSettings:
    host = _get(env, "STREAMWORKER_DOCKER_HOST") or _get(env, "DOCKER_HOST")
    tls_verify = _bool(env, "STREAMWORKER_DOCKER_TLS_VERIFY", False) or bool(
        _get(env, "DOCKER_TLS_VERIFY")
    )
    cert_path = _get(env, "STREAMWORKER_DOCKER_CERT_PATH") or _get(env, "DOCKER_CERT_PATH")
    return DockerSettings(
        host=host or DockerSettings.host,
        tls_verify=tls_verify,
        cert_path=cert_path,
        allow_insecure_tcp=_bool(env, "STREAMWORKER_DOCKER_ALLOW_INSECURE_TCP", False),
    )


def _readable(env: Mapping[str, str], key: str) -> str | None:
    path = _get(env, key)
    if path is not None and not (os.path.isfile(path) and os.access(path, os.R_OK)):
        raise ConfigError(key, f"{path} is not a readable file")
    return path


def _kafka_security(env: Mapping[str, str]) -> KafkaSecurity:
    """Refuses half a configuration: SASL without its login, a mechanism we do not
    speak, or TLS files under a protocol that would silently ignore them."""
    protocol_key = "STREAMWORKER_KAFKA_SECURITY_PROTOCOL"
    security = KafkaSecurity(
        security_protocol=_choice(env, protocol_key, KAFKA_PROTOCOLS, "PLAINTEXT"),
        sasl_mechanism=_choice(env, "STREAMWORKER_KAFKA_SASL_MECHANISM", SASL_MECHANISMS, "")
        or None,
        sasl_username=_get(env, "STREAMWORKER_KAFKA_SASL_USERNAME"),
        sasl_password=_get(env, "STREAMWORKER_KAFKA_SASL_PASSWORD"),
        ssl_cafile=_readable(env, "STREAMWORKER_KAFKA_SSL_CAFILE"),
        ssl_certfile=_readable(env, "STREAMWORKER_KAFKA_SSL_CERTFILE"),
        ssl_keyfile=_readable(env, "STREAMWORKER_KAFKA_SSL_KEYFILE"),
        ssl_check_hostname=_bool(env, "STREAMWORKER_KAFKA_SSL_CHECK_HOSTNAME", True),
    )
    protocol = security.security_protocol
    sasl = {
        "STREAMWORKER_KAFKA_SASL_MECHANISM": security.sasl_mechanism,
        "STREAMWORKER_KAFKA_SASL_USERNAME": security.sasl_username,
        "STREAMWORKER_KAFKA_SASL_PASSWORD": security.sasl_password,
    }
    tls = {
        "STREAMWORKER_KAFKA_SSL_CAFILE": security.ssl_cafile,
        "STREAMWORKER_KAFKA_SSL_CERTFILE": security.ssl_certfile,
        "STREAMWORKER_KAFKA_SSL_KEYFILE": security.ssl_keyfile,
    }
    for key, value in sasl.items():
        if security.uses_sasl and value is None:
            raise ConfigError(key, f"required with {protocol_key}={protocol}")
        if not security.uses_sasl and value is not None:
            raise ConfigError(protocol_key, f"{key} is set, but {protocol} does not use SASL")
    for key, value in tls.items():
        if not security.uses_ssl and value is not None:
            raise ConfigError(protocol_key, f"{key} is set, but {protocol} does not use TLS")
    if security.ssl_keyfile and not security.ssl_certfile:
        raise ConfigError("STREAMWORKER_KAFKA_SSL_CERTFILE", "required with a key file")
    return security


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read settings from `env` (default: the process environment)."""
    env = os.environ if env is None else env
    topics = Topics(
        submissions=_get(env, "STREAMWORKER_TOPIC_SUBMISSIONS") or Topics.submissions,
        results=_get(env, "STREAMWORKER_TOPIC_RESULTS") or Topics.results,
        docker_health=_get(env, "STREAMWORKER_TOPIC_DOCKER_HEALTH") or Topics.docker_health,
        dlq=_get(env, "STREAMWORKER_TOPIC_DLQ") or Topics.dlq,
    )
    default_limits = _limits(env, "STREAMWORKER_DEFAULT", DEFAULT_LIMITS)
    max_limits = _limits(env, "STREAMWORKER_MAX", MAX_LIMITS)
    for name in LIMIT_NAMES:
        if getattr(default_limits, name) > getattr(max_limits, name):
            raise ConfigError(
                f"STREAMWORKER_DEFAULT_{name.upper()}",
                f"default {getattr(default_limits, name)} exceeds the maximum "
                f"{getattr(max_limits, name)}",
            )
    http_port = _int(env, "STREAMWORKER_HTTP_PORT", 6066)
    if not 0 < http_port < 65536:
        raise ConfigError("STREAMWORKER_HTTP_PORT", f"not a TCP port: {http_port}")
    return Settings(
        kafka_bootstrap=_get(env, "STREAMWORKER_KAFKA_BOOTSTRAP") or Settings.kafka_bootstrap,
        kafka_security=_kafka_security(env),
        app_id=_get(env, "STREAMWORKER_APP_ID") or Settings.app_id,
        processing_guarantee=_choice(
            env,
            "STREAMWORKER_PROCESSING_GUARANTEE",
            ("at_least_once", "exactly_once"),
            Settings.processing_guarantee,
        ),
        event_loop=_choice(env, "STREAMWORKER_EVENT_LOOP", EVENT_LOOPS, Settings.event_loop),
        topics=topics,
        database_url=_get(env, "STREAMWORKER_DATABASE_URL") or "",
        data_dir=Path(_get(env, "STREAMWORKER_DATA_DIR") or ".state"),
        worker_id=_get(env, "STREAMWORKER_WORKER_ID") or f"{socket.gethostname()}-{os.getpid()}",
        http_host=_get(env, "STREAMWORKER_HTTP_HOST") or Settings.http_host,
        http_port=http_port,
        docker=_docker(env),
        image_prefix=_get(env, "STREAMWORKER_IMAGE_PREFIX") or Settings.image_prefix,
        debian_suite=_get(env, "STREAMWORKER_DEBIAN_SUITE") or Settings.debian_suite,
        debian_mirror=_get(env, "STREAMWORKER_DEBIAN_MIRROR") or "",
        default_limits=default_limits,
        max_limits=max_limits,
        compile_limits=_limits(env, "STREAMWORKER_COMPILE", COMPILE_LIMITS),
        workspace_mb=_int(env, "STREAMWORKER_WORKSPACE_MB", Settings.workspace_mb, minimum=1),
        max_source_bytes=_int(
            env, "STREAMWORKER_MAX_SOURCE_BYTES", Settings.max_source_bytes, minimum=1
        ),
        max_test_cases=_int(env, "STREAMWORKER_MAX_TEST_CASES", Settings.max_test_cases),
        max_attempts=_int(env, "STREAMWORKER_MAX_ATTEMPTS", Settings.max_attempts, minimum=1),
        topic_partitions=max(1, _int(env, "STREAMWORKER_TOPIC_PARTITIONS", 4)),
        result_output_kb=_int(env, "STREAMWORKER_RESULT_OUTPUT_KB", Settings.result_output_kb),
        memory_budget_mb=_int(
            env, "STREAMWORKER_MEMORY_BUDGET_MB", Settings.memory_budget_mb, minimum=64
        ),
        concurrency=max(1, _int(env, "STREAMWORKER_CONCURRENCY", Settings.concurrency)),
        reap_interval_s=_float(env, "STREAMWORKER_REAP_INTERVAL_S", Settings.reap_interval_s),
        pool_languages=_list(env, "STREAMWORKER_POOL_LANGUAGES", Settings.pool_languages),
        pool_min_size=None
        if _get(env, "STREAMWORKER_POOL_MIN_SIZE") in (None, "auto")
        else _int(env, "STREAMWORKER_POOL_MIN_SIZE", 2),
        pool_max_size=_int(env, "STREAMWORKER_POOL_MAX_SIZE", Settings.pool_max_size),
        pool_max_idle_s=_float(env, "STREAMWORKER_POOL_MAX_IDLE_S", Settings.pool_max_idle_s),
        pool_wait_s=_float(env, "STREAMWORKER_POOL_WAIT_S", Settings.pool_wait_s, positive=False),
        pool_max_uses=_int(env, "STREAMWORKER_POOL_MAX_USES", Settings.pool_max_uses, minimum=1),
        pool_idle_shrink_s=_float(
            env, "STREAMWORKER_POOL_IDLE_SHRINK_S", Settings.pool_idle_shrink_s
        ),
        commit_interval_s=_float(env, "STREAMWORKER_COMMIT_INTERVAL_S", Settings.commit_interval_s),
        commit_after_ack_s=_float(
            env, "STREAMWORKER_COMMIT_AFTER_ACK_S", Settings.commit_after_ack_s, positive=False
        ),
        session_timeout_s=_float(env, "STREAMWORKER_SESSION_TIMEOUT_S", Settings.session_timeout_s),
        shutdown_grace_s=_float(env, "STREAMWORKER_SHUTDOWN_GRACE_S", Settings.shutdown_grace_s),
        health_interval_s=_float(env, "STREAMWORKER_HEALTH_INTERVAL_S", Settings.health_interval_s),
        audit_lag_degraded_s=_float(
            env, "STREAMWORKER_AUDIT_LAG_DEGRADED_S", Settings.audit_lag_degraded_s
        ),
        required_languages=_list(env, "STREAMWORKER_REQUIRED_LANGUAGES", ()),
        gateway=_gateway(env),
    )


def _gateway(env: Mapping[str, str]) -> GatewaySettings:
    port = _int(env, "STREAMWORKER_GATEWAY_PORT", GatewaySettings.port)
    if not 0 < port < 65536:
        raise ConfigError("STREAMWORKER_GATEWAY_PORT", f"not a TCP port: {port}")
    return GatewaySettings(
        host=_get(env, "STREAMWORKER_GATEWAY_HOST") or GatewaySettings.host,
        port=port,
        max_wait_s=_float(env, "STREAMWORKER_GATEWAY_MAX_WAIT_S", GatewaySettings.max_wait_s),
        max_in_flight=_int(
            env, "STREAMWORKER_GATEWAY_MAX_IN_FLIGHT", GatewaySettings.max_in_flight, minimum=1
        ),
        max_body_bytes=_int(
            env, "STREAMWORKER_GATEWAY_MAX_BODY_BYTES", GatewaySettings.max_body_bytes, minimum=1024
        ),
        callbacks_dlq_topic=_get(env, "STREAMWORKER_TOPIC_CALLBACKS_DLQ")
        or GatewaySettings.callbacks_dlq_topic,
    )
