"""JSON Schemas (draft 2020-12) of the public v1 events, built from the contract itself.

The schemas are plain dicts made from the contract's own constants (statuses, compare
modes, limit names, the submission id pattern, the decode budgets), so they cannot drift
from the code without a test noticing: the committed copies under `schemas/` must equal
what `build_schemas()` returns. Regenerate them with

    python -m streamworker.contract.schema --write schemas/

A schema says what JSON Schema can say; the decoder checks more (UTF-8 byte counts,
totals across fields, relative paths, duplicate ids, the metadata budget), so an event a
schema accepts may still be answered `invalid_submission`, never the other way round
for the rules a schema does state. Building them does no I/O; only `main` writes files.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from streamworker.budgets import BUDGETS, DecodeBudgets
from streamworker.contract.fields import SUBMISSION_ID_RE
from streamworker.contract.health import DockerStatus
from streamworker.contract.status import SCHEMA_VERSION, Compare, Status
from streamworker.contract.submission import INTEGER_LIMITS
from streamworker.limits import DEFAULT_LIMITS, LIMIT_NAMES

DIALECT = "https://json-schema.org/draft/2020-12/schema"
ID_BASE = "urn:streamworker:schema:"
"""`$id`s are URNs: they name the schemas without pointing anywhere."""

SUBMISSION_FILE = f"submission.v{SCHEMA_VERSION}.json"
RESULT_FILE = f"result.v{SCHEMA_VERSION}.json"
HEALTH_FILE = f"docker-health.v{SCHEMA_VERSION}.json"

BASE64_PATTERN = "^[A-Za-z0-9+/]*={0,2}$"
"""Strict base64 (no whitespace), as the decoder requires."""
UTC_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$"
"""ISO 8601 in UTC with a `Z` suffix, as every event time is written."""
_NUMBER_CEILING = 1e15
"""The decoder refuses limit values at or above this."""


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _text(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **extra}


def _b64_chars(limit: int) -> int:
    """The longest base64 text that can decode to at most `limit` bytes."""
    return 4 * -(-limit // 3)


def _b64(description: str, limit: int | None = None) -> dict[str, Any]:
    out = _text(description, pattern=BASE64_PATTERN)
    if limit is not None:
        out["maxLength"] = _b64_chars(limit)
    return out


def _stdin_properties(b: DecodeBudgets) -> dict[str, Any]:
    """`stdin` / `stdin_b64` / `expected_output`, shared by the event and its test cases.
    A character is at least one UTF-8 byte, so a byte budget is also a `maxLength`."""
    return {
        "stdin": _text(
            f"Standard input as text, at most {b.max_stdin_bytes} UTF-8 bytes.",
            maxLength=b.max_stdin_bytes,
        ),
        "stdin_b64": _b64(
            f"Standard input as strict base64 of at most {b.max_stdin_bytes} bytes "
            "(additive to v1); not together with `stdin`.",
            b.max_stdin_bytes,
        ),
        "expected_output": _nullable(
            _text(
                f"What the program should print, at most {b.max_expected_output_bytes} "
                "UTF-8 bytes; null or absent means no comparison.",
                maxLength=b.max_expected_output_bytes,
            )
        ),
    }


_NOT_BOTH_STDIN = {"not": {"required": ["stdin", "stdin_b64"]}}


def _limits_schema() -> dict[str, Any]:
    props: dict[str, Any] = {}
    defaults = DEFAULT_LIMITS.as_dict()
    for name in LIMIT_NAMES:
        props[name] = {
            "type": "integer" if name in INTEGER_LIMITS else "number",
            "exclusiveMinimum": 0,
            "exclusiveMaximum": _NUMBER_CEILING,
            "description": f"Server default {defaults[name]}; above the server maximum "
            "is `invalid_submission`.",
        }
    return {
        "type": "object",
        "description": "Per-run limits; a limit left out takes the server default.",
        "properties": props,
        "additionalProperties": False,
    }


def _files_schema(b: DecodeBudgets) -> dict[str, Any]:
    return {
        "type": "array",
        "description": f"Source files, at most {b.max_source_bytes} bytes together "
        "after base64 decoding.",
        "minItems": 1,
        "maxItems": b.max_files,
        "items": {
            "type": "object",
            "required": ["path", "content"],
            "properties": {
                "path": _text(
                    f"Relative POSIX path, at most {b.max_path_bytes} UTF-8 bytes, "
                    "without NUL, '\\\\' or '..'; unique within `files`.",
                    minLength=1,
                    maxLength=b.max_path_bytes,
                ),
                "content": _text("The file's content, as `encoding` says."),
                "encoding": {
                    "enum": ["utf-8", "base64"],
                    "default": "utf-8",
                    "description": "How `content` is written.",
                },
            },
            "if": {"required": ["encoding"], "properties": {"encoding": {"const": "base64"}}},
            "then": {
                "properties": {
                    "content": {
                        "pattern": BASE64_PATTERN,
                        "maxLength": _b64_chars(b.max_source_bytes),
                    }
                }
            },
            "else": {"properties": {"content": {"maxLength": b.max_source_bytes}}},
        },
    }


def _test_cases_schema(b: DecodeBudgets) -> dict[str, Any]:
    return {
        "type": "array",
        "description": "One run per case; when absent, one run of the top-level stdin.",
        "maxItems": b.max_test_cases,
        "items": {
            "type": "object",
            "properties": {
                "id": {
                    "anyOf": [
                        {"type": "string", "minLength": 1, "maxLength": b.max_test_case_id_chars},
                        {"type": "integer"},
                    ],
                    "description": "Unique case id (an integer is read as its text); "
                    "default: the case's 1-based position.",
                },
                **_stdin_properties(b),
            },
            **_NOT_BOTH_STDIN,
        },
    }


def submission_schema(b: DecodeBudgets = BUDGETS) -> dict[str, Any]:
    """The submission event (`streamworker.submissions`)."""
    return {
        "$schema": DIALECT,
        "$id": f"{ID_BASE}{SUBMISSION_FILE}",
        "title": f"streamworker submission event v{SCHEMA_VERSION}",
        "description": "A submission to run. The worker also enforces what a schema "
        "cannot state (byte totals, path rules, unique ids, metadata size and depth); "
        "budgets are the documented defaults (see docs/contract.md).",
        "type": "object",
        "required": ["submission_id", "language"],
        "properties": {
            "submission_id": _submission_id(),
            "schema_version": {"const": SCHEMA_VERSION, "default": SCHEMA_VERSION},
            "language": _text(
                "A language id of the worker's registry.",
                minLength=1,
                maxLength=b.max_language_chars,
            ),
            "source": _text(
                f"A single source file, at most {b.max_source_bytes} UTF-8 bytes.",
                maxLength=b.max_source_bytes,
            ),
            "files": _files_schema(b),
            "entrypoint": _text(
                "The file to run, one of `files[].path`.",
                minLength=1,
                maxLength=b.max_path_bytes,
            ),
            **_stdin_properties(b),
            "args": {
                "type": "array",
                "description": f"Program arguments, at most {b.max_args_total_bytes} "
                "UTF-8 bytes together.",
                "maxItems": b.max_args,
                "items": _text(
                    f"One argument without NUL, at most {b.max_arg_bytes} UTF-8 bytes.",
                    maxLength=b.max_arg_bytes,
                    pattern="^[^\\u0000]*$",
                ),
            },
            "test_cases": _test_cases_schema(b),
            "limits": _limits_schema(),
            "compare": {
                "enum": [c.value for c in Compare],
                "default": Compare.TRAILING_WHITESPACE.value,
            },
            "metadata": {
                "type": "object",
                "description": f"Echoed in the result; at most {b.max_metadata_bytes} bytes "
                f"as JSON and {b.max_metadata_depth} levels deep.",
            },
        },
        "oneOf": [{"required": ["source"]}, {"required": ["files"]}],
        **_NOT_BOTH_STDIN,
    }


def _submission_id() -> dict[str, Any]:
    return _text(
        "The idempotency key: 1 to 128 characters of A-Z a-z 0-9 . _ : -",
        pattern=f"^(?:{SUBMISSION_ID_RE.pattern})$",
    )


def _time(description: str) -> dict[str, Any]:
    return _text(description, format="date-time", pattern=UTC_PATTERN)


def _run_schema() -> dict[str, Any]:
    count = {"type": ["integer", "null"], "minimum": 0}
    seconds = {"type": ["number", "null"], "minimum": 0}
    props: dict[str, Any] = {
        "test_case_id": {"type": ["string", "null"]},
        "status": {"enum": [s.value for s in Status]},
        "stdout": {"type": "string"},
        "stderr": {"type": "string"},
        "stdout_truncated": {"type": "boolean"},
        "stderr_truncated": {"type": "boolean"},
        "exit_code": {"type": ["integer", "null"]},
        "signal": {"type": ["string", "null"]},
        "cpu_time_s": seconds,
        "wall_time_s": seconds,
        "memory_kb": count,
        "stdout_bytes": count,
        "stderr_bytes": count,
    }
    required = sorted(props)
    props["stdout_b64"] = _b64("The kept stdout bytes, only when they are not UTF-8.")
    props["stderr_b64"] = _b64("The kept stderr bytes, only when they are not UTF-8.")
    return {"type": "object", "required": required, "properties": props}


def result_schema() -> dict[str, Any]:
    """The result event (`streamworker.results`)."""
    props: dict[str, Any] = {
        "submission_id": _submission_id(),
        "schema_version": {"const": SCHEMA_VERSION},
        "event_id": _text("Unique per result; kept when a result is republished."),
        "status": {"enum": [s.value for s in Status], "description": "The overall verdict."},
        "judge0_status_id": {"type": "integer", "minimum": 1},
        "message": {"type": ["string", "null"]},
        "language": {"type": ["string", "null"]},
        "runtime": {
            "type": "object",
            "required": ["image", "image_id"],
            "properties": {
                "image": {"type": ["string", "null"]},
                "image_id": {"type": ["string", "null"]},
            },
        },
        "compile": _nullable({"$ref": "#/$defs/run"}),
        "runs": {"type": "array", "items": {"$ref": "#/$defs/run"}},
        "metadata": {"type": "object"},
        "worker_id": {"type": "string"},
        "attempt": {"type": "integer", "minimum": 1},
        "received_at": _time("When the worker read the submission."),
        "started_at": _nullable(_time("When the first step started; null when none ran.")),
        "finished_at": _time("When the result was made."),
    }
    return {
        "$schema": DIALECT,
        "$id": f"{ID_BASE}{RESULT_FILE}",
        "title": f"streamworker result event v{SCHEMA_VERSION}",
        "description": "The one answer to a submission; fields may be added within v1.",
        "type": "object",
        "required": sorted(props),
        "properties": props,
        "$defs": {"run": _run_schema()},
    }


def health_schema() -> dict[str, Any]:
    """The Docker-health event (`streamworker.docker-health`)."""
    nullable_text = {"type": ["string", "null"]}
    docker: dict[str, Any] = {
        "reachable": {"type": "boolean"},
        "connection": {"type": "string"},
        "version": nullable_text,
        "api_version": nullable_text,
        "ping_ms": {"type": ["number", "null"], "minimum": 0},
        "containers_running": {"type": ["integer", "null"], "minimum": 0},
        "missing_images": {"type": "array", "items": {"type": "string"}},
    }
    props: dict[str, Any] = {
        "worker_id": {"type": "string"},
        "schema_version": {"const": SCHEMA_VERSION},
        "status": {"enum": [s.value for s in DockerStatus]},
        "reason": {"type": ["string", "null"], "description": "Null when healthy."},
        "docker": {"type": "object", "required": sorted(docker), "properties": docker},
        "observed_at": _time("When the daemon was checked."),
    }
    return {
        "$schema": DIALECT,
        "$id": f"{ID_BASE}{HEALTH_FILE}",
        "title": f"streamworker Docker-health event v{SCHEMA_VERSION}",
        "description": "A worker's view of its Docker daemon; fields may be added within v1.",
        "type": "object",
        "required": sorted(props),
        "properties": props,
    }


def build_schemas() -> dict[str, dict[str, Any]]:
    """File name -> schema, for every public event."""
    return {
        SUBMISSION_FILE: submission_schema(),
        RESULT_FILE: result_schema(),
        HEALTH_FILE: health_schema(),
    }


def render(schema: dict[str, Any]) -> str:
    """A schema as committed: sorted keys, indent 2, trailing newline."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m streamworker.contract.schema", description="Write the event schemas."
    )
    parser.add_argument("--write", metavar="DIR", required=True, type=Path)
    args = parser.parse_args(argv)
    out: Path = args.write
    out.mkdir(parents=True, exist_ok=True)
    for name, schema in build_schemas().items():
        (out / name).write_text(render(schema), encoding="utf-8")
        print(out / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
