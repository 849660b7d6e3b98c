"""Gateway processes for the integration tests: a real `streamworker gateway` on a free
loopback port, on the same isolated topics and database as a test worker."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, free_port

EXE = str(Path(sys.executable).with_name("streamworker"))


@dataclass
class GatewayHandle:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]


def http(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
    timeout_s: float = 90,
) -> tuple[int, Any, dict[str, str]]:
    """(status, parsed JSON body or text, lower-cased headers): errors are answers too."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status, payload, got = response.status, response.read(), _lower(response.headers)
    except urllib.error.HTTPError as exc:
        status, payload, got = exc.code, exc.read(), _lower(exc.headers)
    text = payload.decode("utf-8", "replace")
    try:
        return status, json.loads(text) if text else None, got
    except ValueError:
        return status, text, got


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[Any]:
    """Factory: a gateway with `env` (a worker's), stopped at teardown."""
    handles: list[GatewayHandle] = []

    def start(env: dict[str, str], **extra: str) -> GatewayHandle:
        port = free_port()
        environ = {**env, "STREAMWORKER_GATEWAY_PORT": str(port), **extra}
        log_path = tmp_path / f"gateway-{port}.log"
        process = subprocess.Popen(
            [EXE, "gateway"],
            env=environ,
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
            cwd=str(REPO),
        )
        handle = GatewayHandle(process, port, log_path)
        handles.append(handle)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"gateway exited with {process.returncode}\n{handle.log()}")
            with contextlib.suppress(OSError):  # not listening yet
                if http("GET", f"{handle.url}/health", timeout_s=2)[0] == 200:
                    return handle
            time.sleep(0.3)
        raise TimeoutError(f"gateway did not answer\n{handle.log()}")

    yield start
    for handle in handles:
        if handle.process.poll() is None:
            handle.process.terminate()
            try:
                handle.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                handle.process.kill()


def clean_sdk_env() -> None:
    """The SDK reads JUDGE0_* from the environment (and a .env): none may leak in."""
    for key in list(os.environ):
        if key.startswith("JUDGE0_"):
            del os.environ[key]


def _lower(headers: Any) -> dict[str, str]:
    """Header names in lower case (HTTP names are case-insensitive; Starlette sends lower)."""
    return {str(k).lower(): str(v) for k, v in headers.items()}
