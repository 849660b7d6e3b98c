"""`streamworker doctor`: the whole connection test as one command, printed as a checklist.

Docker (endpoint, daemon, its cgroup/storage/seccomp set-up), the runtime images, one
real run in a throw-away sandbox container, Kafka and its topics, the audit database and
its schema. Every check is bounded in time and runs whatever the others found, so a
broken dependency shows up as one red line with its fix instead of a stack trace.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy.engine import make_url

from streamworker import kafka_security
from streamworker.audit.migrate import head_revision
from streamworker.audit.store import AuditStore
from streamworker.contract import Status, decode_submission
from streamworker.errors import (
    ConfigError,
    DockerUnavailable,
    ImageMissing,
    KafkaRefused,
    LimitNotApplied,
    StreamworkerError,
)
from streamworker.images.builder import list_languages
from streamworker.judge import judge
from streamworker.languages.registry import get_language
from streamworker.sandbox import probe as daemon
from streamworker.sandbox.connection import DockerClient, DockerEndpoint, connect, resolve_endpoint
from streamworker.sandbox.executor import DockerSandbox
from streamworker.sandbox.tls import explain_failure
from streamworker.settings import Settings
from streamworker.worker.topics import topic_names

CHECK_TIMEOUT_S = 15.0
SANDBOX_TIMEOUT_S = 60.0
"""A cold daemon may take a while to create the first container; still bounded."""
HELLO = 'print("hello from the sandbox")\n'
BUILD_IMAGES = "run `streamworker images build` (or `make images`)"
START_STACK = "run `make up`"


@dataclass(frozen=True)
class Check:
    """One line of the checklist."""

    name: str
    ok: bool
    detail: str
    fix: str | None
    elapsed_s: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class CheckFailed(Exception):
    """What a failing check found, and what to do about it."""

    def __init__(self, detail: str, fix: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.fix = fix


Probe = Callable[[], Awaitable[str]]
"""A check's body: returns the detail of a pass, raises `CheckFailed` for a failure."""


async def run_check(name: str, probe: Probe, timeout_s: float = CHECK_TIMEOUT_S) -> Check:
    """Run one probe under its time bound; any failure becomes a failed `Check`."""
    begin = time.monotonic()

    def done(ok: bool, detail: str, fix: str | None) -> Check:
        return Check(name, ok, detail, fix, round(time.monotonic() - begin, 3))

    try:
        async with asyncio.timeout(timeout_s):
            detail = await probe()
    except CheckFailed as exc:
        return done(False, exc.detail, exc.fix)
    except TimeoutError:
        return done(False, f"no answer within {timeout_s:g} s", "see the other checks")
    except Exception as exc:  # a doctor reports; it does not crash
        return done(False, f"{type(exc).__name__}: {exc}", "unexpected: see the detail")
    return done(True, detail, None)


def docker_failure(exc: BaseException, endpoint: DockerEndpoint) -> CheckFailed:
    diagnosis = explain_failure(exc, endpoint)
    return CheckFailed(diagnosis.cause, diagnosis.fix)


def _config_fix(error: ConfigError) -> str:
    if error.key == "DOCKER_CERT_PATH":
        return (
            "set DOCKER_CERT_PATH to a directory holding ca.pem, cert.pem and key.pem "
            "(`dev/tls.sh DIR` makes a set)"
        )
    return (
        "set DOCKER_HOST to unix:///var/run/docker.sock, or to tcp://HOST:2376 with "
        "DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH"
    )


def _security(options: list[str]) -> list[str]:
    """`name=seccomp,profile=default` → `seccomp (default profile)`."""
    names = []
    for option in options:
        fields = dict(part.split("=", 1) for part in option.split(",") if "=" in part)
        name = fields.get("name", option)
        names.append(f"{name} ({fields['profile']} profile)" if "profile" in fields else name)
    return names


