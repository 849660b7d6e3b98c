"""Helpers of the hostile-input suite: one real worker for a whole module, a background
read_committed reader of its results and DLQ topics, and cases with their expectations.

Everything talks to the stack as an outside client would: submissions are produced with
a plain aiokafka producer, outcomes are read with a plain read_committed consumer, rows
are read from PostgreSQL with SQLAlchemy, and the worker's own figures from `/metrics`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any
from unittest import mock

import aiodocker
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordListTooLargeError
from aiokafka.producer import message_accumulator
from aiokafka.producer import producer as producer_module
from aiokafka.record.default_records import DefaultRecordBatchBuilder, _DefaultRecordBatchBuilderPy
from aiokafka.structs import TopicPartition
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import create_async_engine

from streamworker.sandbox.spec import LABEL_PREFIX
from tests.conftest import REPO, free_port, image_env

RESTART_LINE = "restarting the worker in place"
PRODUCER_LIMIT = 1048576
"""aiokafka's default `max_request_size` (its estimate of one record's size)."""
BROKER_LIMIT = 1048588
"""Kafka's default `message.max.bytes` (the stack's broker keeps the default)."""


# --------------------------------------------------------------------------- the worker


@dataclass
class Worker:
    """One `streamworker worker` process with its own topics and consumer group."""

    tag: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log_path: Path
    http_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def submissions(self) -> str:
        return self.env["STREAMWORKER_TOPIC_SUBMISSIONS"]

    @property
    def results(self) -> str:
        return self.env["STREAMWORKER_TOPIC_RESULTS"]

    @property
    def dlq(self) -> str:
        return self.env["STREAMWORKER_TOPIC_DLQ"]

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_text()[-chars:]

    def restarts(self) -> int:
        """How often the worker restarted itself in place (exec, same pid) so far."""
        return self.log_text().count(RESTART_LINE)

    def state(self) -> str:
        """One line for assertion messages: is the worker the same, live process?"""
        code = self.process.poll()
        alive = "alive" if code is None else f"EXITED with {code}"
        return f"worker pid {self.process.pid} {alive}, in-place restarts so far: {self.restarts()}"


def http_get(url: str, timeout_s: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())


async def wait_ready(worker: Worker, timeout_s: float) -> None:
    """Until `/ready` answers 200: Docker healthy, Kafka connected, partitions assigned."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last = "no answer"
    while loop.time() < deadline:
        if worker.process.poll() is not None:
            raise RuntimeError(f"worker exited with {worker.process.returncode}")
        try:
            status, body = await asyncio.to_thread(http_get, f"{worker.url}/ready", 2.0)
        except OSError as exc:
            last = repr(exc)
        else:
            if status == 200:
                return
            last = f"{status} {body[:300]!r}"
        await asyncio.sleep(0.3)
    raise TimeoutError(f"{worker.url}/ready not 200 within {timeout_s}s (last: {last})")


def _spawn(
    argv: list[str], env: dict[str, str], data_dir: Path, log_path: Path
) -> subprocess.Popen[bytes]:
    data_dir.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log_file:
        return subprocess.Popen(
            argv, env=env, stdout=log_file, stderr=subprocess.STDOUT, cwd=str(REPO)
        )


