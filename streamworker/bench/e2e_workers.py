"""A bench worker with what the e2e phases measure it by: its RSS and CPU, its pool
counters (scraped from its `/metrics`), and a Kafka driver on its own topics.

One per event loop (`--loops`): each gets its own topics, HTTP port and database, so
two workers in the same run never take each other's submissions.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp

from streamworker.bench.cpu import CpuMeter
from streamworker.bench.e2e import KafkaDriver
from streamworker.bench.pool_metrics import phase_counts, pools_short
from streamworker.bench.rss import RssSampler, status_kb
from streamworker.bench.worker import WorkerProcess, isolated_settings
from streamworker.sandbox.pool_sizing import pool_floor
from streamworker.settings import Settings

log = logging.getLogger(__name__)

SCRAPE_TIMEOUT_S = 5.0
WARM_TIMEOUT_S = 180.0
"""How long `start` waits for the worker's pools to fill before measuring anyway."""
WARM_POLL_S = 0.5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BenchWorker:
    """One `streamworker worker` subprocess on `event_loop`, and its meters."""

    def __init__(self, settings: Settings, event_loop: str, data_dir: Path) -> None:
        isolated = isolated_settings(settings, data_dir, free_port())
        self.settings = dataclasses.replace(isolated, event_loop=event_loop)
        self.event_loop = event_loop
        self.process = WorkerProcess(self.settings)
        self.driver = KafkaDriver(self.settings)
        self.sampler: RssSampler | None = None
        self.cpu: CpuMeter | None = None
        self._before: str | None = None
        self._driving = False
        self.lifetime_peak_kb: int | None = None
        self.warm_s: float | None = None
        """Seconds from healthy to every pre-warmed pool at its floor (None: not reached)."""

    @property
    def metrics_url(self) -> str:
        return f"http://{self.settings.http_host}:{self.settings.http_port}/metrics"

    async def start(self) -> None:
        await self.process.start()
        self.sampler = RssSampler(self.process.pid)
        self.sampler.start()
        self.cpu = CpuMeter(self.process.pid, with_children=True)
        self._driving = True
        await self.driver.start()
        await self._wait_warm()

    async def _wait_warm(self) -> None:
        """Until every pre-warmed pool holds its floor. A healthy worker is still creating
        its pools (15 containers for three languages): a phase measured meanwhile would
        bill those creates to its submissions, and baseline B would share the daemon."""
        languages = list(self.settings.pool_languages)
        floor = pool_floor(self.settings)
        if not languages or floor <= 0:
            self.warm_s = 0.0
            return
        began = time.monotonic()
        short = languages
        while time.monotonic() - began < WARM_TIMEOUT_S:
            page = await self._scrape()
            short = languages if page is None else pools_short(page, floor, languages)
            if not short:
                self.warm_s = time.monotonic() - began
                log.info("bench worker pools warm in %.1f s", self.warm_s)
                return
            await asyncio.sleep(WARM_POLL_S)
        log.warning(
            "pools %s not at their floor after %.0f s; measuring anyway", short, WARM_TIMEOUT_S
        )

    async def stop(self) -> None:
        """Stops whatever started; records the worker's lifetime peak RSS first."""
        if self.process.process is not None:
            self.lifetime_peak_kb = status_kb(self.process.pid, "VmHWM")
        if self.sampler is not None:
            await self.sampler.stop()
        if self._driving:
            await self.driver.stop()
        await self.process.stop()

    async def _scrape(self) -> str | None:
        """The worker's metrics page, or None (logged): a phase then has no pool figures."""
        try:
            timeout = aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT_S)
            async with (
                aiohttp.ClientSession(timeout=timeout) as http,
                http.get(self.metrics_url) as resp,
            ):
                resp.raise_for_status()
                return await resp.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("could not scrape %s: %s", self.metrics_url, exc)
            return None

    async def begin_phase(self) -> None:
        """Scrape, then reset the meters, so the scrape is not billed to the phase."""
        assert self.sampler is not None and self.cpu is not None, "worker not started"
        self._before = await self._scrape()
        self.sampler.reset()
        self.cpu.start()

    async def end_phase(self, language: str, runs: int) -> dict[str, Any]:
        """The phase's figures as `Row` fields: peak RSS, CPU per run, pool, loop."""
        assert self.sampler is not None and self.cpu is not None, "worker not started"
        cpu = self.cpu.per_run_ms(runs)
        peak_mib = self.sampler.peak_kb / 1024
        after = await self._scrape()
        return {
            **cpu,
            "peak_rss_mib": peak_mib,
            "pool": phase_counts(self._before, after, language),
            "event_loop": self.event_loop,
        }

    def facts(self) -> dict[str, Any]:
        """What the report records about this worker's configuration and memory."""
        ws = self.settings
        kb = self.lifetime_peak_kb
        return {
            "event_loop": self.event_loop,
            "concurrency": ws.concurrency,
            "processing_guarantee": ws.processing_guarantee,
            "commit_interval_s": ws.commit_interval_s,
            "commit_after_ack_s": ws.commit_after_ack_s,
            "pool_languages": list(ws.pool_languages),
            "pool_min_size": pool_floor(self.settings),
            "pools_warm_s": None if self.warm_s is None else round(self.warm_s, 1),
            "pool_max_size": ws.pool_max_size,
            "topic_partitions": ws.topic_partitions,
            "lifetime_peak_rss_mib": None if kb is None else round(kb / 1024, 1),
        }
