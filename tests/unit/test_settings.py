"""Settings from the environment (contract defaults, named errors) and the Docker endpoint."""

from __future__ import annotations

import dataclasses
import ssl
from pathlib import Path

import pytest

from streamworker.errors import ConfigError
from streamworker.limits import COMPILE_LIMITS, DEFAULT_LIMITS, LIMIT_NAMES, MAX_LIMITS, RunLimits
from streamworker.sandbox import connection
from streamworker.sandbox.connection import resolve_endpoint
from streamworker.settings import DockerSettings, Settings, Topics, load_settings

LIMIT_PREFIXES = ("STREAMWORKER_DEFAULT", "STREAMWORKER_MAX", "STREAMWORKER_COMPILE")
INTEGER_LIMIT_MINIMA = {"memory_mb": 8, "processes": 1, "output_kb": 1, "file_size_kb": 1}


def config_error(env: dict[str, str]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    return info.value


class TestDefaults:
    def test_contract_defaults(self) -> None:
        settings = load_settings({})
        assert settings.topics == Topics()
        assert settings.topics.submissions == "streamworker.submissions"
        assert settings.topics.results == "streamworker.results"
        assert settings.topics.docker_health == "streamworker.docker-health"
        assert settings.topics.dlq == "streamworker.submissions.dlq"
        assert (settings.http_host, settings.http_port) == ("127.0.0.1", 6066)
        assert settings.kafka_bootstrap == "127.0.0.1:9092"

    def test_loaded_defaults_equal_the_dataclass_defaults(self) -> None:
        loaded = load_settings({"STREAMWORKER_WORKER_ID": "w"})
        assert loaded == Settings(worker_id="w")

    def test_other_defaults(self) -> None:
        settings = load_settings({})
        assert settings.processing_guarantee == "exactly_once"
        assert settings.docker == DockerSettings()
        assert settings.docker.host == "unix:///var/run/docker.sock"
        assert settings.docker.tls_verify is False
        assert settings.docker.allow_insecure_tcp is False
        assert settings.default_limits == DEFAULT_LIMITS
        assert settings.max_limits == MAX_LIMITS
        assert settings.compile_limits == COMPILE_LIMITS
        assert settings.worker_id  # hostname-pid, never empty
        assert settings.database_url == ""

    def test_default_limits_are_within_the_maxima(self) -> None:
        for name in LIMIT_NAMES:
            assert 0 < getattr(DEFAULT_LIMITS, name) <= getattr(MAX_LIMITS, name)
            assert getattr(COMPILE_LIMITS, name) > 0

    def test_limit_names_match_run_limits_fields(self) -> None:
        assert tuple(f.name for f in dataclasses.fields(RunLimits)) == LIMIT_NAMES
        assert tuple(DEFAULT_LIMITS.as_dict()) == LIMIT_NAMES

    def test_empty_values_count_as_unset(self) -> None:
        env = {
            "STREAMWORKER_HTTP_PORT": "",
            "STREAMWORKER_TOPIC_RESULTS": "",
            "STREAMWORKER_KAFKA_BOOTSTRAP": "",
            "STREAMWORKER_DEFAULT_CPU_TIME_S": "",
        }
        settings = load_settings(env)
        assert settings.http_port == 6066
        assert settings.topics.results == "streamworker.results"
        assert settings.kafka_bootstrap == "127.0.0.1:9092"
        assert settings.default_limits == DEFAULT_LIMITS

    def test_settings_are_frozen(self) -> None:
        settings = load_settings({})
        with pytest.raises(dataclasses.FrozenInstanceError):
            settings.http_port = 1  # type: ignore[misc]
        with pytest.raises(dataclasses.FrozenInstanceError):
            settings.topics.results = "x"  # type: ignore[misc]

    def test_process_environment_is_the_default_source(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("STREAMWORKER_HTTP_PORT", "7001")
        monkeypatch.setenv("STREAMWORKER_WORKER_ID", "from-env")
        settings = load_settings()
        assert settings.http_port == 7001
        assert settings.worker_id == "from-env"


class TestOverrides:
    def test_strings_and_numbers(self) -> None:
        settings = load_settings(
            {
                "STREAMWORKER_KAFKA_BOOTSTRAP": "kafka:29092",
                "STREAMWORKER_APP_ID": "sw2",
                "STREAMWORKER_PROCESSING_GUARANTEE": "exactly_once",
                "STREAMWORKER_TOPIC_SUBMISSIONS": "in",
                "STREAMWORKER_TOPIC_RESULTS": "out",
                "STREAMWORKER_TOPIC_DOCKER_HEALTH": "dh",
                "STREAMWORKER_TOPIC_DLQ": "dead",
                "STREAMWORKER_DATABASE_URL": "postgresql+asyncpg://u@h/db",
                "STREAMWORKER_DATA_DIR": "/var/lib/sw",
                "STREAMWORKER_WORKER_ID": "w-7",
                "STREAMWORKER_HTTP_HOST": "0.0.0.0",
                "STREAMWORKER_HTTP_PORT": "8080",
                "STREAMWORKER_IMAGE_PREFIX": "reg/rt",
                "STREAMWORKER_WORKSPACE_MB": "32",
                "STREAMWORKER_MAX_SOURCE_BYTES": "1000",
                "STREAMWORKER_MAX_TEST_CASES": "3",
                "STREAMWORKER_RESULT_OUTPUT_KB": "8",
                "STREAMWORKER_TOPIC_PARTITIONS": "8",
                "STREAMWORKER_CONCURRENCY": "5",
                "STREAMWORKER_HEALTH_INTERVAL_S": "2.5",
            }
        )
        assert settings.kafka_bootstrap == "kafka:29092"
        assert settings.app_id == "sw2"
        assert settings.processing_guarantee == "exactly_once"
        assert settings.topics == Topics("in", "out", "dh", "dead")
        assert settings.database_url == "postgresql+asyncpg://u@h/db"
        assert settings.data_dir == Path("/var/lib/sw")
        assert settings.worker_id == "w-7"
        assert (settings.http_host, settings.http_port) == ("0.0.0.0", 8080)
        assert settings.image_prefix == "reg/rt"
        assert settings.workspace_mb == 32
        assert settings.max_source_bytes == 1000
        assert settings.max_test_cases == 3
        assert settings.result_output_kb == 8
        assert settings.topic_partitions == 8
        assert settings.concurrency == 5
        assert settings.health_interval_s == 2.5

    @pytest.mark.parametrize("prefix", LIMIT_PREFIXES)
    @pytest.mark.parametrize("name", LIMIT_NAMES)
    def test_every_limit_has_its_variable(self, prefix: str, name: str) -> None:
        if prefix == "STREAMWORKER_MAX":
            value = int(getattr(MAX_LIMITS, name)) * 2
        else:
            value = INTEGER_LIMIT_MINIMA.get(name, 1)  # the smallest accepted value
        settings = load_settings({f"{prefix}_{name.upper()}": str(value)})
        attr = {
            "STREAMWORKER_DEFAULT": "default_limits",
            "STREAMWORKER_MAX": "max_limits",
            "STREAMWORKER_COMPILE": "compile_limits",
        }[prefix]
        assert getattr(getattr(settings, attr), name) == value

    def test_int_limits_stay_int_and_float_limits_float(self) -> None:
        limits = load_settings(
            {"STREAMWORKER_DEFAULT_CPU_TIME_S": "1", "STREAMWORKER_DEFAULT_MEMORY_MB": "64"}
        ).default_limits
        assert isinstance(limits.cpu_time_s, float) and limits.cpu_time_s == 1.0
        assert isinstance(limits.memory_mb, int) and limits.memory_mb == 64

    def test_default_equal_to_maximum_is_allowed(self) -> None:
        settings = load_settings({"STREAMWORKER_DEFAULT_MEMORY_MB": str(MAX_LIMITS.memory_mb)})
        assert settings.default_limits.memory_mb == settings.max_limits.memory_mb

    @pytest.mark.parametrize(("raw", "value"), [("0", 0.0), ("-1", -1.0), ("0.02", 0.02)])
    def test_commit_after_ack_accepts_zero_and_off(self, raw: str, value: float) -> None:
        settings = load_settings({"STREAMWORKER_COMMIT_AFTER_ACK_S": raw})
        assert settings.commit_after_ack_s == value

    def test_concurrency_and_partitions_are_at_least_one(self) -> None:
        settings = load_settings(
            {"STREAMWORKER_CONCURRENCY": "0", "STREAMWORKER_TOPIC_PARTITIONS": "0"}
        )
        assert settings.concurrency == 1
        assert settings.topic_partitions == 1

    @pytest.mark.parametrize("raw", ["1", "true", "TRUE", "yes", "On", " on "])
    def test_booleans_true(self, raw: str) -> None:
        settings = load_settings({"STREAMWORKER_DOCKER_ALLOW_INSECURE_TCP": raw})
        assert settings.docker.allow_insecure_tcp is True

    @pytest.mark.parametrize("raw", ["0", "false", "No", "OFF"])
    def test_booleans_false(self, raw: str) -> None:
        settings = load_settings({"STREAMWORKER_DOCKER_ALLOW_INSECURE_TCP": raw})
        assert settings.docker.allow_insecure_tcp is False

    def test_docker_from_standard_variables(self) -> None:
        docker = load_settings(
            {
                "DOCKER_HOST": "tcp://d:2376",
                "DOCKER_TLS_VERIFY": "1",
                "DOCKER_CERT_PATH": "/certs",
            }
        ).docker
        assert docker == DockerSettings("tcp://d:2376", True, "/certs", False)

    def test_streamworker_docker_variables_take_precedence(self) -> None:
        docker = load_settings(
            {
                "DOCKER_HOST": "tcp://ignored:2376",
                "STREAMWORKER_DOCKER_HOST": "unix:///run/docker.sock",
                "DOCKER_CERT_PATH": "/ignored",
                "STREAMWORKER_DOCKER_CERT_PATH": "/certs",
                "STREAMWORKER_DOCKER_TLS_VERIFY": "yes",
            }
        ).docker
        assert docker.host == "unix:///run/docker.sock"
        assert docker.cert_path == "/certs"
        assert docker.tls_verify is True


MALFORMED: list[tuple[str, str]] = (
    [
        ("STREAMWORKER_HTTP_PORT", "http"),
        ("STREAMWORKER_HTTP_PORT", "-1"),
        ("STREAMWORKER_HTTP_PORT", "0"),
        ("STREAMWORKER_HTTP_PORT", "65536"),
        ("STREAMWORKER_HTTP_PORT", "80.5"),
        ("STREAMWORKER_PROCESSING_GUARANTEE", "at_most_once"),
        ("STREAMWORKER_DOCKER_TLS_VERIFY", "perhaps"),
        ("STREAMWORKER_DOCKER_ALLOW_INSECURE_TCP", "2"),
        ("STREAMWORKER_WORKSPACE_MB", "big"),
        ("STREAMWORKER_WORKSPACE_MB", "-5"),
        ("STREAMWORKER_MAX_SOURCE_BYTES", "1MB"),
        ("STREAMWORKER_MAX_TEST_CASES", "-1"),
        ("STREAMWORKER_RESULT_OUTPUT_KB", "x"),
        ("STREAMWORKER_TOPIC_PARTITIONS", "four"),
        ("STREAMWORKER_CONCURRENCY", "2.5"),
        ("STREAMWORKER_HEALTH_INTERVAL_S", "soon"),
        ("STREAMWORKER_HEALTH_INTERVAL_S", "0"),
        ("STREAMWORKER_HEALTH_INTERVAL_S", "-1"),
    ]
    + [
        (f"{prefix}_{name.upper()}", bad)
        for prefix in LIMIT_PREFIXES
        for name in LIMIT_NAMES
        for bad in ("abc", "-1")
    ]
    + [
        (f"{prefix}_{name.upper()}", "0")
        for prefix in LIMIT_PREFIXES
        for name in ("cpu_time_s", "wall_time_s")
    ]
)


@pytest.mark.parametrize(("key", "value"), MALFORMED)
def test_malformed_variable_names_its_key(key: str, value: str) -> None:
    exc = config_error({key: value})
    assert exc.key == key
    assert key in str(exc)
    assert exc.code == "config.invalid"


@pytest.mark.parametrize("name", LIMIT_NAMES)
def test_default_above_maximum_is_rejected(name: str) -> None:
    above = getattr(MAX_LIMITS, name) * 2
    exc = config_error({f"STREAMWORKER_DEFAULT_{name.upper()}": str(above)})
    assert exc.key == f"STREAMWORKER_DEFAULT_{name.upper()}"
    assert "exceeds the maximum" in str(exc)


def test_maximum_lowered_below_default_is_rejected() -> None:
    exc = config_error({"STREAMWORKER_MAX_CPU_TIME_S": "1"})
    assert exc.key in ("STREAMWORKER_DEFAULT_CPU_TIME_S", "STREAMWORKER_MAX_CPU_TIME_S")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("STREAMWORKER_DEFAULT_CPU_TIME_S", "nan"),
        ("STREAMWORKER_MAX_WALL_TIME_S", "NaN"),
        ("STREAMWORKER_COMPILE_CPU_TIME_S", "inf"),
        ("STREAMWORKER_MAX_CPU_TIME_S", "Infinity"),
        ("STREAMWORKER_HEALTH_INTERVAL_S", "nan"),
        ("STREAMWORKER_HEALTH_INTERVAL_S", "inf"),
        ("STREAMWORKER_HEALTH_INTERVAL_S", "-inf"),
    ],
)
def test_non_finite_numbers_are_rejected(key: str, value: str) -> None:
    exc = config_error({key: value})
    assert exc.key == key
    assert key in str(exc)