class Doctor:
    """The checks, sharing one Docker client; `close()` when done."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.endpoint: DockerEndpoint | None = None
        self.endpoint_error: ConfigError | None = None
        try:
            self.endpoint = resolve_endpoint(settings.docker)
        except ConfigError as exc:
            self.endpoint_error = exc
        self.docker = connect(self.endpoint) if self.endpoint is not None else None

    def checks(self) -> list[tuple[str, Probe, float]]:
        return [
            ("docker.endpoint", self.docker_endpoint, CHECK_TIMEOUT_S),
            ("docker.daemon", self.docker_daemon, CHECK_TIMEOUT_S),
            ("docker.info", self.docker_info, CHECK_TIMEOUT_S),
            ("runtime.images", self.runtime_images, CHECK_TIMEOUT_S),
            ("sandbox.run", self.sandbox_run, SANDBOX_TIMEOUT_S),
            ("kafka", self.kafka, CHECK_TIMEOUT_S),
            ("kafka.topics", self.kafka_topics, CHECK_TIMEOUT_S),
            ("database", self.database, CHECK_TIMEOUT_S),
            ("database.schema", self.database_schema, CHECK_TIMEOUT_S),
        ]

    async def close(self) -> None:
        if self.docker is not None:
            await self.docker.close()

    def _client(self) -> tuple[DockerClient, DockerEndpoint]:
        if self.docker is None or self.endpoint is None:
            raise CheckFailed(
                "skipped: no usable Docker endpoint (see docker.endpoint)",
                "fix docker.endpoint first",
            )
        return self.docker, self.endpoint

    async def docker_endpoint(self) -> str:
        if self.endpoint_error is not None:
            raise CheckFailed(str(self.endpoint_error), _config_fix(self.endpoint_error))
        assert self.endpoint is not None
        how = {"unix": "unix socket", "tcp": "plain TCP (no TLS)", "tls": "TCP with mutual TLS"}
        return f"{self.settings.docker.host} ({how[self.endpoint.kind]})"

    async def docker_daemon(self) -> str:
        docker, endpoint = self._client()
        try:
            ping_ms = await daemon.ping(docker, CHECK_TIMEOUT_S, endpoint=endpoint)
            version = await daemon.version(docker, CHECK_TIMEOUT_S, endpoint=endpoint)
        except DockerUnavailable as exc:
            raise docker_failure(exc.__cause__ or exc, endpoint) from exc
        return (
            f"Docker {version.version} (API {version.api_version}, minimum "
            f"{version.min_api_version}), {version.os}/{version.arch}, kernel "
            f"{version.kernel}; client {version.client}; ping {ping_ms:.1f} ms"
        )

    async def docker_info(self) -> str:
        docker, endpoint = self._client()
        try:
            info = await daemon.info(docker, CHECK_TIMEOUT_S, endpoint=endpoint)
        except DockerUnavailable as exc:
            raise docker_failure(exc.__cause__ or exc, endpoint) from exc
        security = _security(list(info.get("SecurityOptions") or []))
        detail = (
            f"cgroup v{info.get('CgroupVersion', '1')} ({info.get('CgroupDriver')}), "
            f"storage {info.get('Driver')}, security: {', '.join(security) or 'none'}"
        )
        lacking = [
            what
            for what, key in (
                ("memory limits", "MemoryLimit"),
                ("swap limits", "SwapLimit"),
                ("pids limits", "PidsLimit"),
                ("CPU quotas", "CpuCfsQuota"),
            )
            if not info.get(key)
        ]
        if not any(name.startswith("seccomp") for name in security):
            lacking.append("seccomp")
        if lacking:
            raise CheckFailed(
                f"{detail}; the daemon cannot enforce: {', '.join(lacking)}",
                "the sandbox needs all of them: use a Linux host with the memory and pids "
                "cgroup controllers (cgroup v1: boot with swapaccount=1) and a dockerd "
                "built with seccomp",
            )
        return detail + "; memory, swap, pids and CPU limits enforceable"

    async def runtime_images(self) -> str:
        self._client()
        try:
            rows = await list_languages(self.settings)
        except DockerUnavailable as exc:
            raise CheckFailed(exc.message, "see docker.daemon") from exc
        required = set(self.settings.required_languages)
        if required:
            rows = [row for row in rows if row.id in required]
        missing = [row.id for row in rows if not row.present]
        stale = [row.id for row in rows if row.present and not row.up_to_date]
        if not required and missing and len(missing) < len(rows) and not stale:
            # Nothing is required: a missing image is built on demand (`make images`);
            # its submissions are answered internal_error naming that command.
            return (
                f"{len(rows) - len(missing)} of {len(rows)} runtime images present; not built: "
                f"{', '.join(missing)} (their submissions are answered internal_error until "
                f"`streamworker images build <lang>` or `make images`; "
                "STREAMWORKER_REQUIRED_LANGUAGES makes them required)"
            )
        if missing or stale:
            parts = []
            if missing:
                parts.append(f"missing: {', '.join(missing)}")
            if stale:
                parts.append(f"out of date: {', '.join(stale)}")
            raise CheckFailed(
                f"{len(missing) + len(stale)} of {len(rows)} runtime images not ready; "
                + "; ".join(parts),
                BUILD_IMAGES,
            )
        return f"{len(rows)} runtime images present and up to date"

    async def sandbox_run(self) -> str:
        docker, endpoint = self._client()
        event = {
            "submission_id": f"doctor-{uuid.uuid4().hex[:12]}",
            "language": "python",
            "source": HELLO,
            "expected_output": "hello from the sandbox\n",
        }
        begin = time.monotonic()
        try:
            verdict = await judge(
                decode_submission(json.dumps(event).encode()),
                get_language("python"),
                self.settings,
                DockerSandbox(docker, self.settings),
            )
        except ImageMissing as exc:
            raise CheckFailed(exc.message, "run `streamworker images build python`") from exc
        except LimitNotApplied as exc:
            raise CheckFailed(exc.message, "see docker.info: the daemon drops a limit") from exc
        except DockerUnavailable as exc:
            cause = exc.__cause__ or exc
            raise docker_failure(cause, endpoint) from exc
        except StreamworkerError as exc:
            raise CheckFailed(f"{exc.code}: {exc.message}", "see docker.info") from exc
        if verdict.status is not Status.ACCEPTED:
            said = verdict.message or (verdict.runs[0].stderr[-300:] if verdict.runs else "")
            raise CheckFailed(
                f"python hello world was {verdict.status.value}: {said}",
                "rebuild the image (`streamworker images build --force python`) and see "
                "docker.info",
            )
        elapsed_ms = (time.monotonic() - begin) * 1000
        return (
            f"python hello world accepted in {elapsed_ms:.0f} ms under the full sandbox "
            f"settings ({verdict.image}); container removed"
        )

    async def _admin(self) -> AIOKafkaAdminClient:
        admin = AIOKafkaAdminClient(**kafka_security.aiokafka_kwargs(self.settings))
        try:
            await kafka_security.start(self.settings, admin)
        except KafkaRefused as exc:
            await admin.close()
            raise CheckFailed(
                f"Kafka at {self.settings.kafka_bootstrap} refused us: {exc.message}", exc.fix
            ) from exc
        except Exception as exc:
            await admin.close()
            raise CheckFailed(
                f"cannot reach Kafka at {self.settings.kafka_bootstrap}: {exc}",
                f"{START_STACK} (Kafka on 127.0.0.1:9092), or set STREAMWORKER_KAFKA_BOOTSTRAP",
            ) from exc
        return admin

    async def kafka(self) -> str:
        admin = await self._admin()
        try:
            cluster = await admin.describe_cluster()
        finally:
            await admin.close()
        brokers = len(cluster.get("brokers", []))
        return f"{self.settings.kafka_bootstrap} answers ({brokers} broker{'s' * (brokers != 1)})"

    async def kafka_topics(self) -> str:
        admin = await self._admin()
        try:
            existing = set(await admin.list_topics())
        finally:
            await admin.close()
        names = topic_names(self.settings)
        missing = [name for name in names if name not in existing]
        if missing:
            raise CheckFailed(
                f"missing topics: {', '.join(missing)}",
                "start a worker once (`streamworker worker` creates them), or create them",
            )
        return f"{len(names)} topics present: {', '.join(names)}"

    def _database_url(self) -> tuple[str, str]:
        url = self.settings.resolved_database_url()
        return url, make_url(url).render_as_string(hide_password=True)

    async def database(self) -> str:
        url, shown = self._database_url()
        store = await AuditStore.open(url)
        try:
            await store.ping()
        except Exception as exc:
            fix = (
                f"{START_STACK} (PostgreSQL on 127.0.0.1:5432), or fix STREAMWORKER_DATABASE_URL"
                if url.startswith("postgresql")
                else "make sure the directory of the SQLite file exists and is writable"
            )
            raise CheckFailed(f"{shown} does not answer: {exc}", fix) from exc
        finally:
            await store.close()
        return f"{shown} answers"

    async def database_schema(self) -> str:
        url, shown = self._database_url()
        store = await AuditStore.open(url)
        try:
            migrated = await store.is_migrated()
        except Exception as exc:
            raise CheckFailed(f"cannot read the schema version: {exc}", "see database") from exc
        finally:
            await store.close()
        if not migrated:
            raise CheckFailed(
                f"{shown} is not at the head revision {head_revision()}",
                "run `streamworker db upgrade`",
            )
        return f"at the head revision {head_revision()}"


async def run_doctor(settings: Settings) -> list[Check]:
    """Every check, concurrently, each under its own time bound; in a fixed order."""
    doctor = Doctor(settings)
    try:
        return list(
            await asyncio.gather(
                *(run_check(name, probe, timeout) for name, probe, timeout in doctor.checks())
            )
        )
    finally:
        await doctor.close()


def render_text(checks: list[Check]) -> str:
    """The checklist: ✔/✘, the check, what it found, and the fix under each failure."""
    width = max(len(c.name) for c in checks)
    lines = []
    for check in checks:
        lines.append(f"{'✔' if check.ok else '✘'} {check.name:<{width}}  {check.detail}")
        if check.fix:
            lines.append(f"  {'':<{width}}  fix: {check.fix}")
    passed = sum(c.ok for c in checks)
    lines.append(f"{passed} of {len(checks)} checks passed")
    return "\n".join(lines)


def render_json(checks: list[Check]) -> str:
    return json.dumps([c.as_dict() for c in checks], indent=2)
