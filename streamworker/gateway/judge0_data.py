"""Judge0 CE 1.13.1's fixed answers, computed from our registry and limits: statuses,
languages, `/about`, `/config_info`. Pure data, so the shapes are unit-tested exactly as
the official SDK reads them (it fails on a missing or extra key)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from streamworker import __version__
from streamworker.languages.registry import Language, load_registry
from streamworker.settings import Settings

COMPAT_VERSION = "1.13.1"
"""What `/about.version` says: the SDK resolves its language aliases through it."""
MAX_BATCH = 20
MAX_NUMBER_OF_RUNS = 20
EXTENSION_ID_BASE = 1000
"""Languages Judge0 has no id for get `EXTENSION_ID_BASE + n` (n = registry order)."""

STATUSES: tuple[tuple[int, str], ...] = (
    (1, "In Queue"),
    (2, "Processing"),
    (3, "Accepted"),
    (4, "Wrong Answer"),
    (5, "Time Limit Exceeded"),
    (6, "Compilation Error"),
    (7, "Runtime Error (SIGSEGV)"),
    (8, "Runtime Error (SIGXFSZ)"),
    (9, "Runtime Error (SIGFPE)"),
    (10, "Runtime Error (SIGABRT)"),
    (11, "Runtime Error (NZEC)"),
    (12, "Runtime Error (Other)"),
    (13, "Internal Error"),
    (14, "Exec Format Error"),
)
STATUS_NAMES = dict(STATUSES)


def status_object(status_id: int) -> dict[str, Any]:
    return {"id": status_id, "description": STATUS_NAMES.get(status_id, "Internal Error")}


def listed_id(lang: Language, position: int) -> int:
    """The one id `/languages` lists for `lang`."""
    return lang.judge0_ids[0] if lang.judge0_ids else EXTENSION_ID_BASE + position


def language_ids() -> dict[int, Language]:
    """Every accepted Judge0 id → language (listed ids and the other versions' ids)."""
    ids: dict[int, Language] = {}
    for position, lang in enumerate(load_registry().values()):
        ids[listed_id(lang, position)] = lang
        for judge0_id in lang.judge0_ids:
            ids.setdefault(judge0_id, lang)
    return ids


def judge0_name(lang: Language) -> str:
    """`"Python (3.11.2)"`: clients match name prefixes, the SDK ignores the rest."""
    return f"{lang.name} ({lang.version})" if lang.version else lang.name


def languages() -> list[dict[str, Any]]:
    return [
        {"id": listed_id(lang, position), "name": judge0_name(lang)}
        for position, lang in enumerate(load_registry().values())
    ]


def language_detail(lang: Language, judge0_id: int) -> dict[str, Any]:
    compile_cmd = " ".join(lang.compile or ()).replace("{entrypoint}", lang.source_file)
    run_cmd = " ".join(lang.run).replace("{entrypoint}", lang.source_file)
    stem = lang.source_file.rsplit(".", 1)[0]
    return {
        "id": judge0_id,
        "name": judge0_name(lang),
        "is_archived": False,
        "source_file": lang.source_file,
        "compile_cmd": compile_cmd.replace("{stem}", stem) if lang.compile else None,
        "run_cmd": run_cmd.replace("{stem}", stem),
    }


def about() -> dict[str, Any]:
    return {
        "version": COMPAT_VERSION,
        "homepage": "/docs",
        "source_code": "/openapi.json",
        "maintainer": f"streamworker {__version__} (Judge0 CE {COMPAT_VERSION} compatible API)",
    }


def _seconds(value: float) -> float:
    return float(value)


def _kb(mb: int) -> int:
    return int(mb) * 1024


def config_info(settings: Settings, max_queue_size: int) -> dict[str, Any]:
    """Judge0's 40 `config_info` keys, from our limits. Features we refuse say false."""
    default, maximum = settings.default_limits, settings.max_limits
    return {
        "maintenance_mode": False,
        "enable_wait_result": True,
        "enable_compiler_options": False,
        "allowed_languages_for_compile_options": [],
        "enable_command_line_arguments": True,
        "enable_submission_delete": False,
        "enable_callbacks": True,
        "callbacks_max_tries": 5,
        "callbacks_timeout": 5.0,
        "enable_additional_files": False,
        "max_queue_size": max_queue_size,
        "cpu_time_limit": _seconds(default.cpu_time_s),
        "max_cpu_time_limit": _seconds(maximum.cpu_time_s),
        "cpu_extra_time": 0.0,
        "max_cpu_extra_time": 0.0,
        "wall_time_limit": _seconds(default.wall_time_s),
        "max_wall_time_limit": _seconds(maximum.wall_time_s),
        "memory_limit": _kb(default.memory_mb),
        "max_memory_limit": _kb(maximum.memory_mb),
        "stack_limit": _kb(default.memory_mb),
        "max_stack_limit": _kb(maximum.memory_mb),
        "max_processes_and_or_threads": default.processes,
        "max_max_processes_and_or_threads": maximum.processes,
        "enable_per_process_and_thread_time_limit": False,
        "allow_enable_per_process_and_thread_time_limit": False,
        "enable_per_process_and_thread_memory_limit": False,
        "allow_enable_per_process_and_thread_memory_limit": False,
        "max_file_size": default.file_size_kb,
        "max_max_file_size": maximum.file_size_kb,
        "number_of_runs": 1,
        "max_number_of_runs": MAX_NUMBER_OF_RUNS,
        "redirect_stderr_to_stdout": False,
        "max_extract_size": 0,
        "enable_batched_submissions": True,
        "max_submission_batch_size": MAX_BATCH,
        "submission_cache_duration": 0.0,
        "use_docs_as_homepage": False,
        "allow_enable_network": False,
        "enable_network": False,
    }


def limit_ceiling(settings: Settings) -> Mapping[str, float]:
    """Judge0 request limit → its maximum in Judge0's units (KB, seconds)."""
    maximum = settings.max_limits
    return {
        "cpu_time_limit": maximum.cpu_time_s,
        "wall_time_limit": maximum.wall_time_s,
        "memory_limit": maximum.memory_mb * 1024,
        "stack_limit": maximum.memory_mb * 1024,
        "max_processes_and_or_threads": maximum.processes,
        "max_file_size": maximum.file_size_kb,
        "number_of_runs": MAX_NUMBER_OF_RUNS,
        "cpu_extra_time": math.inf,
    }
