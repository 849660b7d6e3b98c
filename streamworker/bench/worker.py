"""A real `streamworker worker` subprocess for the end-to-end scenarios.

It gets its own consumer group, topics, HTTP port and SQLite database (as the
integration tests do), and an environment built from our `Settings` rather than
inherited, so the worker runs with exactly the configuration the report records.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from streamworker.limits import RunLimits
from streamworker.sandbox.spec import SANDBOX_PATH
from streamworker.settings import DockerSettings, KafkaSecurity, Settings, Topics, load_settings

log = logging.getLogger(__name__)

HEALTH_TIMEOUT_S = 90.0
_LIMIT_PREFIXES = {
    "default_limits": "STREAMWORKER_DEFAULT_",
    "max_limits": "STREAMWORKER_MAX_",
    "compile_limits": "STREAMWORKER_COMPILE_",
}

_NESTED_PREFIXES: dict[type, str] = {
    DockerSettings: "STREAMWORKER_DOCKER_",
    KafkaSecurity: "STREAMWORKER_KAFKA_",
}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def settings_env(settings: Settings) -> dict[str, str]:
    """The `STREAMWORKER_*` environment that `load_settings` turns back into `settings`.

    Field `x_y` is `STREAMWORKER_X_Y`; nested topics, Docker and limits follow their own
    prefixes. `isolated_settings` checks the round trip, so a setting added later under
    another name fails here instead of silently running the worker with its default.
    """
    env: dict[str, str] = {}
    for fld in dataclasses.fields(settings):
        value = getattr(settings, fld.name)
        if isinstance(value, Topics):
            for sub in dataclasses.fields(value):
                env[f"STREAMWORKER_TOPIC_{sub.name.upper()}"] = getattr(value, sub.name)
        elif isinstance(value, DockerSettings | KafkaSecurity):
            prefix = _NESTED_PREFIXES[type(value)]
            for sub in dataclasses.fields(value):
                if getattr(value, sub.name) is not None:
                    env[f"{prefix}{sub.name.upper()}"] = _text(getattr(value, sub.name))
        elif isinstance(value, RunLimits):
            for name, limit in value.as_dict().items():
                env[f"{_LIMIT_PREFIXES[fld.name]}{name.upper()}"] = _text(limit)
        elif value is not None and value != "":
            env[f"STREAMWORKER_{fld.name.upper()}"] = _text(value)
    return env


def isolated_settings(settings: Settings, data_dir: Path, http_port: int) -> Settings:
    """`settings` with a fresh app id, topics, HTTP port and SQLite database."""
    tag = f"bench{uuid.uuid4().hex[:8]}"
    return dataclasses.replace(
        settings,
        app_id=f"streamworker-{tag}",
        topics=Topics(
            submissions=f"{tag}.submissions",
            results=f"{tag}.results",
            docker_health=f"{tag}.docker-health",
            dlq=f"{tag}.submissions.dlq",
        ),
        http_port=http_port,
        data_dir=data_dir,
        database_url=f"sqlite+aiosqlite:///{(data_dir / 'bench.db').resolve()}",
        worker_id=f"bench-worker-{tag}",
    )


def worker_env(settings: Settings) -> dict[str, str]:
    """The worker's whole environment; raises if it would not reproduce `settings`."""
    env = settings_env(settings)
    reloaded = load_settings(env)
    differs = [
        f.name
        for f in dataclasses.fields(settings)
        if getattr(reloaded, f.name) != getattr(settings, f.name)
    ]
    if differs:
        raise ValueError(f"settings not passed on to the bench worker: {', '.join(differs)}")
    env.update({"PATH": SANDBOX_PATH, "LANG": "C.UTF-8", "HOME": str(settings.data_dir)})
    return env


class WorkerProcess:
    """One worker subprocess: migrate its database, start it, wait for health, stop it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.env = worker_env(settings)
        self.log_path = settings.data_dir / "worker.log"
        self.process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "worker not started"
        return self.process.pid

    def log_tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""

    async def _cli(self, *args: str, output: int | None = None) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "streamworker.cli",
            *args,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=output if output is not None else asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )

    async def start(self) -> None:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        migrate = await self._cli("db", "upgrade")
        out, _ = await migrate.communicate()
        if migrate.returncode != 0:
            raise RuntimeError(f"db upgrade failed: {out.decode(errors='replace')[-2000:]}")
        with self.log_path.open("wb") as log_file:
            # The child keeps its own copy of the descriptor.
            self.process = await self._cli(
                "worker", "--loglevel", "warning", output=log_file.fileno()
            )
        await self._wait_healthy()

    async def _wait_healthy(self) -> None:
        url = f"http://{self.settings.http_host}:{self.settings.http_port}/health"
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.returncode is not None:
                    raise RuntimeError(f"worker exited early:\n{self.log_tail()}")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.3)
        raise TimeoutError(f"worker not healthy within {HEALTH_TIMEOUT_S}s:\n{self.log_tail()}")

    async def stop(self) -> None:
        """SIGTERM (the worker drains), then SIGKILL if it outlives its grace period."""
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(self.settings.shutdown_grace_s + 15):
                await self.process.wait()
        except TimeoutError:
            log.warning("bench worker ignored SIGTERM; killing it")
            self.process.kill()
            await self.process.wait()
