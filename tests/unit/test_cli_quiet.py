"""The CLI is quiet unless asked (`-v`), and an expected condition is one line, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TIMEOUT_S = 60


def run_cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        **os.environ,
        "STREAMWORKER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "streamworker.cli", *args],
        capture_output=True,
        text=True,
        env=environ,
        cwd=tmp_path,
        timeout=TIMEOUT_S,
        check=False,
    )


def assert_one_quiet_line(done: subprocess.CompletedProcess[str], fix: str) -> None:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "INFO" not in done.stderr + done.stdout
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert fix in lines[0]


def test_history_on_an_unmigrated_database_names_db_upgrade(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "history")
    assert_one_quiet_line(done, "streamworker db upgrade")
    assert done.stdout == ""


def test_db_upgrade_then_history_log_nothing(tmp_path: Path) -> None:
    upgraded = run_cli(tmp_path, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stderr == ""
    assert upgraded.stdout.startswith("database migrated:")
    history = run_cli(tmp_path, "history")
    assert history.returncode == 0, history.stderr
    assert history.stderr == ""
    assert history.stdout.startswith("submission_id | language")


def test_verbose_brings_the_info_lines_back(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "-v", "db", "upgrade")
    assert done.returncode == 0, done.stderr
    assert "INFO alembic" in done.stderr


def test_verbose_shows_the_traceback_of_an_expected_condition(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "-v", "history")
    assert done.returncode != 0
    assert "Traceback" in done.stderr


def test_submit_without_kafka_is_one_line(tmp_path: Path) -> None:
    source = tmp_path / "hello.py"
    source.write_text("print('hi')\n")
    done = run_cli(
        tmp_path,
        "submit",
        str(source),
        "--timeout",
        "5",
        STREAMWORKER_KAFKA_BOOTSTRAP="127.0.0.1:1",
    )
    assert_one_quiet_line(done, "STREAMWORKER_KAFKA_BOOTSTRAP")


def test_unreachable_postgres_is_one_line(tmp_path: Path) -> None:
    done = run_cli(
        tmp_path, "history", STREAMWORKER_DATABASE_URL="postgresql+asyncpg://u:p@127.0.0.1:1/x"
    )
    assert_one_quiet_line(done, "STREAMWORKER_DATABASE_URL")


@pytest.mark.parametrize("command", ["languages", "images"])
def test_docker_unreachable_is_one_line(tmp_path: Path, command: str) -> None:
    args = ["images", "build", "python"] if command == "images" else ["languages"]
    done = run_cli(tmp_path, *args, DOCKER_HOST=f"unix://{tmp_path / 'no-docker.sock'}")
    assert_one_quiet_line(done, "DOCKER_HOST")


def test_a_bug_keeps_its_traceback() -> None:
    from streamworker.cli import explain

    assert explain(KeyError("x"), "history") is None
    assert "STREAMWORKER_DATABASE_URL" in (explain(ConnectionRefusedError(), "history") or "")
