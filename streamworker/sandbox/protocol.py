"""The wire protocol with the in-container helper `sw-run`. Pure; no I/O.

The worker writes a header, the files and the program's stdin; the helper answers with
the program's output and one report line tagged with a fresh nonce the program never
sees (see `sw_run.c`). Two transports: `sw-run run` per `docker exec` (report on
stderr), and `sw-run serve` as an attached container's main process, which answers
each request with frames on its stdout (Docker does not keep the order between a
container's stdout and stderr, so everything travels on one stream).
"""

from __future__ import annotations

import math
import secrets
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from streamworker.errors import HelperProtocolError
from streamworker.sandbox.failure import FailureKind
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
    reset: bool = False
    """Serve only: before this request's files, empty the work dir, /tmp, /dev/shm and
    /dev/mqueue and restore the snapshot (isolates test cases from each other)."""
    fresh: bool = False
    """Serve only: empty the same places and drop the snapshot instead of restoring it,
    so that the container is as a new submission must find it (a pooled container that
    serves another submission)."""
    snapshot: int = 0
    """Serve only: save the work dir as the snapshot; 0 never, 1 after this request's files
    are written (before the run), 2 after the run (e.g. after compiling)."""

    def __post_init__(self) -> None:
        if self.snapshot not in (0, 1, 2):
            raise ValueError(f"snapshot must be 0, 1 or 2, not {self.snapshot!r}")


WIPE_ARGV = (HELPER_PATH, "noop")
WIPE_LIMITS = HelperLimits(
    cpu_time_s=1.0, wall_time_s=5.0, output_bytes=1024, file_size_bytes=0, fresh=True
)
"""The request that readies a used container for another submission: it runs nothing."""


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
    runner_lost: bool = False
    """The program killed the helper's runner: the report is PID 1's own (signal 9)."""


@dataclass(frozen=True)
class RawRun:
    """What one exec produced, read as data: bytes and the helper's report."""

    stdout: bytes
    stderr: bytes
    report: HelperReport | None
    failure: str | None = None
    """Why there is no report (helper killed, worker timeout), when `report` is None."""
    kind: FailureKind | None = None
    """The same as a type, for the verdict (`sandbox.failure`)."""


def new_nonce() -> str:
    return secrets.token_hex(16)


def helper_command(limits: HelperLimits, argv: Sequence[str]) -> list[str]:
    """The exec argv: the helper with its limits, then the program's argv."""
    return [HELPER_PATH, "run", *helper_args(limits, argv)]


