"""`streamworker images build --jobs N`: how many images bootstrap at once."""

from __future__ import annotations

import pytest

from streamworker.cli import build_parser


def test_jobs_defaults_to_the_builders_own_and_takes_a_count() -> None:
    parser = build_parser()
    assert parser.parse_args(["images", "build"]).jobs is None  # BUILD_CONCURRENCY
    args = parser.parse_args(["images", "build", "--jobs", "4", "c-clang", "cpp-clang"])
    assert args.jobs == 4 and args.languages == ["c-clang", "cpp-clang"]


@pytest.mark.parametrize("bad", ["0", "-1", "two"])
def test_jobs_below_one_is_refused(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["images", "build", "--jobs", bad])
    assert "--jobs" in capsys.readouterr().err
