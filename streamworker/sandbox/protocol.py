"""The wire protocol with the in-container helper `sw-run`. Pure; no I/O.

The worker writes a header, the files and the program's stdin; the helper answers with
the program's output and one report line on stderr tagged with a fresh nonce the
program never sees (see `sw_run.c`).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from streamworker.errors import HelperProtocolError
from streamworker.sandbox.helper import HELPER_PATH

REPORT_MARK = b"\x1eSWRUN "
WORKER_GRACE_S = 5.0
"""How long past the helper's own wall limit the worker waits before killing the container."""


@dataclass(frozen=True)
class HelperLimits:
    """What the helper enforces for one process tree."""

    cpu_time_s: float
    wall_time_s: float
    output_bytes: int
    file_size_bytes: int
    nofile: int = 256


@dataclass(frozen=True)
class HelperReport:
    """The helper's trusted figures for one run."""

    exit_code: int | None
    signal: int | None
    cpu_time_s: float
    wall_time_s: float
    memory_kb: int
    oom_kills: int | None
    timed_out: bool
    output_exceeded: bool
    overflow_stream: int
    output_bytes: int
    exec_errno: int


@dataclass(frozen=True)
class RawRun:
    """What one exec produced, read as data: bytes and the helper's report."""

    stdout: bytes
    stderr: bytes
    report: HelperReport | None
    failure: str | None = None
    """Why there is no report (helper killed, worker timeout), when `report` is None."""


def new_nonce() -> str:
    return secrets.token_hex(16)


def helper_command(limits: HelperLimits, argv: Sequence[str]) -> list[str]:
    """The exec argv: the helper with its limits, then the program's argv."""
    return [
        HELPER_PATH,
        "run",
        "--cpu-ms",
        str(max(1, math.ceil(limits.cpu_time_s * 1000))),
        "--wall-ms",
        str(max(1, math.ceil(limits.wall_time_s * 1000))),
        "--out-bytes",
        str(limits.output_bytes),
        "--fsize-bytes",
        str(limits.file_size_bytes),
        "--nofile",
        str(limits.nofile),
        "--",
        *argv,
    ]


def encode_input(nonce: str, files: Sequence[tuple[str, bytes]], stdin: bytes) -> bytes:
    """Header, files and stdin exactly as `sw-run` reads them."""
    parts = [f"SWRUN1 {nonce} {len(files)} {len(stdin)}\n".encode()]
    for path, content in files:
        raw_path = path.encode()
        parts.append(f"{len(raw_path)} {len(content)}\n".encode())
        parts.append(raw_path)
        parts.append(content)
    parts.append(stdin)
    return b"".join(parts)


def split_report(nonce: str, stderr: bytes) -> tuple[bytes, HelperReport]:
    """Separate the program's stderr from the helper's report (the last tagged line).

    Raises `HelperProtocolError` when no report with our nonce is present: the helper
    was killed or never ran, and nothing the program printed is taken as figures.
    """
    mark = REPORT_MARK + nonce.encode() + b" "
    pos = stderr.rfind(mark)
    if pos < 0:
        tail = stderr[-300:].decode("utf-8", "replace")
        raise HelperProtocolError(f"the sandbox helper sent no report (stderr tail: {tail!r})")
    line = stderr[pos + len(mark) :].split(b"\n", 1)[0].decode("ascii", "replace")
    fields: dict[str, str] = {}
    for item in line.split():
        key, _, value = item.partition("=")
        fields[key] = value
    try:
        exit_code = int(fields["exit"])
        signal = int(fields["signal"])
        oom = int(fields["oom_kills"])
        report = HelperReport(
            exit_code=exit_code if exit_code >= 0 else None,
            signal=signal or None,
            cpu_time_s=int(fields["cpu_us"]) / 1e6,
            wall_time_s=int(fields["wall_us"]) / 1e6,
            memory_kb=int(fields["maxrss_kb"]),
            oom_kills=oom if oom >= 0 else None,
            timed_out=fields["timed_out"] == "1",
            output_exceeded=fields["output_exceeded"] == "1",
            overflow_stream=int(fields.get("overflow_stream", "0")),
            output_bytes=int(fields["out_bytes"]),
            exec_errno=int(fields["exec_errno"]),
        )
    except (KeyError, ValueError) as exc:
        raise HelperProtocolError(f"malformed helper report {line!r}") from exc
    return stderr[:pos], report
