"""A Judge0 CE 1.13.1 submission request: validated with Judge0's own messages (its 422
shape is `{"field": ["message"]}`) and turned into our submission event. Pure."""

from __future__ import annotations

import base64
import binascii
import math
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from streamworker.gateway.judge0_data import language_ids, limit_ceiling
from streamworker.languages.registry import Language
from streamworker.settings import Settings

MAX_ARGUMENTS_CHARS = 512
MAX_CALLBACK_URL_BYTES = 2048
BLANK = "can't be blank"
NUMBER_FIELDS: dict[str, float] = {
    # field → its minimum (Judge0's model validations)
    "cpu_time_limit": 0,
    "cpu_extra_time": 0,
    "wall_time_limit": 1,
    "memory_limit": 2048,
    "stack_limit": 0,
    "max_processes_and_or_threads": 1,
    "max_file_size": 0,
    "number_of_runs": 1,
}
INTEGER_FIELDS = frozenset(
    {
        "memory_limit",
        "stack_limit",
        "max_processes_and_or_threads",
        "max_file_size",
        "number_of_runs",
    }
)
BOOLEAN_FIELDS = (
    "enable_per_process_and_thread_time_limit",
    "enable_per_process_and_thread_memory_limit",
    "redirect_stderr_to_stdout",
    "enable_network",
)
TEXT_FIELDS = ("source_code", "stdin", "expected_output")


class Judge0Invalid(Exception):
    """The request breaks Judge0's rules; `errors` is its 422 body."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors


@dataclass(frozen=True)
class Judge0Request:
    """A valid request, normalised: texts as bytes, numbers as numbers, defaults unset."""

    language_id: int
    language: Language
    source_code: bytes
    stdin: bytes | None = None
    expected_output: bytes | None = None
    numbers: dict[str, float] = field(default_factory=dict)
    flags: dict[str, bool] = field(default_factory=dict)
    command_line_arguments: str | None = None
    callback_url: str | None = None

    @property
    def number_of_runs(self) -> int:
        return int(self.numbers.get("number_of_runs", 1))

    @property
    def redirect_stderr_to_stdout(self) -> bool:
        return self.flags.get("redirect_stderr_to_stdout", False)

    def echo(self) -> dict[str, Any]:
        """What is stored to answer `fields=*` later (JSON-safe; texts base64)."""
        return {
            "language_id": self.language_id,
            "source_code": _b64(self.source_code),
            "stdin": _b64(self.stdin),
            "expected_output": _b64(self.expected_output),
            "numbers": dict(self.numbers),
            "flags": dict(self.flags),
            "command_line_arguments": self.command_line_arguments,
            "callback_url": self.callback_url,
        }


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def lenient_b64decode(text: str) -> bytes:
    """Ruby's `Base64.decode64`: characters outside the alphabet are skipped."""
    cleaned = re.sub(r"[^A-Za-z0-9+/]", "", text)
    cleaned = cleaned[: len(cleaned) - len(cleaned) % 4] if len(cleaned) % 4 == 1 else cleaned
    try:
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4))
    except (binascii.Error, ValueError):
        return b""


def _text(
    body: dict[str, Any], name: str, encoded: bool, errors: dict[str, list[str]]
) -> bytes | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        value = str(value) if isinstance(value, int | float) else None
        if value is None:
            errors.setdefault(name, []).append("is invalid")
            return None
    return lenient_b64decode(value) if encoded else value.encode("utf-8", "surrogatepass")


def _number(name: str, raw: Any, settings: Settings, errors: dict[str, list[str]]) -> float | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        errors.setdefault(name, []).append("is not a number")
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        errors.setdefault(name, []).append("is not a number")
        return None
    if not math.isfinite(value):
        errors.setdefault(name, []).append("is not a number")
        return None
    if name in INTEGER_FIELDS and value != int(value):
        errors.setdefault(name, []).append("must be an integer")
        return None
    minimum, maximum = NUMBER_FIELDS[name], limit_ceiling(settings)[name]
    if value < minimum:
        errors.setdefault(name, []).append(f"must be greater than or equal to {_num(minimum)}")
    elif value > maximum:
        errors.setdefault(name, []).append(f"must be less than or equal to {_num(maximum)}")
    else:
        return value
    return None


