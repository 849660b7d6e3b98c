"""`--loops`: parsing, and which loop's workers run and which one the targets judge."""

from __future__ import annotations

import argparse

import pytest

from streamworker.bench.cli_args import add_bench_arguments, options_from_args
from streamworker.bench.options import BenchOptions


def _parse(*argv: str) -> BenchOptions:
    parser = argparse.ArgumentParser()
    add_bench_arguments(parser)
    return options_from_args(parser.parse_args(argv), ["bench", *argv])


def test_loops_default_to_the_environments_one() -> None:
    options = _parse()
    assert options.loops == ()
    assert options.worker_loops("asyncio") == ("asyncio",)
    assert options.worker_loops("uvloop") == ("uvloop",)
    assert options.judged_loop("uvloop") == "uvloop"


def test_two_loops_judged_on_the_environments_one() -> None:
    options = _parse("--loops", "asyncio, uvloop,asyncio")
    assert options.loops == ("asyncio", "uvloop")
    assert options.worker_loops("asyncio") == ("asyncio", "uvloop")
    assert options.judged_loop("asyncio") == "asyncio"
    assert options.judged_loop("uvloop") == "uvloop"
    assert options.command == "streamworker bench --loops 'asyncio, uvloop,asyncio'"


def test_a_loop_the_environment_does_not_select_is_judged_first_given() -> None:
    options = _parse("--loops", "uvloop")
    assert options.worker_loops("asyncio") == ("uvloop",)
    assert options.judged_loop("asyncio") == "uvloop"


def test_unknown_loop_is_refused() -> None:
    with pytest.raises(ValueError, match="trio"):
        _parse("--loops", "asyncio,trio")


def test_loops_in_the_json_options() -> None:
    assert _parse("--loops", "uvloop,asyncio").as_dict()["loops"] == ("uvloop", "asyncio")
