"""The gateway under load: the same bursts through HTTP (`POST /submissions?wait=true`,
as a Judge0 client) and straight through Kafka, interleaved in rounds on one worker, so
the difference is what the gateway costs. Loopback only, bounded by `gateway_rounds`
bursts of `burst` submissions each way."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from pathlib import Path

import aiohttp

from streamworker.bench.e2e import KafkaDriver, Phase
from streamworker.bench.options import BenchOptions
from streamworker.bench.programs import Program
from streamworker.bench.results import Row, parallel_row
from streamworker.bench.scenario import GATEWAY_HTTP, KAFKA_DIRECT
from streamworker.bench.worker import worker_env
from streamworker.gateway.judge0_data import languages
from streamworker.languages.registry import load_registry
from streamworker.settings import Settings

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0


def judge0_id(language: str) -> int:
    """The id `/languages` lists for one of our languages."""
    position = list(load_registry()).index(language)
    return int(languages()[position]["id"])


class GatewayProcess:
    """`streamworker gateway` on the bench worker's topics and database."""

    def __init__(self, settings: Settings, port: int, log_path: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.env = {
            **worker_env(settings),
            "STREAMWORKER_GATEWAY_PORT": str(port),
            # The bench measures the path, not the tenant's rate limit: three rounds of a
            # burst per program pass the default 120 a minute (answered 429).
            "STREAMWORKER_GATEWAY_SUBMISSIONS_PER_MINUTE": "1000000",
        }
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log_path.open("wb") as log_file:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "streamworker.cli", "gateway",
                env=self.env, stdin=asyncio.subprocess.DEVNULL, stdout=log_file.fileno(),
                stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT_S
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.process.returncode is not None:
                    raise RuntimeError(f"gateway exited: {self.log_path.read_text()[-2000:]}")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(f"{self.url}/health") as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.3)
        raise TimeoutError(f"gateway not healthy in {START_TIMEOUT_S:g}s")

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(30):
                await self.process.wait()
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


async def http_burst(url: str, program: Program, count: int, timeout_s: float) -> Phase:
    """`count` concurrent `wait=true` POSTs; latency is request sent → response read."""
    body = {
        "source_code": program.source,
        "language_id": judge0_id(program.language),
        "expected_output": program.expected_stdout,
    }
    phase = Phase()
    limits = aiohttp.TCPConnector(limit=count)
    async with aiohttp.ClientSession(connector=limits) as http:

        async def one() -> tuple[float, float]:
            sent = time.perf_counter()
            async with http.post(f"{url}/submissions?wait=true", json=body) as resp:
                answer = await resp.json()
            done = time.perf_counter()
            status = (answer.get("status") or {}).get("id") if isinstance(answer, dict) else None
            if resp.status != 201 or status != 3:
                raise RuntimeError(f"HTTP {resp.status}: {str(answer)[:200]}")
            return sent, done

        first = time.perf_counter()
        try:
            async with asyncio.timeout(timeout_s):
                outcomes = await asyncio.gather(
                    *(one() for _ in range(count)), return_exceptions=True
                )
        except TimeoutError:
            phase.errors.append(f"no answer to the burst within {timeout_s:.0f}s")
            return phase
    last = first
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            phase.errors.append(str(outcome))
        else:
            phase.latencies_s.append(outcome[1] - outcome[0])
            last = max(last, outcome[1])
    phase.elapsed_s = last - first
    return phase


def _merge(phases: list[Phase]) -> Phase:
    merged = Phase()
    for phase in phases:
        merged.latencies_s.extend(phase.latencies_s)
        merged.errors.extend(phase.errors)
        merged.elapsed_s += phase.elapsed_s
    return merged


async def gateway_rows(
    program: Program,
    options: BenchOptions,
    settings: Settings,
    kafka: KafkaDriver,
    gateway_url: str,
    timeout_s: float,
) -> list[Row]:
    """HTTP and Kafka bursts alternating (which goes first alternates too), same sizes."""
    http_phases, kafka_phases = [], []
    for round_no in range(options.gateway_rounds):
        order = ["http", "kafka"] if round_no % 2 == 0 else ["kafka", "http"]
        for way in order:
            if way == "http":
                http_phases.append(await http_burst(gateway_url, program, options.burst, timeout_s))
            else:
                kafka_phases.append(await kafka.burst(program, options.burst, timeout_s))
    conc = settings.concurrency
    rows = []
    for scenario, phase in (
        (GATEWAY_HTTP, _merge(http_phases)),
        (KAFKA_DIRECT, _merge(kafka_phases)),
    ):
        rows.append(
            parallel_row(
                scenario, program.key, phase.latencies_s, phase.errors, phase.elapsed_s, conc
            )
        )
    return rows
