"""A Judge0 CE 1.13.1 submission object from what we know of it: the stored request and,
once answered, our result event. Pure; every type and date format is the one the
official SDK parses (it raises on anything else)."""

from __future__ import annotations

import base64
import signal as signals
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from streamworker.contract import Status, judge0_status_id
from streamworker.gateway.judge0_data import STATUS_NAMES, judge0_name, language_ids, status_object

DEFAULT_FIELDS = (
    "token",
    "time",
    "memory",
    "stdout",
    "stderr",
    "compile_output",
    "message",
    "status",
)
ALL_FIELDS = (
    "source_code", "language_id", "stdin", "expected_output", "stdout", "status_id",
    "created_at", "finished_at", "time", "memory", "stderr", "token", "number_of_runs",
    "cpu_time_limit", "cpu_extra_time", "wall_time_limit", "memory_limit", "stack_limit",
    "max_processes_and_or_threads", "enable_per_process_and_thread_time_limit",
    "enable_per_process_and_thread_memory_limit", "max_file_size", "compile_output",
    "exit_code", "exit_signal", "message", "wall_time", "compiler_options",
    "command_line_arguments", "redirect_stderr_to_stdout", "callback_url",
    "additional_files", "enable_network", "status", "language",
)  # fmt: skip
EXTENSION_FIELDS = ("streamworker_status", "streamworker_result", "test_case_id")
"""Ours, only when named in `fields` (never under `*`: the SDK rejects unknown keys)."""
ENCODED_FIELDS = frozenset(
    {"stdout", "stderr", "compile_output", "message", "source_code", "stdin", "expected_output"}
)
UTF8_ERROR = (
    "some attributes for this submission cannot be converted to UTF-8, "
    "use base64_encoded=true query parameter"
)
QUEUED, PROCESSING = 1, 2


class InvalidFields(Exception):
    """`fields=` named something Judge0 does not have: 400 `invalid fields: [...]`."""


class NotUtf8(Exception):
    """An output is not UTF-8 and the caller did not ask for base64 (Judge0's 400)."""


def parse_fields(raw: str | None) -> tuple[str, ...]:
    if raw is None or raw.strip() == "":
        return DEFAULT_FIELDS
    names = [name.strip() for name in raw.split(",") if name.strip()]
    if "*" in names:
        return ALL_FIELDS + tuple(n for n in names if n in EXTENSION_FIELDS)
    bad = [n for n in names if n not in ALL_FIELDS and n not in EXTENSION_FIELDS]
    if bad:
        raise InvalidFields(f"invalid fields: [{', '.join(bad)}]")
    return tuple(dict.fromkeys(names))


def judge0_time(value: datetime | str | None) -> str | None:
    """`2026-01-01T12:00:00.123Z`: exactly what the SDK's `strptime` accepts."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class View:
    """Everything one rendering needs."""

    token: str
    tenant: str
    created_at: datetime
    request: Mapping[str, Any]
    """`Judge0Request.echo()` as stored."""
    case_index: int | None = None
    """For a fused batch item: which test case of the shared submission is this token's."""
    started: bool = False
    result: Mapping[str, Any] | None = None


def _decoded(text_b64: str | None) -> bytes | None:
    return None if text_b64 is None else base64.b64decode(text_b64)


def _output(run: Mapping[str, Any] | None, stream: str) -> bytes | None:
    if run is None:
        return None
    raw_b64 = run.get(f"{stream}_b64")
    if raw_b64:
        return base64.b64decode(raw_b64)
    text = run.get(stream)
    return None if text is None else str(text).encode("utf-8")


def _runs_of(view: View) -> list[Mapping[str, Any]]:
    runs = list((view.result or {}).get("runs") or [])
    if view.case_index is not None:
        return runs[view.case_index : view.case_index + 1]
    return runs


def _status_id(view: View, runs: list[Mapping[str, Any]]) -> int:
    if view.result is None:
        return PROCESSING if view.started else QUEUED
    result = view.result
    if view.case_index is not None and runs:
        run = runs[0]
        try:
            return judge0_status_id(Status(run["status"]), run.get("signal"))
        except (ValueError, KeyError):
            return 13
    if view.case_index is not None and result.get("runs"):
        return 13  # an earlier case took the container with it: this one never ran
    status_id = result.get("judge0_status_id")
    return status_id if isinstance(status_id, int) and status_id in STATUS_NAMES else 13


def _message(
    status_id: int, result: Mapping[str, Any] | None, run: Mapping[str, Any] | None
) -> str | None:
    if result is None:
        return None
    status = (run or {}).get("status") or result.get("status")
    if status == Status.MEMORY_LIMIT_EXCEEDED:
        return "Memory limit exceeded"
    if status == Status.OUTPUT_LIMIT_EXCEEDED:
        return "Output limit exceeded"
    if status_id == 5:
        return "Time limit exceeded"
    if run is not None and run.get("signal"):
        number = _signal_number(run.get("signal"))
        return f"Caught fatal signal {number}" if number else str(run["signal"])
    if run is not None and run.get("exit_code") not in (None, 0):
        return f"Exited with error status {run['exit_code']}"
    message = result.get("message")
    return str(message) if message and status_id in (13, 14) else None


