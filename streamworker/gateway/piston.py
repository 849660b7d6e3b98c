"""Piston v2's `/api/v2/runtimes` and `/api/v2/execute`, mapped onto our contract. Pure:
request → submission event, result event → Piston's response, with Piston's messages."""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Mapping
from typing import Any

from streamworker.contract import Status
from streamworker.languages.registry import Language, load_registry
from streamworker.settings import Settings

MAX_FILES = 64
MAX_ARGS = 64


class PistonInvalid(Exception):
    """Piston's 400 `{"message": ...}`."""


def runtimes() -> list[dict[str, Any]]:
    return [
        {"language": lang.piston, "version": lang.version, "aliases": list(lang.piston_aliases)}
        for lang in load_registry().values()
    ]


def find_runtime(language: Any, version: Any) -> Language:
    if not isinstance(language, str) or not isinstance(version, str):
        raise PistonInvalid("language and version are required and must be strings")
    for lang in load_registry().values():
        if language in (lang.piston, *lang.piston_aliases) and version_matches(
            version, lang.version
        ):
            return lang
    raise PistonInvalid(f"{language}-{version} runtime is unknown")


def version_matches(selector: str, version: str) -> bool:
    """`*`, `x`, an exact version, a prefix (`3`, `3.11`) or `3.x`-style wildcards."""
    selector = selector.strip()
    if selector in ("*", "x", "X", ""):
        return True
    parts = re.split(r"[.]", selector.lstrip("^~=v"))
    have = version.split(".")
    for i, part in enumerate(parts):
        if part in ("*", "x", "X"):
            return True
        if i >= len(have) or part != have[i]:
            return False
    return True


def _file(raw: Any, index: int) -> dict[str, str]:
    if not isinstance(raw, dict) or not isinstance(raw.get("content"), str):
        raise PistonInvalid(f"files[{index}].content is required and must be a string")
    encoding = raw.get("encoding", "utf8")
    content = raw["content"]
    if encoding == "utf8":
        out = {"content": content, "encoding": "utf-8"}
    elif encoding in ("base64", "hex"):
        try:
            data = (
                base64.b64decode(content, validate=True)
                if encoding == "base64"
                else bytes.fromhex(content)
            )
        except (binascii.Error, ValueError) as exc:
            raise PistonInvalid(f"files[{index}].content is not valid {encoding}") from exc
        out = {"content": base64.b64encode(data).decode(), "encoding": "base64"}
    else:
        raise PistonInvalid(f"files[{index}].encoding must be one of utf8, base64, hex")
    name = raw.get("name")
    if name is not None:
        if not isinstance(name, str) or not name:
            raise PistonInvalid(f"files[{index}].name must be a non-empty string")
        out["path"] = name
    return out


def _ms(body: Mapping[str, Any], key: str, ceiling_s: float) -> float | None:
    raw = body.get(key)
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise PistonInvalid(f"{key} must be a number")
    if raw <= 0:
        raise PistonInvalid(f"{key} must be positive")
    if raw / 1000 > ceiling_s:
        raise PistonInvalid(
            f"{key} cannot exceed the configured limit of {round(ceiling_s * 1000)}"
        )
    return float(raw) / 1000


def execute_event(
    body: Any, submission_id: str, settings: Settings
) -> tuple[Language, dict[str, Any]]:
    """The runtime and our submission event for one `/api/v2/execute` body."""
    if not isinstance(body, dict):
        raise PistonInvalid("request body must be a JSON object")
    lang = find_runtime(body.get("language"), body.get("version"))
    files_raw = body.get("files")
    if not isinstance(files_raw, list) or not files_raw:
        raise PistonInvalid("files is required as an array")
    if len(files_raw) > MAX_FILES:
        raise PistonInvalid(f"files cannot have more than {MAX_FILES} entries")
    files = [_file(raw, i) for i, raw in enumerate(files_raw)]
    text_files = [f for f in files if f["encoding"] == "utf-8"]
    if not text_files:
        raise PistonInvalid("files must include at least one utf8 encoded file")
    for i, f in enumerate(files):  # the entrypoint first, as Piston does; unnamed: defaults
        f.setdefault("path", lang.source_file if f is text_files[0] else f"file{i}")
    event: dict[str, Any] = {
        "submission_id": submission_id,
        "language": lang.id,
        "files": files,
        "entrypoint": text_files[0]["path"],
        "metadata": {"piston": {"language": body["language"], "version": body["version"]}},
    }
    stdin = body.get("stdin")
    if stdin is not None:
        if not isinstance(stdin, str):
            raise PistonInvalid("stdin must be a string")
        event["stdin"] = stdin
    args = body.get("args")
    if args is not None:
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise PistonInvalid("args must be an array of strings")
        if len(args) > MAX_ARGS:
            raise PistonInvalid(f"args cannot have more than {MAX_ARGS} entries")
        event["args"] = args
    event["limits"] = _limits(body, settings)
    if not event["limits"]:
        del event["limits"]
    return lang, event