async def start_worker(
    tag: str, bootstrap: str, database_url: str, data_dir: Path, **extra: str
) -> Worker:
    """Start a worker on topics `<tag>.*` and consumer group `streamworker-<tag>`."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMWORKER_")}
    env.update(image_env())
    env.update(
        {
            "STREAMWORKER_KAFKA_BOOTSTRAP": bootstrap,
            "STREAMWORKER_APP_ID": f"streamworker-{tag}",
            "STREAMWORKER_TOPIC_SUBMISSIONS": f"{tag}.submissions",
            "STREAMWORKER_TOPIC_RESULTS": f"{tag}.results",
            "STREAMWORKER_TOPIC_DLQ": f"{tag}.submissions.dlq",
            "STREAMWORKER_TOPIC_DOCKER_HEALTH": f"{tag}.docker-health",
            "STREAMWORKER_HTTP_PORT": str(port),
            "STREAMWORKER_DATA_DIR": str(data_dir),
            "STREAMWORKER_WORKER_ID": f"worker-{tag}",
            "STREAMWORKER_DATABASE_URL": database_url,
            # Only python's image is needed (and maybe built): /ready must not wait for others.
            "STREAMWORKER_REQUIRED_LANGUAGES": "python",
        }
    )
    env.update(extra)
    exe = str(Path(sys.executable).with_name("streamworker"))
    upgrade = await asyncio.to_thread(
        subprocess.run, [exe, "db", "upgrade"], env=env, capture_output=True, check=False
    )
    if upgrade.returncode != 0:
        raise RuntimeError(f"db upgrade failed: {upgrade.stderr.decode(errors='replace')}")
    log_path = data_dir.parent / f"worker-{tag}.log"
    process = await asyncio.to_thread(_spawn, [exe, "worker"], env, data_dir, log_path)
    worker = Worker(tag, env, process, log_path, port)
    try:
        await wait_ready(worker, 90)
    except (RuntimeError, TimeoutError) as exc:
        await stop_worker(worker)
        raise RuntimeError(f"{exc}\n{worker.log_tail()}") from exc
    return worker


async def stop_worker(worker: Worker, grace_s: float = 30.0) -> None:
    if worker.process.poll() is None:
        worker.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(worker.process.wait, grace_s)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            await asyncio.to_thread(worker.process.wait)


async def delete_topics(bootstrap: str, prefixes: Sequence[str]) -> list[str]:
    """Delete every topic whose name starts with one of `prefixes`; the names deleted."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(tuple(prefixes))]
        if names:
            await admin.delete_topics(names)
        return names
    finally:
        await admin.close()


async def containers_named(prefix: str) -> list[str]:
    """Names of the containers (any state) whose name starts with `prefix`."""
    async with aiodocker.Docker() as docker:
        found = await docker.containers.list(all=True, filters=json.dumps({"name": [prefix]}))
        names = [str(c["Names"][0]).lstrip("/") for c in found]
    return sorted(n for n in names if n.startswith(prefix))