@pytest.mark.parametrize("prefix", LIMIT_PREFIXES)
@pytest.mark.parametrize(("name", "minimum"), sorted(INTEGER_LIMIT_MINIMA.items()))
def test_integer_limit_below_its_minimum_is_rejected(prefix: str, name: str, minimum: int) -> None:
    key = f"{prefix}_{name.upper()}"
    for bad in {0, minimum - 1}:
        exc = config_error({key: str(bad)})
        assert exc.key == key
        assert f"at least {minimum}" in str(exc)


@pytest.mark.parametrize(("name", "minimum"), sorted(INTEGER_LIMIT_MINIMA.items()))
def test_integer_limit_at_its_minimum_is_accepted(name: str, minimum: int) -> None:
    settings = load_settings({f"STREAMWORKER_DEFAULT_{name.upper()}": str(minimum)})
    assert getattr(settings.default_limits, name) == minimum


@pytest.mark.parametrize(
    "key",
    ["STREAMWORKER_WORKSPACE_MB", "STREAMWORKER_MAX_SOURCE_BYTES", "STREAMWORKER_POOL_MAX_USES"],
)
def test_zero_workspace_source_size_and_pool_uses_are_rejected(key: str) -> None:
    exc = config_error({key: "0"})
    assert exc.key == key
    assert "at least 1" in str(exc)
    attr = key.removeprefix("STREAMWORKER_").lower()
    assert getattr(load_settings({key: "1"}), attr) == 1


