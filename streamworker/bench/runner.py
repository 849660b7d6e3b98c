"""`run_bench`: the whole benchmark in one process — set up, interleave the in-process
scenarios, drive the worker end to end, check the targets, print and write JSON."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Sequence
from typing import Any

from streamworker.bench import rounds
from streamworker.bench.baselines import BaselineA, BaselineB, BaselineC
from streamworker.bench.context import BenchContext
from streamworker.bench.e2e_suite import run_e2e
from streamworker.bench.executor import ExecutorCold, ExecutorWarm
from streamworker.bench.floor import ExecFloor
from streamworker.bench.machine import load_average, machine_info
from streamworker.bench.options import BenchOptions
from streamworker.bench.policy import judged_policy
from streamworker.bench.programs import Program, select_programs
from streamworker.bench.report import document, format_table, format_targets, write_json
from streamworker.bench.results import NOT_AVAILABLE, Row, sequential_row
from streamworker.bench.rss import status_kb
from streamworker.bench.scenario import (
    BASELINE_A,
    BASELINE_C,
    EXECUTOR_WARM,
    Scenario,
    Unavailable,
)
from streamworker.bench.targets import HEADLINE_PROGRAM, check_targets
from streamworker.languages.registry import get_language
from streamworker.sandbox.connection import connect, resolve_endpoint
from streamworker.settings import Settings

log = logging.getLogger(__name__)


def _context(settings: Settings, docker: Any, programs: Sequence[Program]) -> BenchContext:
    languages = {p.language: get_language(p.language) for p in programs}
    policies = {p.key: judged_policy(p, languages[p.language], settings) for p in programs}
    return BenchContext(settings, docker, languages, policies)


def _optional(name: str, build: Any, unavailable: dict[str, str]) -> Scenario | None:
    """Build a scenario, or note why it cannot run here (it gets a 'not available' row)."""
    try:
        scenario: Scenario = build()
    except Unavailable as exc:
        unavailable[name] = str(exc)
        return None
    return scenario


async def _in_process(
    ctx: BenchContext, programs: Sequence[Program], options: BenchOptions
) -> tuple[list[Row], dict[str, str]]:
    """Rows of the interleaved scenarios, and the host binaries baseline C used."""
    unavailable: dict[str, str] = {}
    baseline_c = BaselineC(ctx)

    def prepared_c() -> BaselineC:
        for program in programs:
            baseline_c.prepare(program)
        return baseline_c

    candidates = [
        _optional(BASELINE_A, lambda: BaselineA(ctx), unavailable),
        BaselineB(ctx),
        _optional(BASELINE_C, prepared_c, unavailable),
        ExecutorCold(ctx),
    ]
    floor = ExecFloor(ctx)
    warm: ExecutorWarm | None = None
    try:
        await floor.start(list(programs))
        try:
            languages = tuple(dict.fromkeys(p.language for p in programs))
            warm = await ExecutorWarm.start(ctx, languages)
        except Unavailable as exc:
            unavailable[EXECUTOR_WARM] = str(exc)
        scenarios = [s for s in [*candidates, warm, floor] if s is not None]
        samples = await rounds.interleaved(scenarios, programs, options.warmup, options.iterations)
    finally:
        if warm is not None:
            await warm.stop()
        await floor.stop()
    rows = [
        sequential_row(name, key, kept.latencies_s, kept.errors)
        for (name, key), kept in samples.items()
    ]
    for name, why in unavailable.items():
        rows.extend(Row(name, p.key, NOT_AVAILABLE, note=why) for p in programs)
    return rows, baseline_c.tools


async def run_bench(settings: Settings, options: BenchOptions) -> dict[str, Any]:
    """Run everything `options` asks for; print the table and targets; return the JSON
    document (also written to `options.json_path` when set)."""
    programs = select_programs(options.languages, options.kinds)
    docker = connect(resolve_endpoint(settings.docker))
    began = time.perf_counter()
    try:
        meta: dict[str, Any] = {"command": options.command, "options": options.as_dict()}
        meta["machine"] = await machine_info(docker)
        ctx = _context(settings, docker, programs)
        meta["policies"] = {key: vars(policy) for key, policy in ctx.policies.items()}
        rows, meta["host_tools"] = await _in_process(ctx, programs, options)
        meta["machine"]["load_average_after_in_process"] = load_average()
        if options.e2e:
            e2e_rows, meta["worker"] = await run_e2e(settings, programs, options, BaselineB(ctx))
            rows.extend(e2e_rows)
    finally:
        with contextlib.suppress(Exception):
            await docker.close()
    meta["machine"]["load_average_at_end"] = load_average()
    meta["duration_s"] = round(time.perf_counter() - began, 1)
    hwm = status_kb(os.getpid(), "VmHWM")
    meta["bench_process_peak_rss_mib"] = None if hwm is None else round(hwm / 1024, 1)
    # With several event loops the targets are judged on one loop's e2e rows (the
    # environment's); the others are reported beside them in the table.
    judged_loop = options.judged_loop(settings.event_loop)
    several = len(options.worker_loops(settings.event_loop)) > 1
    meta["targets_judged_on"] = {"program": HEADLINE_PROGRAM, "event_loop": judged_loop}
    checks = check_targets(rows, judged_loop)
    doc = document(meta, rows, checks)
    print(format_table(rows))
    print()
    print(format_targets(checks, judged_loop if several else None))
    if options.json_path is not None:
        write_json(options.json_path, doc)
        print(f"\nwrote {options.json_path}")
    return doc