async def wait_no_containers(prefix: str, timeout_s: float) -> list[str]:
    """Poll until no container name starts with `prefix` (or timeout); what is left."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        left = await containers_named(prefix)
        if not left or loop.time() > deadline:
            return left
        await asyncio.sleep(0.5)


async def remove_containers_of(worker_id: str) -> int:
    """Force-remove every container the worker created (pool and submissions alike)."""
    label = f"{LABEL_PREFIX}.worker-id={worker_id}"
    async with aiodocker.Docker() as docker:
        found = await docker.containers.list(all=True, filters=json.dumps({"label": [label]}))
        for container in found:
            with contextlib.suppress(aiodocker.DockerError):
                await container.delete(force=True)
    return len(found)


# --------------------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class Answer:
    """One result event as read from the results topic."""

    value: dict[str, Any]
    size: int
    partition: int
    offset: int


@dataclass(frozen=True)
class DeadLetter:
    """One DLQ record as read from the DLQ topic."""

    key: bytes | None
    value: bytes
    headers: dict[str, bytes]
    partition: int
    offset: int


class Outcomes:
    """Reads the worker's results and DLQ topics (read_committed) in the background for
    the whole module; tests wait on what it has seen."""

    def __init__(self, bootstrap: str, results: str, dlq: str) -> None:
        self.bootstrap = bootstrap
        self.results_topic = results
        self.dlq_topic = dlq
        self.results: dict[str, list[Answer]] = defaultdict(list)
        self.dead: dict[bytes | None, list[DeadLetter]] = defaultdict(list)
        self.unreadable: list[tuple[int, int, bytes]] = []
        self._changed = asyncio.Condition()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.error: BaseException | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            self.results_topic,
            self.dlq_topic,
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            enable_auto_commit=False,
            group_id=None,
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(), name="hostile-outcomes")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    async def _run(self) -> None:
        assert self._consumer is not None
        try:
            while True:
                batch = await self._consumer.getmany(timeout_ms=200)
                for tp, records in batch.items():
                    for record in records:
                        self._add(tp.topic, record.partition, record.offset, record)
                if batch:
                    async with self._changed:
                        self._changed.notify_all()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # surfaced by wait_until
            self.error = exc
            async with self._changed:
                self._changed.notify_all()

    def _add(self, topic: str, partition: int, offset: int, record: Any) -> None:
        raw = bytes(record.value or b"")
        if topic == self.dlq_topic:
            headers = {k: bytes(v or b"") for k, v in (record.headers or ())}
            key = bytes(record.key) if record.key is not None else None
            self.dead[key].append(DeadLetter(key, raw, headers, partition, offset))
            return
        try:
            value = json.loads(raw)
        except ValueError:
            self.unreadable.append((partition, offset, raw[:200]))
            return
        sid = value.get("submission_id") if isinstance(value, dict) else None
        if isinstance(sid, str):
            self.results[sid].append(Answer(value, len(raw), partition, offset))
        else:
            self.unreadable.append((partition, offset, raw[:200]))

    async def wait_until(self, done: Callable[[], bool], timeout_s: float) -> bool:
        """True once `done()` holds, False when `timeout_s` passed first."""
        try:
            async with asyncio.timeout(timeout_s), self._changed:
                await self._changed.wait_for(lambda: done() or self.error is not None)
        except TimeoutError:
            return done()
        if self.error is not None:
            raise RuntimeError(f"the outcome reader failed: {self.error!r}") from self.error
        return True

    async def catch_up(self, timeout_s: float = 10.0) -> bool:
        """Until everything committed so far on both topics has been read (the read_committed
        end offsets are the last stable offsets)."""
        consumer = self._consumer
        assert consumer is not None
        partitions = [
            TopicPartition(topic, p)
            for topic in (self.results_topic, self.dlq_topic)
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        ends = await consumer.end_offsets(partitions)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            behind = [tp for tp in partitions if await consumer.position(tp) < ends[tp]]
            if not behind:
                return True
            if loop.time() > deadline:
                return False
            await asyncio.sleep(0.2)


# --------------------------------------------------------------------------- cases


class Need(Enum):
    ONE = "exactly one"
    MAYBE = "at most one"
    NONE = "none"


Check = Callable[["Seen"], list[str]]


@dataclass(frozen=True)
class Seen:
    """What the worker answered for one event."""

    answers: list[Answer]
    dead: list[DeadLetter]

    @property
    def result(self) -> dict[str, Any] | None:
        return self.answers[0].value if self.answers else None


@dataclass
class Case:
    """One hostile event and what must come of it.

    `key` identifies its DLQ record (the DLQ keeps the key as received); `sid` its
    result. `broker` says what to do when the broker refuses the event itself:
    `"refuses"` expects that (then nothing may come of it), `"may_refuse"` allows it and
    sends `fallback` instead.
    """

    name: str
    key: bytes
    value: bytes
    sid: str | None
    result: Need
    dlq: Need
    check: Check | None = None
    max_request_size: int = PRODUCER_LIMIT
    compression: str | None = None
    broker: str = "accepts"
    fallback: Case | None = None
    notes: list[str] = field(default_factory=list)
    delivered: bool = True
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    """Record headers; a key may be a `RawHeaderKey` to put bytes that are not UTF-8."""
    tombstone: bool = False
    """Send a null value (`value` must then be b"")."""


class RawHeaderKey(str):
    """A header key that aiokafka's pure-Python record builder writes as `raw` bytes,
    though Kafka's clients decode header keys as UTF-8 (kcat or librdkafka send such
    keys just as easily)."""

    raw: bytes = b"\xff\xfe"

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.raw


@contextlib.contextmanager
def python_record_builder() -> Iterator[None]:
    """aiokafka's pure-Python batch builder for the sends inside (it honours
    `RawHeaderKey`; the C builder encodes keys itself)."""
    with (
        mock.patch.object(
            message_accumulator, "DefaultRecordBatchBuilder", _DefaultRecordBatchBuilderPy
        ),
        mock.patch.object(
            producer_module, "DefaultRecordBatchBuilder", _DefaultRecordBatchBuilderPy
        ),
    ):
        yield


def json_event(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


def record_estimate(key: bytes | None, value: bytes) -> int:
    """aiokafka's size estimate of one record, the figure `max_request_size` limits."""
    return int(DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, []))