def helper_args(limits: HelperLimits, argv: Sequence[str]) -> list[str]:
    """What `sw-run run` takes after `run`: the limits, `--`, the program's argv."""
    return [
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
        *(["--reset", "2"] if limits.fresh else ["--reset", "1"] if limits.reset else []),
        *(["--snapshot", str(limits.snapshot)] if limits.snapshot else []),
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


def encode_request(
    nonce: str,
    limits: HelperLimits,
    argv: Sequence[str],
    files: Sequence[tuple[str, bytes]],
    stdin: bytes,
) -> bytes:
    """One request for `sw-run serve`: its `run` arguments, then exactly `run`'s input."""
    args = [a.encode() for a in helper_args(limits, argv)]
    parts = [f"SWSERVE1 {len(args)}\n".encode()]
    for arg in args:
        parts.append(f"{len(arg)}\n".encode())
        parts.append(arg)
    parts.append(encode_input(nonce, files, stdin))
    return b"".join(parts)


FRAME_HEADER = struct.Struct(">cI")
"""Kind byte and payload length: what `sw-run serve` puts before every payload."""
FRAME_STDOUT = b"O"
FRAME_STDERR = b"E"
FRAME_REPORT = b"R"
FRAME_END = b"Z"
FRAME_KINDS = (FRAME_STDOUT, FRAME_STDERR, FRAME_REPORT, FRAME_END)
FRAME_MAX = 4096
"""PIPE_BUF: the helper writes each frame (header included) in one atomic pipe write."""


def encode_frame(kind: bytes, payload: bytes) -> bytes:
    """A frame as `sw-run serve` writes it (the helper is the only writer; for tests)."""
    if kind not in FRAME_KINDS or FRAME_HEADER.size + len(payload) > FRAME_MAX:
        raise ValueError(f"not a valid frame: {kind!r}, {len(payload)} bytes")
    return FRAME_HEADER.pack(kind, len(payload)) + payload


class FrameDecoder:
    """Splits the bytes of a served container's stdout into (kind, payload) frames.

    Docker re-chunks the stream at will, so bytes are buffered until a frame is whole.
    Anything that is not a frame means the stream is not the helper's: an error, never
    a guess.
    """

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        self._buf.extend(data)
        frames: list[tuple[bytes, bytes]] = []
        size = FRAME_HEADER.size
        while len(self._buf) >= size:
            kind, length = FRAME_HEADER.unpack_from(self._buf)
            if kind not in FRAME_KINDS or size + length > FRAME_MAX:
                raise HelperProtocolError(f"not a helper frame: {bytes(self._buf[:16])!r}")
            if len(self._buf) < size + length:
                break
            frames.append((kind, bytes(self._buf[size : size + length])))
            del self._buf[: size + length]
        return frames

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame (non-zero at the end of a stream: it was cut)."""
        return len(self._buf)


class ServedRun:
    """One request's answer, assembled from its frames.

    Only frames carrying this request's nonce count as its report and its end; a
    mismatch means the stream is out of step, which is an error.
    """

    def __init__(self, nonce: str) -> None:
        self.nonce = nonce
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.report: HelperReport | None = None
        self.done = False

    @property
    def output_bytes(self) -> int:
        return len(self.stdout) + len(self.stderr)

    def add(self, kind: bytes, payload: bytes) -> None:
        if self.done:
            raise HelperProtocolError(f"frame {kind!r} after the end of the run")
        if kind == FRAME_STDOUT:
            self.stdout.extend(payload)
        elif kind == FRAME_STDERR:
            self.stderr.extend(payload)
        elif kind == FRAME_REPORT:
            if self.report is not None:
                raise HelperProtocolError("two reports for one run")
            self.report = parse_report(self.nonce, payload)
        elif kind == FRAME_END:
            if payload != self.nonce.encode():
                raise HelperProtocolError(f"end of another run: {payload[:40]!r}")
            self.done = True
        else:  # pragma: no cover - FrameDecoder only yields known kinds
            raise HelperProtocolError(f"unknown frame kind {kind!r}")

    def raw_run(self) -> RawRun:
        """What the run produced; without a report, the same failure as `run`'s."""
        if self.report is None:
            tail = bytes(self.stderr[-300:]).decode("utf-8", "replace")
            why = f"the sandbox helper sent no report (stderr tail: {tail!r})"
            return RawRun(bytes(self.stdout), bytes(self.stderr), None, why)
        return RawRun(bytes(self.stdout), bytes(self.stderr), self.report)


def parse_report(nonce: str, line: bytes) -> HelperReport:
    """A served run's report frame: "SWRUN <nonce> exit=.. ...\n", nonce checked."""
    mark = b"SWRUN " + nonce.encode() + b" "
    if not line.startswith(mark):
        raise HelperProtocolError(f"report of another run: {line[:60]!r}")
    return _report_fields(line[len(mark) :].split(b"\n", 1)[0].decode("ascii", "replace"))


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
    return stderr[:pos], _report_fields(line)


def _report_fields(line: str) -> HelperReport:
    fields: dict[str, str] = {}
    for item in line.split():
        key, _, value = item.partition("=")
        fields[key] = value
    try:
        exit_code = int(fields["exit"])
        signal = int(fields["signal"])
        oom = int(fields["oom_kills"])
        return HelperReport(
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
            runner_lost=fields.get("runner_lost", "0") == "1",
        )
    except (KeyError, ValueError) as exc:
        raise HelperProtocolError(f"malformed helper report {line!r}") from exc