class TestDatabaseUrl:
    def test_configured_url_is_used_as_is(self) -> None:
        assert Settings(database_url="postgresql://x").resolved_database_url() == "postgresql://x"

    def test_embedded_sqlite_under_data_dir(self, tmp_path: Path) -> None:
        url = Settings(data_dir=tmp_path / "state").resolved_database_url()
        assert url == f"sqlite+aiosqlite:///{(tmp_path / 'state' / 'streamworker.db').resolve()}"
        assert url.startswith("sqlite+aiosqlite:////")  # absolute path


# -------------------------------------------------------------------- Docker endpoint


class TestResolveEndpoint:
    def test_unix_socket(self) -> None:
        endpoint = resolve_endpoint(DockerSettings())
        assert (endpoint.url, endpoint.kind, endpoint.ssl_context) == (
            "unix:///var/run/docker.sock",
            "unix",
            None,
        )

    @pytest.mark.parametrize("host", ["tcp://10.0.0.1:2375", "http://10.0.0.1:2375"])
    def test_plain_tcp_is_refused_by_default(self, host: str) -> None:
        with pytest.raises(ConfigError) as info:
            resolve_endpoint(DockerSettings(host=host))
        assert info.value.key == "DOCKER_HOST"
        assert "STREAMWORKER_DOCKER_ALLOW_INSECURE_TCP" in str(info.value)

    def test_plain_tcp_when_explicitly_allowed(self) -> None:
        endpoint = resolve_endpoint(DockerSettings("tcp://10.0.0.1:2375", allow_insecure_tcp=True))
        assert (endpoint.url, endpoint.kind, endpoint.ssl_context) == (
            "http://10.0.0.1:2375",
            "tcp",
            None,
        )

    @pytest.mark.parametrize(
        "docker",
        [
            DockerSettings("tcp://d:2376", tls_verify=True),
            DockerSettings("https://d:2376"),
            DockerSettings("tcp://d:2376", tls_verify=True, allow_insecure_tcp=True),
        ],
    )
    def test_tls_needs_a_cert_dir(self, docker: DockerSettings) -> None:
        with pytest.raises(ConfigError) as info:
            resolve_endpoint(docker)
        assert info.value.key == "DOCKER_CERT_PATH"

    def test_tls_cert_dir_with_missing_files(self, tmp_path: Path) -> None:
        (tmp_path / "ca.pem").write_text("x")
        with pytest.raises(ConfigError) as info:
            resolve_endpoint(DockerSettings("tcp://d:2376", True, str(tmp_path)))
        assert info.value.key == "DOCKER_CERT_PATH"
        assert "cert" in str(info.value)

    def test_tls_endpoint(self, monkeypatch: pytest.MonkeyPatch) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        seen: list[str] = []

        def fake_tls_context(cert_path: str) -> ssl.SSLContext:
            seen.append(cert_path)
            return context

        monkeypatch.setattr(connection, "tls_context", fake_tls_context)
        for host in ("tcp://d:2376", "https://d:2376"):
            endpoint = resolve_endpoint(DockerSettings(host, True, "/certs"))
            assert (endpoint.url, endpoint.kind) == ("https://d:2376", "tls")
            assert endpoint.ssl_context is context
        assert seen == ["/certs", "/certs"]

    @pytest.mark.parametrize("host", ["ssh://user@d", "npipe:////./pipe/docker", "d:2375", ""])
    def test_unsupported_scheme(self, host: str) -> None:
        with pytest.raises(ConfigError) as info:
            resolve_endpoint(DockerSettings(host=host))
        assert info.value.key == "DOCKER_HOST"