def pad_to_estimate(key: bytes, make: Callable[[int], bytes], target: int) -> bytes:
    """`make(n)` for the `n` whose record estimate is exactly `target` bytes."""
    n = max(0, target - record_estimate(key, make(0)))
    for _ in range(64):
        size = record_estimate(key, make(n))
        if size == target:
            return make(n)
        n += target - size
        n = max(n, 0)
    raise AssertionError(f"could not size an event to exactly {target} bytes")


def broker_refusal(exc: BaseException) -> bool:
    """The broker (not the client) refused a record as too large."""
    client_side = "when serialized" in str(exc)
    return isinstance(exc, MessageSizeTooLargeError | RecordListTooLargeError) and not client_side


async def send_cases(bootstrap: str, topic: str, cases: Iterable[Case]) -> list[str]:
    """Produce each case as an outside client would; problems with sending, if any."""
    problems: list[str] = []
    for case in cases:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            max_request_size=case.max_request_size,
            compression_type=case.compression,
            request_timeout_ms=30000,
        )
        await producer.start()
        try:
            raw_keys = any(isinstance(k, RawHeaderKey) for k, _ in case.headers)
            with python_record_builder() if raw_keys else contextlib.nullcontext():
                await producer.send_and_wait(
                    topic,
                    None if case.tombstone else case.value,
                    key=case.key,
                    headers=case.headers or None,
                )
        except KafkaError as exc:
            if case.broker == "accepts":
                problems.append(f"{case.name}: producing it failed: {exc!r}")
            elif not broker_refusal(exc):
                problems.append(f"{case.name}: refused, but not by the broker: {exc!r}")
            else:
                case.delivered = False
                case.notes.append(f"the broker refused it ({type(exc).__name__})")
                if case.fallback is not None:
                    await producer.send_and_wait(topic, case.fallback.value, key=case.fallback.key)
        finally:
            await producer.stop()
    return problems


def effective(case: Case) -> Case:
    """The case whose outcome counts: the fallback when the broker refused the original."""
    if not case.delivered and case.fallback is not None:
        return case.fallback
    return case


def seen(outcomes: Outcomes, case: Case) -> Seen:
    answers = list(outcomes.results.get(case.sid, [])) if case.sid else []
    return Seen(answers, list(outcomes.dead.get(case.key, [])))


def settled(outcomes: Outcomes, case: Case) -> bool:
    """Everything the case requires has arrived (or, refused by the broker, nothing can)."""
    case = effective(case)
    if not case.delivered:
        return True
    got = seen(outcomes, case)
    if case.result is Need.ONE and not got.answers:
        return False
    if case.dlq is Need.ONE and not got.dead:
        return False
    return bool(got.answers or got.dead)


def describe(got: Seen) -> str:
    parts = []
    for answer in got.answers:
        value = answer.value
        runs = [
            (
                r.get("test_case_id"),
                r.get("status"),
                r.get("exit_code"),
                r.get("signal"),
                f"out {len(str(r.get('stdout') or ''))}/{r.get('stdout_bytes')}"
                f"{'+cut' if r.get('stdout_truncated') else ''}"
                f"{'+b64' if r.get('stdout_b64') else ''}",
                f"err {len(str(r.get('stderr') or ''))}/{r.get('stderr_bytes')}"
                f"{'+cut' if r.get('stderr_truncated') else ''}",
            )
            for r in value.get("runs") or []
        ]
        message = str(value.get("message"))
        parts.append(
            f"result status={value.get('status')!r} message={message[:200]!r}"
            f"{'…' if len(message) > 200 else ''} runs={runs[:3]}"
            f"{'…' if len(runs) > 3 else ''} ({answer.size} bytes)"
        )
    for dead in got.dead:
        error = dead.headers.get("error", b"")[:200]
        parts.append(f"DLQ record error={error!r} ({len(dead.value)} bytes)")
    return "; ".join(parts) or "nothing"


