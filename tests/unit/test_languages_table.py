"""The language table in docs/languages.md is generated from the registry and kept so."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamworker.languages.registry import load_registry
from streamworker.languages.table import BEGIN, END, main, render, rewrite, row

DOC = Path(__file__).resolve().parents[2] / "docs" / "languages.md"


def test_the_committed_table_matches_the_registry() -> None:
    """Fails when an entry changed without `python -m streamworker.languages.table --write`."""
    text = DOC.read_text()
    assert rewrite(text, render(load_registry().values())) == text


def test_every_language_has_one_row_with_its_compat_names() -> None:
    block = render(load_registry().values())
    assert f"{len(load_registry())} languages" in block
    rows = [line for line in block.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == len(load_registry()) + 1  # + the header
    clang = row(load_registry()["c-clang"])
    assert "**75**" in clang and "c-clang (clang)" in clang and "14.0.6" in clang
    assert "— (gateway id ≥ 1000)" in row(load_registry()["ada"])
    java = row(load_registry()["java"])
    assert "heap = memory_mb - 128 MiB" in java and "MLE" in java


def test_a_pipe_in_a_command_stays_in_its_cell() -> None:
    cells = row(load_registry()["assembly"]).count(" | ")
    assert cells == row(load_registry()["python"]).count(" | ")


def test_rewrite_replaces_only_the_marked_block() -> None:
    doc = f"intro\n{BEGIN}\nold\n{END}\noutro\n"
    assert rewrite(doc, f"{BEGIN}\nnew\n{END}") == f"intro\n{BEGIN}\nnew\n{END}\noutro\n"
    with pytest.raises(ValueError, match="markers"):
        rewrite("no markers", "x")


def test_cli_writes_then_checks(tmp_path: Path) -> None:
    target = tmp_path / "languages.md"
    target.write_text(f"# L\n{BEGIN}\nstale\n{END}\n")
    assert main(["--check", str(target)]) == 1
    assert main(["--write", str(target)]) == 0
    assert main(["--check", str(target)]) == 0
    assert "| python |" in target.read_text() and target.read_text().startswith("# L\n")
