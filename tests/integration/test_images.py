"""Build real runtime images (a shared mmdebstrap base, committed language layers); check
the cache, the sharing, the labels and the image's contents."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiodocker
import pytest

from streamworker.images import builder
from streamworker.images.recipe import LABEL
from streamworker.settings import Settings
from tests.conftest import need

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def _docker_ok() -> bool:
    try:
        async with aiodocker.Docker() as docker:
            await docker.version()
    except Exception:
        return False
    return True


@pytest.fixture
async def settings(tmp_path: Path) -> AsyncIterator[Settings]:
    """Settings with a throw-away image prefix; its images are removed afterwards."""
    missing = "" if await _docker_ok() else "Docker is unreachable"
    if not missing and shutil.which("mmdebstrap") is None:
        missing = "mmdebstrap is not installed"
    need(missing or "Docker and mmdebstrap", not missing)
    prefix = f"streamworker-test-{uuid.uuid4().hex[:8]}"
    yield Settings(data_dir=tmp_path / "state", image_prefix=prefix)
    async with aiodocker.Docker() as docker:
        for image in await docker.images.list():
            for tag in image.get("RepoTags") or []:
                if tag.startswith(prefix + "/"):
                    await docker.images.delete(tag, force=True)


async def _run(image: str, cmd: list[str]) -> str:
    async with aiodocker.Docker() as docker:
        container = await docker.containers.create(
            {"Image": image, "Cmd": cmd, "User": "65534:65534", "NetworkDisabled": True}
        )
        try:
            await container.start()
            await container.wait()
            return "".join(await container.log(stdout=True, stderr=True))
        finally:
            await container.delete(force=True)


async def test_build_cache_refresh_and_list(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines: list[str] = []
    [first] = await builder.build_images(["python"], settings=settings, progress=lines.append)
    assert first.ok and first.action == "built", first.error
    assert first.version.startswith("Python 3.")
    assert any("I: downloading" in line for line in lines)
    assert any(line.startswith("[python] built in") for line in lines)

    started = time.monotonic()
    [second] = await builder.build_images(["python"], settings=settings, progress=lines.append)
    assert second.action == "cached" and time.monotonic() - started < 5

    async with aiodocker.Docker() as docker:
        labels = (await docker.images.inspect(first.image))["Config"]["Labels"]
    assert labels[LABEL + "language"] == "python"
    assert labels[LABEL + "version"] == first.version
    assert labels[LABEL + "packages"] == "python3"
    assert labels[LABEL + "suite"] == settings.debian_suite
    assert labels[LABEL + "mirror"].startswith("http")
    assert len(labels[LABEL + "recipe-hash"]) == 16
    mode = await _run(first.image, ["stat", "-c", "%a %u", "/opt/streamworker/sw-run"])
    assert mode.strip() == "755 0"
    setuid = await _run(first.image, ["sh", "-c", "find / -xdev -type f -perm /6000 2>/dev/null"])
    assert setuid.strip() == "", f"setuid/setgid files in the sandbox image: {setuid}"
    assert any(line.startswith("[base] built in") for line in lines)

    # A second language reuses the shared Debian base instead of bootstrapping again.
    lines.clear()
    [bash] = await builder.build_images(["bash"], settings=settings, progress=lines.append)
    assert bash.ok and bash.action == "built", bash.error
    assert not any("bootstrapping" in line for line in lines), lines
    async with aiodocker.Docker() as docker:
        base = await docker.images.inspect(f"{settings.image_prefix}/debian-base:bookworm")
        python_layers = (await docker.images.inspect(first.image))["RootFS"]["Layers"]
        bash_layers = (await docker.images.inspect(bash.image))["RootFS"]["Layers"]
    assert python_layers[0] == bash_layers[0] == base["RootFS"]["Layers"][0]

    # A changed helper re-copies the helper onto the same Debian base: no bootstrap.
    monkeypatch.setattr(builder, "helper_source_hash", lambda: "0123456789abcdef")
    started = time.monotonic()
    [third] = await builder.build_images(["python"], settings=settings, progress=lines.append)
    assert third.action == "refreshed", third.error
    assert time.monotonic() - started < 30
    async with aiodocker.Docker() as docker:
        refreshed = (await docker.images.inspect(first.image))["Config"]["Labels"]
    assert refreshed[LABEL + "helper-hash"] == "0123456789abcdef"
    assert refreshed[LABEL + "base-image"] == labels[LABEL + "base-image"]
    assert refreshed[LABEL + "version"] == first.version

    rows = {row.id: row for row in await builder.list_languages(settings)}
    assert rows["python"].present and rows["python"].up_to_date
    assert rows["python"].version == first.version
    assert not rows["java"].present