def dead_letter_problems(original: bytes, dead: Sequence[DeadLetter]) -> list[str]:
    """A DLQ record carries the contract's headers and the original bytes untouched, or a
    prefix of them declared by `value_truncated: true` and `value_bytes`."""
    problems = []
    for record in dead:
        missing = {"error", "error_type", "source_topic", "source_partition", "source_offset"}
        missing -= set(record.headers)
        if missing:
            problems.append(f"DLQ record lacks header(s) {sorted(missing)}")
        if record.headers.get("value_truncated") == b"true":
            if not original.startswith(record.value) or len(record.value) >= len(original):
                problems.append("DLQ value flagged truncated is not a shorter prefix of the event")
            if record.headers.get("value_bytes") != str(len(original)).encode():
                problems.append(
                    f"DLQ value_bytes = {record.headers.get('value_bytes')!r}, "
                    f"expected {len(original)}"
                )
        elif record.value != original:
            problems.append(
                f"DLQ value is not the original bytes ({len(record.value)} bytes, "
                f"event {len(original)}) and not flagged value_truncated"
            )
    return problems


def evaluate(outcomes: Outcomes, case: Case) -> list[str]:
    """Problems with one case's outcome, each naming the case and what was seen."""
    original = case
    case = effective(case)
    got = seen(outcomes, case)
    name = case.name if case is original else f"{original.name} (sent as {case.name})"
    note = f" [{'; '.join(original.notes)}]" if original.notes else ""
    if not case.delivered:
        if got.answers or got.dead:
            return [f"{name}: refused by the broker, yet answered: {describe(got)}{note}"]
        return []
    problems = []
    for need, count, what in (
        (case.result, len(got.answers), "result"),
        (case.dlq, len(got.dead), "DLQ record"),
    ):
        wanted = {Need.ONE: (1,), Need.MAYBE: (0, 1), Need.NONE: (0,)}[need]
        if count not in wanted:
            problems.append(f"{name}: expected {need.value} {what}, saw {count}")
    problems.extend(f"{name}: {p}" for p in dead_letter_problems(case.value, got.dead))
    if not got.answers and not got.dead:
        problems.append(f"{name}: no outcome at all (neither a result nor a DLQ record)")
    elif case.check is not None and not problems:
        problems.extend(f"{name}: {p}" for p in case.check(got))
    if problems:
        problems[-1] += f" — seen: {describe(got)}{note}"
    return problems


# --------------------------------------------------------------------------- SQL, metrics


async def execution_statuses(url: str, sids: Iterable[str]) -> dict[str, str | None]:
    """`executions.status` of each submission that has a row."""
    ids = sorted(set(sids))
    if not ids:
        return {}
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT submission_id, status FROM executions WHERE submission_id IN :ids"
                ).bindparams(bindparam("ids", expanding=True)),
                {"ids": ids},
            )
            return {str(r[0]): (None if r[1] is None else str(r[1])) for r in rows}
    finally:
        await engine.dispose()


async def wait_execution_rows(
    url: str, sids: Iterable[str], timeout_s: float
) -> dict[str, str | None]:
    """Poll until every submission has an `executions` row with a status (or timeout)."""
    wanted = set(sids)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        rows = await execution_statuses(url, wanted)
        if all(rows.get(s) for s in wanted) or loop.time() > deadline:
            return rows
        await asyncio.sleep(0.5)


async def metric(worker: Worker, name: str) -> float | None:
    """The value of an unlabelled metric on the worker's `/metrics` page."""
    status, body = await asyncio.to_thread(http_get, f"{worker.url}/metrics")
    if status != 200:
        return None
    for line in body.decode(errors="replace").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == name:
            return float(parts[1])
    return None


async def wait_metric(worker: Worker, name: str, want: float, timeout_s: float) -> float | None:
    """Poll `/metrics` until `name` equals `want` (or timeout); the last value seen."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        try:
            value = await metric(worker, name)
        except OSError:
            value = None
        if value == want or loop.time() > deadline:
            return value
        await asyncio.sleep(0.5)