def _num(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def _flag(raw: Any) -> bool | None:
    if raw is None or isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.lower() in ("true", "1", "false", "0"):
        return raw.lower() in ("true", "1")
    if isinstance(raw, int):
        return bool(raw)
    return None


def _language(body: dict[str, Any], errors: dict[str, list[str]]) -> tuple[int, Language] | None:
    raw = body.get("language_id")
    if raw is None or raw == "":
        errors.setdefault("language_id", []).append(BLANK)
        return None
    try:
        language_id = int(str(raw).strip())
    except ValueError:
        errors.setdefault("language_id", []).append(f"language with id {raw} doesn't exist")
        return None
    lang = language_ids().get(language_id)
    if lang is None:
        errors.setdefault("language_id", []).append(f"language with id {language_id} doesn't exist")
        return None
    return language_id, lang


def parse_request(body: Any, encoded: bool, settings: Settings) -> Judge0Request:
    """Validate one request body the way Judge0 does; raises `Judge0Invalid`."""
    if not isinstance(body, dict):
        raise Judge0Invalid({"base": ["request body must be a JSON object"]})
    errors: dict[str, list[str]] = {}
    texts = {name: _text(body, name, encoded, errors) for name in TEXT_FIELDS}
    if not texts["source_code"] and "source_code" not in errors:
        errors.setdefault("source_code", []).append(BLANK)
    language = _language(body, errors)
    numbers = {}
    for name in NUMBER_FIELDS:
        value = _number(name, body.get(name), settings, errors)
        if value is not None:
            numbers[name] = value
    flags: dict[str, bool] = {}
    for name in BOOLEAN_FIELDS:
        value = _flag(body.get(name))
        if value is None and body.get(name) is not None:
            errors.setdefault(name, []).append("is not included in the list")
        elif value is not None:
            flags[name] = value
    for name in BOOLEAN_FIELDS[:2]:
        if flags.get(name):
            errors.setdefault(name, []).append("this option cannot be enabled")
    if flags.get("enable_network"):
        errors.setdefault("enable_network", []).append("enabling network is not allowed")
    if body.get("compiler_options") not in (None, ""):
        errors.setdefault("compiler_options", []).append("setting compiler options is not allowed")
    if body.get("additional_files") not in (None, ""):
        errors.setdefault("additional_files", []).append("additional files are not allowed")
    arguments = _arguments(body.get("command_line_arguments"), errors)
    callback = _callback(body.get("callback_url"), errors)
    if errors or language is None:
        raise Judge0Invalid(errors)
    source = texts["source_code"]
    assert source is not None  # checked above: blank is an error
    return Judge0Request(
        language_id=language[0],
        language=language[1],
        source_code=source,
        stdin=texts["stdin"],
        expected_output=texts["expected_output"],
        numbers=numbers,
        flags=flags,
        command_line_arguments=arguments,
        callback_url=callback,
    )


def _arguments(raw: Any, errors: dict[str, list[str]]) -> str | None:
    if raw in (None, ""):
        return None
    if not isinstance(raw, str):
        errors.setdefault("command_line_arguments", []).append("is invalid")
        return None
    if len(raw) > MAX_ARGUMENTS_CHARS:
        errors.setdefault("command_line_arguments", []).append(
            f"is too long (maximum is {MAX_ARGUMENTS_CHARS} characters)"
        )
        return None
    try:
        shlex.split(raw)
    except ValueError:
        errors.setdefault("command_line_arguments", []).append("is invalid")
        return None
    if "\x00" in raw:
        errors.setdefault("command_line_arguments", []).append("is invalid")
        return None
    return raw


def _callback(raw: Any, errors: dict[str, list[str]]) -> str | None:
    if raw in (None, ""):
        return None
    ok = (
        isinstance(raw, str)
        and len(raw.encode("utf-8", "surrogatepass")) <= MAX_CALLBACK_URL_BYTES
        and re.fullmatch(r"https?://[^\s/?#]+[^\s]*", raw) is not None
    )
    if not ok:
        errors.setdefault("callback_url", []).append("is invalid")
        return None
    assert isinstance(raw, str)
    return raw


def _text_or_b64(data: bytes, text_key: str, b64_key: str) -> dict[str, str]:
    try:
        return {text_key: data.decode("utf-8")}
    except UnicodeDecodeError:
        return {b64_key: base64.b64encode(data).decode()}


def _limits(request: Judge0Request) -> dict[str, float | int]:
    numbers = request.numbers
    limits: dict[str, float | int] = {}
    if "cpu_time_limit" in numbers and numbers["cpu_time_limit"] > 0:
        limits["cpu_time_s"] = numbers["cpu_time_limit"]
    if "wall_time_limit" in numbers:
        limits["wall_time_s"] = numbers["wall_time_limit"]
    if "memory_limit" in numbers:
        limits["memory_mb"] = max(8, math.ceil(numbers["memory_limit"] / 1024))
    if "max_processes_and_or_threads" in numbers:
        limits["processes"] = int(numbers["max_processes_and_or_threads"])
    if "max_file_size" in numbers and numbers["max_file_size"] > 0:
        limits["file_size_kb"] = int(numbers["max_file_size"])
    return limits


def submission_event(
    request: Judge0Request, submission_id: str, metadata: dict[str, Any]
) -> dict[str, Any]:
    """Our submission event for one Judge0 request (`number_of_runs` → that many cases)."""
    event: dict[str, Any] = {
        "submission_id": submission_id,
        "language": request.language.id,
        "metadata": metadata,
    }
    try:
        event["source"] = request.source_code.decode("utf-8")
    except UnicodeDecodeError:
        event["files"] = [
            {
                "path": request.language.source_file,
                "content": base64.b64encode(request.source_code).decode(),
                "encoding": "base64",
            }
        ]
    case: dict[str, Any] = {}
    if request.stdin is not None:
        case.update(_text_or_b64(request.stdin, "stdin", "stdin_b64"))
    if request.expected_output is not None:
        case["expected_output"] = request.expected_output.decode("utf-8", "replace")
    if request.number_of_runs > 1:
        event["test_cases"] = [dict(case) for _ in range(request.number_of_runs)]
    else:
        event.update(case)
    if request.command_line_arguments:
        event["args"] = shlex.split(request.command_line_arguments)
    limits = _limits(request)
    if limits:
        event["limits"] = limits
    return event
