"""A flame graph of the worker under load: py-spy attached to the bench worker for the
first saturation burst (`streamworker bench --profile docs/worker-flamegraph.svg`; a
`.txt` path gets collapsed stacks instead, a `.json` path speedscope's format).

Sampling from outside the process, so the worker runs unmodified; py-spy writes the SVG
when it is interrupted at the end of the burst."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

log = logging.getLogger(__name__)

SAMPLES_PER_S = 250
FORMATS = {".svg": "flamegraph", ".json": "speedscope", ".txt": "raw"}
"""py-spy's output format by the file's suffix; raw is collapsed stacks, one per line."""


def py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


@contextlib.asynccontextmanager
async def recording(pid: int, svg: Path | None) -> AsyncIterator[None]:
    """Record `pid` while the body runs; nothing when `svg` is None or py-spy is missing."""
    binary = py_spy() if svg is not None else None
    if svg is None or binary is None:
        if svg is not None:
            log.warning("py-spy is not installed (pip install py-spy): no flame graph")
        yield
        return
    svg.parent.mkdir(parents=True, exist_ok=True)
    proc = await asyncio.create_subprocess_exec(
        binary, "record", "--pid", str(pid), "--rate", str(SAMPLES_PER_S),
        "--format", FORMATS.get(svg.suffix, "flamegraph"), "--output", str(svg), "--nonblocking",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    await asyncio.sleep(1.0)  # attached before the load starts
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            async with asyncio.timeout(60):
                _, err = await proc.communicate()
        except TimeoutError:
            proc.kill()
            err = b"timed out writing the flame graph"
        written = await asyncio.to_thread(svg.exists)
        if proc.returncode not in (0, -signal.SIGINT) or not written:
            log.warning("py-spy failed: %s", err.decode(errors="replace")[-500:])
        else:
            log.info("flame graph of the worker at saturation: %s", svg)