def test_pool_max_uses_defaults_to_reuse_and_takes_large_values() -> None:
    assert load_settings({}).pool_max_uses == 100
    assert load_settings({"STREAMWORKER_POOL_MAX_USES": "1"}).pool_max_uses == 1
    assert load_settings({"STREAMWORKER_POOL_MAX_USES": str(10**9)}).pool_max_uses == 10**9
    assert config_error({"STREAMWORKER_POOL_MAX_USES": "many"}).key == "STREAMWORKER_POOL_MAX_USES"


def test_pool_min_size_is_auto_unless_given() -> None:
    assert load_settings({}).pool_min_size is None
    assert load_settings({"STREAMWORKER_POOL_MIN_SIZE": "auto"}).pool_min_size is None
    assert load_settings({"STREAMWORKER_POOL_MIN_SIZE": "0"}).pool_min_size == 0
    assert load_settings({"STREAMWORKER_POOL_MIN_SIZE": "3"}).pool_min_size == 3
    for bad in ("-1", "Auto ", "two", "1e3"):
        assert config_error({"STREAMWORKER_POOL_MIN_SIZE": bad}).key == "STREAMWORKER_POOL_MIN_SIZE"


def test_the_event_loop_defaults_to_uvloop() -> None:
    assert load_settings({}).event_loop == "uvloop"
    assert load_settings({"STREAMWORKER_EVENT_LOOP": "asyncio"}).event_loop == "asyncio"