def _signal_number(name: Any) -> int | None:
    try:
        return int(signals.Signals[str(name)].value)
    except KeyError:
        return None


def _average(runs: list[Mapping[str, Any]], key: str) -> float | None:
    values = [float(r[key]) for r in runs if r.get(key) is not None]
    return sum(values) / len(values) if values else None


def _merge(first: bytes | None, second: bytes | None) -> bytes | None:
    if first is None and second is None:
        return None
    return (first or b"") + (second or b"")


def measured(view: View) -> dict[str, Any]:
    """The response fields that come from the result (raw bytes for the texts)."""
    runs = _runs_of(view)
    first = runs[0] if runs else None
    compile_run = (view.result or {}).get("compile")
    status_id = _status_id(view, runs)
    stdout, stderr = _output(first, "stdout"), _output(first, "stderr")
    if view.request.get("flags", {}).get("redirect_stderr_to_stdout") and view.result:
        stdout, stderr = _merge(stdout, stderr), None
    cpu, wall, memory = (_average(runs, k) for k in ("cpu_time_s", "wall_time_s", "memory_kb"))
    signal_number = _signal_number(first.get("signal")) if first else None
    exit_code = first.get("exit_code") if first else None
    return {
        "status_id": status_id,
        "stdout": stdout,
        "stderr": stderr or None,
        "compile_output": _merge(_output(compile_run, "stdout"), _output(compile_run, "stderr"))
        if compile_run and (compile_run.get("stdout") or compile_run.get("stderr"))
        else None,
        "message": (m.encode() if (m := _message(status_id, view.result, first)) else None),
        "time": f"{cpu:.3f}" if cpu is not None else None,
        "wall_time": f"{wall:.3f}" if wall is not None else None,
        "memory": round(memory) if memory is not None else None,
        "exit_code": 0 if signal_number else exit_code,
        "exit_signal": signal_number,
        "finished_at": judge0_time((view.result or {}).get("finished_at")),
    }


def _requested(view: View) -> dict[str, Any]:
    req = view.request
    numbers, flags = req.get("numbers", {}), req.get("flags", {})
    language_id = int(req["language_id"])
    lang = language_ids().get(language_id)

    def number(name: str) -> Any:
        value = numbers.get(name)
        return None if value is None else (str(value) if isinstance(value, float) else value)

    return {
        "source_code": _decoded(req.get("source_code")),
        "stdin": _decoded(req.get("stdin")),
        "expected_output": _decoded(req.get("expected_output")),
        "language_id": language_id,
        "language": {"id": language_id, "name": judge0_name(lang) if lang else str(language_id)},
        "number_of_runs": int(numbers.get("number_of_runs", 1)),
        "cpu_time_limit": number("cpu_time_limit"),
        "cpu_extra_time": number("cpu_extra_time"),
        "wall_time_limit": number("wall_time_limit"),
        "memory_limit": _int(numbers.get("memory_limit")),
        "stack_limit": _int(numbers.get("stack_limit")),
        "max_processes_and_or_threads": _int(numbers.get("max_processes_and_or_threads")),
        "max_file_size": _int(numbers.get("max_file_size")),
        "enable_per_process_and_thread_time_limit": False,
        "enable_per_process_and_thread_memory_limit": False,
        "redirect_stderr_to_stdout": bool(flags.get("redirect_stderr_to_stdout", False)),
        "enable_network": False,
        "compiler_options": None,
        "command_line_arguments": req.get("command_line_arguments"),
        "callback_url": req.get("callback_url"),
        "additional_files": None,
        "created_at": judge0_time(view.created_at),
        "token": view.token,
    }


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def render(view: View, fields: Iterable[str], encoded: bool) -> dict[str, Any]:
    """The submission object with exactly `fields`; raises `NotUtf8` when it must."""
    values = {**_requested(view), **measured(view)}
    values["status"] = status_object(values["status_id"])
    values["streamworker_status"] = _our_status(view)
    values["streamworker_result"] = dict(view.result) if view.result else None
    values["test_case_id"] = view.case_index
    out: dict[str, Any] = {}
    for name in fields:
        value = values.get(name)
        if name in ENCODED_FIELDS and isinstance(value, bytes):
            if encoded:
                value = base64.b64encode(value).decode()
            else:
                try:
                    value = value.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise NotUtf8(UTF8_ERROR) from exc
        out[name] = value
    return out


def _our_status(view: View) -> str | None:
    runs = _runs_of(view)
    if view.result is None:
        return None
    if view.case_index is not None and runs:
        return str(runs[0].get("status"))
    return str(view.result.get("status"))
