"""The settings file `make up` writes: found by default, layered under the environment,
parsed strictly, and never read when a data dir or `none` says otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streamworker.errors import ConfigError
from streamworker.settings import load_settings
from streamworker.settings_file import (
    MAX_FILE_BYTES,
    layered_environment,
    parse_settings_file,
    read_settings_file,
    settings_file,
)

STACK = "STREAMWORKER_DATABASE_URL=postgresql+asyncpg://u:p@127.0.0.1:5432/db\n"


def test_parse_comments_export_quotes_and_later_lines_win() -> None:
    text = (
        "# a comment\n\n"
        "export STREAMWORKER_KAFKA_BOOTSTRAP = 127.0.0.1:1\n"
        "STREAMWORKER_APP_ID='quoted value'\n"
        'STREAMWORKER_KAFKA_BOOTSTRAP="127.0.0.1:2"\n'
        "DOCKER_HOST=unix:///x.sock\n"
        "STREAMWORKER_DATABASE_URL=sqlite+aiosqlite:///a=b.db\n"
    )
    assert parse_settings_file(text, "f") == {
        "STREAMWORKER_KAFKA_BOOTSTRAP": "127.0.0.1:2",
        "STREAMWORKER_APP_ID": "quoted value",
        "DOCKER_HOST": "unix:///x.sock",
        "STREAMWORKER_DATABASE_URL": "sqlite+aiosqlite:///a=b.db",
    }


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("just words\n", "f:1: expected KEY=VALUE"),
        ("# ok\nPATH=/evil\n", "f:2: 'PATH' is not a streamworker setting"),
        ("LD_PRELOAD=/x.so\n", "not a streamworker setting"),
        ("STREAMWORKER_APP_ID='open\n", "f:1: unterminated quote"),
        ("streamworker_app_id=lower\n", "not a streamworker setting"),
    ],
)
def test_a_bad_line_is_an_error_naming_file_and_line(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_settings_file(text, "f")
    assert needle in str(raised.value)
    assert raised.value.key == "STREAMWORKER_CONFIG"


def test_default_file_lives_in_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert settings_file({}) is None
    (tmp_path / ".state").mkdir()
    (tmp_path / ".state" / "stack.env").write_text(STACK)
    assert settings_file({}) == Path(".state/stack.env")
    # A worker or test with its own data dir never reads the stack's file.
    assert settings_file({"STREAMWORKER_DATA_DIR": str(tmp_path / "own")}) is None
    assert settings_file({"STREAMWORKER_CONFIG": "none"}) is None
    assert settings_file({}, flag="NONE") is None


def test_a_named_file_must_exist_and_the_flag_beats_the_variable(tmp_path: Path) -> None:
    mine = tmp_path / "mine.env"
    mine.write_text(STACK)
    env = {"STREAMWORKER_CONFIG": str(tmp_path / "missing.env")}
    with pytest.raises(ConfigError, match="does not exist"):
        settings_file(env)
    assert settings_file(env, flag=str(mine)) == mine


def test_environment_beats_file_and_file_beats_defaults(tmp_path: Path) -> None:
    path = tmp_path / "stack.env"
    path.write_text(STACK + "STREAMWORKER_KAFKA_BOOTSTRAP=10.0.0.1:9092\n")
    settings = load_settings(
        layered_environment({"STREAMWORKER_KAFKA_BOOTSTRAP": "127.0.0.1:19092"}, path)
    )
    assert settings.kafka_bootstrap == "127.0.0.1:19092"
    assert settings.database_url == "postgresql+asyncpg://u:p@127.0.0.1:5432/db"
    assert settings.app_id == "streamworker"
    # Set to empty in the environment: the file's URL is overridden, the default applies.
    emptied = load_settings(layered_environment({"STREAMWORKER_DATABASE_URL": ""}, path))
    assert emptied.database_url == ""


def test_oversized_and_non_utf8_files_are_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.env"
    big.write_text("# " + "x" * MAX_FILE_BYTES + "\n")
    with pytest.raises(ConfigError, match="over"):
        read_settings_file(big)
    latin = tmp_path / "latin.env"
    latin.write_bytes(b"STREAMWORKER_APP_ID=caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_settings_file(latin)
    with pytest.raises(ConfigError, match="cannot read"):
        read_settings_file(tmp_path)


def test_the_cli_reads_the_file_and_names_a_bad_one_in_one_line(tmp_path: Path) -> None:
    state = tmp_path / ".state"
    state.mkdir()
    db = tmp_path / "from-file.db"
    (state / "stack.env").write_text(f"STREAMWORKER_DATABASE_URL=sqlite+aiosqlite:///{db}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMWORKER_")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "streamworker.cli", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
            check=False,
        )

    upgraded = cli("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert db.exists()  # the file's database, not the default .state/streamworker.db
    assert not (state / "streamworker.db").exists()
    (state / "stack.env").write_text("STREAMWORKER_DATABASE_URL\n")
    broken = cli("history")
    assert broken.returncode == 2
    assert broken.stderr.count("\n") == 1 and "stack.env:1: expected KEY=VALUE" in broken.stderr
    skipped = cli("--config", "none", "history")
    assert "stack.env" not in skipped.stderr
