"""`sandbox.probe`'s ping, version and info: the one Docker round trip everyone calls.

No daemon is needed: a real client pointed where nothing listens shows how failures
are worded, and a fake one that never answers shows the time bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import aiodocker
import pytest

from streamworker.errors import DockerUnavailable
from streamworker.sandbox import probe
from streamworker.sandbox.connection import DockerEndpoint, connect, endpoint_of
from tests.conftest import free_port


class _Answer:
    async def read(self) -> bytes:
        return b"OK"


class SlowDocker:
    """Answers every request after `delay_s`; enough of a client for the probe functions."""

    _connection_info = "unix:///slow.sock"
    api_version = "v1.41"

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.system = self
        self.queries: list[tuple[str, dict[str, Any]]] = []

    @asynccontextmanager
    async def _query(self, path: str, **kwargs: Any) -> AsyncIterator[_Answer]:
        self.queries.append((path, kwargs))
        await asyncio.sleep(self.delay_s)
        yield _Answer()

    async def version(self) -> dict[str, Any]:
        await asyncio.sleep(self.delay_s)
        return {"Version": "27.1", "ApiVersion": "1.46", "MinAPIVersion": "1.24", "Os": "linux"}

    async def info(self) -> dict[str, Any]:
        await asyncio.sleep(self.delay_s)
        return {"ContainersRunning": 3}


def client(fake: SlowDocker) -> aiodocker.Docker:
    return cast(aiodocker.Docker, fake)


async def test_ping_is_one_unversioned_round_trip_in_milliseconds() -> None:
    fake = SlowDocker(0.02)
    elapsed_ms = await probe.ping(client(fake))
    assert 15 <= elapsed_ms < 5000
    assert fake.queries == [("_ping", {"versioned_api": False})]


async def test_a_ping_without_answer_is_unavailable_within_its_bound() -> None:
    begin = asyncio.get_running_loop().time()
    with pytest.raises(DockerUnavailable) as caught:
        await probe.ping(client(SlowDocker(10)), timeout_s=0.05)
    assert asyncio.get_running_loop().time() - begin < 5  # the fake answers after 10 s
    assert caught.value.retriable
    assert caught.value.message == "/slow.sock did not answer in time"
    assert isinstance(caught.value.__cause__, TimeoutError)


async def test_a_missing_socket_is_named_with_the_original_kept_as_cause(tmp_path: Path) -> None:
    socket = tmp_path / "no-docker.sock"
    docker = connect(DockerEndpoint(f"unix://{socket}", "unix"))
    try:
        with pytest.raises(DockerUnavailable) as caught:
            await probe.ping(docker)
        with pytest.raises(DockerUnavailable) as by_version:
            await probe.version(docker)
        with pytest.raises(DockerUnavailable) as by_info:
            await probe.info(docker)
    finally:
        await docker.close()
    assert caught.value.message == f"no Docker socket at {socket}"
    assert by_version.value.message == by_info.value.message == caught.value.message
    assert isinstance(caught.value.__cause__, aiodocker.DockerError)


async def test_nothing_listening_on_tcp_is_named() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    docker = connect(DockerEndpoint(url, "tcp"))
    try:
        with pytest.raises(DockerUnavailable, match=f"nothing listens at {url}"):
            await probe.ping(docker, timeout_s=2)
    finally:
        await docker.close()


async def test_a_given_endpoint_words_the_failure() -> None:
    endpoint = DockerEndpoint("unix:///elsewhere.sock", "unix")
    with pytest.raises(DockerUnavailable, match=r"^/elsewhere\.sock did not answer"):
        await probe.ping(client(SlowDocker(10)), timeout_s=0.01, endpoint=endpoint)


async def test_version_and_info_are_plain_data() -> None:
    fake = SlowDocker(0)
    found = await probe.version(client(fake))
    assert (found.version, found.api_version, found.min_api_version) == ("27.1", "1.46", "1.24")
    assert (found.os, found.arch, found.kernel) == ("linux", None, None)
    assert found.client == f"aiodocker {aiodocker.__version__} on API v1.41"
    assert await probe.info(client(fake)) == {"ContainersRunning": 3}
    with pytest.raises(DockerUnavailable, match="did not answer in time"):
        await probe.version(client(SlowDocker(10)), timeout_s=0.01)


async def test_the_endpoint_of_a_client_keeps_its_url_and_kind() -> None:
    for url, kind in (
        ("unix:///var/run/docker.sock", "unix"),
        ("https://10.0.0.5:2376", "tls"),
        ("http://10.0.0.5:2375", "tcp"),
    ):
        docker = connect(DockerEndpoint(url, "unix" if kind == "unix" else "tcp"))
        try:
            assert endpoint_of(docker) == DockerEndpoint(url, kind)  # type: ignore[arg-type]
        finally:
            await docker.close()