def _limits(body: Mapping[str, Any], settings: Settings) -> dict[str, float | int]:
    maximum = settings.max_limits
    limits: dict[str, float | int] = {}
    wall = _ms(body, "run_timeout", maximum.wall_time_s)
    cpu = _ms(body, "run_cpu_time", maximum.cpu_time_s)
    if wall is not None:
        limits["wall_time_s"] = wall
    if cpu is not None:
        limits["cpu_time_s"] = cpu
    _ms(body, "compile_timeout", settings.compile_limits.wall_time_s)
    _ms(body, "compile_cpu_time", settings.compile_limits.cpu_time_s)
    memory = body.get("run_memory_limit")
    if memory is not None and memory != -1:
        if isinstance(memory, bool) or not isinstance(memory, int) or memory <= 0:
            raise PistonInvalid("run_memory_limit must be a positive integer or -1")
        mb = math.ceil(memory / (1024 * 1024))
        if mb > maximum.memory_mb:
            raise PistonInvalid(
                "run_memory_limit cannot exceed the configured limit of "
                f"{maximum.memory_mb * 1024 * 1024}"
            )
        limits["memory_mb"] = max(8, mb)
    return limits


_LETTERS = {
    Status.TIME_LIMIT_EXCEEDED: "TO",
    Status.OUTPUT_LIMIT_EXCEEDED: "OL",
    Status.MEMORY_LIMIT_EXCEEDED: "SG",
    Status.INTERNAL_ERROR: "XX",
    Status.INVALID_SUBMISSION: "XX",
}


def _stage(run: Mapping[str, Any] | None, fallback_message: str | None) -> dict[str, Any]:
    run = run or {}
    status = run.get("status")
    stdout, stderr = str(run.get("stdout") or ""), str(run.get("stderr") or "")
    letter: str | None = None
    if status in _LETTERS:
        letter = _LETTERS[Status(status)]
    elif status == Status.RUNTIME_ERROR or status == Status.COMPILATION_ERROR:
        letter = "SG" if run.get("signal") else "RE"
    signal = run.get("signal")
    if status == Status.MEMORY_LIMIT_EXCEEDED and not signal:
        signal = "SIGKILL"
    message = {
        "SG": f"Memory limit exceeded ({signal})"
        if status == Status.MEMORY_LIMIT_EXCEEDED
        else f"Killed by {signal}",
        "TO": "Time limit exceeded",
        "OL": "Output limit exceeded",
        "XX": fallback_message or "Internal error",
    }.get(letter or "")
    cpu, wall, memory = run.get("cpu_time_s"), run.get("wall_time_s"), run.get("memory_kb")
    return {
        "stdout": stdout,
        "stderr": stderr,
        "output": stdout + stderr,
        "code": run.get("exit_code"),
        "signal": signal,
        "message": message if letter != "RE" else f"Exited with code {run.get('exit_code')}",
        "status": letter,
        "cpu_time": round(cpu * 1000) if isinstance(cpu, int | float) else None,
        "wall_time": round(wall * 1000) if isinstance(wall, int | float) else None,
        "memory": memory * 1024 if isinstance(memory, int) else None,
    }


def execute_response(lang: Language, result: Mapping[str, Any]) -> dict[str, Any]:
    """Piston's response shape from our result event."""
    runs = result.get("runs") or []
    out: dict[str, Any] = {"language": lang.piston, "version": lang.version}
    if lang.compiled:
        out["compile"] = _stage(result.get("compile"), result.get("message"))
    if runs:
        out["run"] = _stage(runs[0], result.get("message"))
    elif result.get("status") == Status.COMPILATION_ERROR:
        out["run"] = _stage(None, None) | {"status": None, "message": None, "output": ""}
    else:
        out["run"] = _stage(
            {"status": result.get("status")}, str(result.get("message") or "Internal error")
        )
    return out
