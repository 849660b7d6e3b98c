"""The settings file: the local stack's `STREAMWORKER_*` values, so that the CLI talks to
the stack `make up` started without any environment.

Layering, highest first: command-line flags > environment > settings file > built-in
defaults. The file is `--config PATH` or `$STREAMWORKER_CONFIG` when given (`none`
turns it off), else `<data dir>/stack.env` when it exists, where the data dir is
`$STREAMWORKER_DATA_DIR` or `.state` — so a worker or test given its own data dir never
picks up the stack's file. The format is the env-file subset Docker and systemd share:
`KEY=VALUE` lines, `#` comments, optional matching quotes, no expansion. It is parsed
strictly (a bad line is a `ConfigError` naming file and line) because a silently skipped
line would send commands to the wrong database.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from streamworker.errors import ConfigError
from streamworker.settings import Settings, load_settings

FILE_NAME = "stack.env"
CONFIG_KEY = "STREAMWORKER_CONFIG"
OFF = "none"
MAX_FILE_BYTES = 64 * 1024
KEY = re.compile(r"(STREAMWORKER_[A-Z0-9_]+|DOCKER_HOST|DOCKER_TLS_VERIFY|DOCKER_CERT_PATH)")
"""Only settings keys: a file cannot change PATH or LD_PRELOAD of anything we start."""


def settings_file(env: Mapping[str, str], flag: str | None = None) -> Path | None:
    """The file to read, or None. An explicitly named file must exist."""
    named = flag if flag is not None else env.get(CONFIG_KEY)
    if named is not None and named != "":
        if named.lower() == OFF:
            return None
        path = Path(named)
        if not path.is_file():
            raise ConfigError(CONFIG_KEY, f"settings file {named} does not exist")
        return path
    default = Path(env.get("STREAMWORKER_DATA_DIR") or ".state") / FILE_NAME
    return default if default.is_file() else None


def parse_settings_file(text: str, origin: str) -> dict[str, str]:
    """`KEY=VALUE` lines to a dict; later lines win, as in a shell."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        where = f"{origin}:{number}"
        if not sep:
            raise ConfigError(CONFIG_KEY, f"{where}: expected KEY=VALUE, got {_echo(line)}")
        if KEY.fullmatch(key) is None:
            raise ConfigError(CONFIG_KEY, f"{where}: {_echo(key)} is not a streamworker setting")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif value[:1] in ("'", '"'):
            raise ConfigError(CONFIG_KEY, f"{where}: unterminated quote in {key}")
        values[key] = value
    return values


def read_settings_file(path: Path) -> dict[str, str]:
    """The file's values; unreadable, oversized or non-UTF-8 files are a `ConfigError`."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(CONFIG_KEY, f"cannot read settings file {path}: {exc}") from exc
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(CONFIG_KEY, f"settings file {path} is over {MAX_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(CONFIG_KEY, f"settings file {path} is not UTF-8") from exc
    return parse_settings_file(text, str(path))


def layered_environment(env: Mapping[str, str], path: Path | None) -> dict[str, str]:
    """The file's values under `env`: a variable set (even to "") beats the file."""
    if path is None:
        return dict(env)
    return {**read_settings_file(path), **env}


def process_environment(flag: str | None = None) -> tuple[dict[str, str], Path | None]:
    """The process environment over the settings file, and the file used."""
    path = settings_file(os.environ, flag)
    return layered_environment(os.environ, path), path


def load_layered_settings(flag: str | None = None) -> tuple[Settings, Path | None]:
    """Settings from the process environment over the settings file, and the file used."""
    env, path = process_environment(flag)
    return load_settings(env), path


def _echo(text: str) -> str:
    return repr(text[:64] + ("…" if len(text) > 64 else ""))
