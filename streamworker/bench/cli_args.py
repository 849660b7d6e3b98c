"""The `streamworker bench` arguments, kept here so `cli.py` only wires them up.

Imports nothing heavy: `cli.py` calls `add_bench_arguments` while building its parser.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from streamworker.bench.options import BenchOptions
from streamworker.settings import EVENT_LOOPS


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    full = BenchOptions()
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    parser.add_argument(
        "--quick", action="store_true", help="3 iterations and small bursts (a smoke test)"
    )
    parser.add_argument(
        "--iterations",
        type=int,
        help=f"measured runs per scenario and program, also e2e sequential ({full.iterations})",
    )
    parser.add_argument("--warmup", type=int, help=f"discarded rounds first ({full.warmup})")
    parser.add_argument(
        "--languages", type=_csv, help=f"comma-separated ({','.join(full.languages)})"
    )
    parser.add_argument("--kinds", type=_csv, help=f"comma-separated ({','.join(full.kinds)})")
    parser.add_argument("--no-e2e", action="store_true", help="skip the Kafka end-to-end part")
    parser.add_argument(
        "--profile",
        metavar="SVG",
        help="record the worker with py-spy during the first saturation burst: a flame graph",
    )
    parser.add_argument(
        "--no-gateway", action="store_true", help="skip the HTTP gateway vs Kafka bursts"
    )
    parser.add_argument(
        "--burst", type=int, help=f"submissions in each saturation burst ({full.burst})"
    )
    parser.add_argument(
        "--offered-rate",
        type=float,
        help="fixed offered load per second (default: half the measured saturation)",
    )
    parser.add_argument(
        "--offered-seconds", type=float, help=f"length of that phase ({full.offered_s:g} s)"
    )
    parser.add_argument(
        "--loops",
        type=_csv,
        help=f"event loops, one bench worker each, phases alternating ({','.join(EVENT_LOOPS)}; "
        "default: the one STREAMWORKER_EVENT_LOOP selects)",
    )


def _loops(given: tuple[str, ...] | None) -> tuple[str, ...]:
    """The `--loops` asked for, in order, without repeats; an unknown one is an error."""
    if not given:
        return ()
    unknown = [loop for loop in given if loop not in EVENT_LOOPS]
    if unknown:
        raise ValueError(f"--loops: unknown {', '.join(unknown)} (known: {', '.join(EVENT_LOOPS)})")
    return tuple(dict.fromkeys(given))


def options_from_args(args: argparse.Namespace, argv: Sequence[str]) -> BenchOptions:
    """Options from parsed arguments; `argv` is recorded as the command that ran."""
    base = BenchOptions.quick() if args.quick else BenchOptions()
    given: dict[str, Any] = {
        "iterations": args.iterations,
        "warmup": args.warmup,
        "languages": args.languages,
        "kinds": args.kinds,
        "burst": args.burst,
        "offered_rate_per_s": args.offered_rate,
        "offered_s": args.offered_seconds,
        "loops": _loops(args.loops) or None,
    }
    changes = {key: value for key, value in given.items() if value is not None}
    for key in ("iterations", "burst"):
        if key in changes and changes[key] < 1:
            raise ValueError(f"--{key} must be at least 1")
    return dataclasses.replace(
        base,
        **changes,
        e2e=base.e2e and not args.no_e2e,
        gateway=base.gateway and not args.no_gateway,
        json_path=Path(args.json) if args.json else None,
        profile_path=Path(args.profile) if args.profile else None,
        command=shlex.join(["streamworker", *argv]),
    )


def exit_code(doc: dict[str, Any]) -> int:
    """1 when a scenario produced no sample at all (broken, not slow); else 0.

    Missed targets do not fail the command: they are results, reported as such.
    """
    return 1 if any(row["status"] == "failed" for row in doc["results"]) else 0
