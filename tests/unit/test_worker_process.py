"""The worker process's set-up: its log level holds for every library, its event loop is
the one configured."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any, cast

import faust
import pytest

from streamworker.errors import ConfigError
from streamworker.settings import load_settings
from streamworker.worker.lifecycle import GracefulWorker, use_event_loop


@pytest.fixture
def restore_root_logging() -> Any:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize("loglevel", ["warning", "error", "info"])
def test_library_debug_calls_build_no_records(loglevel: str, restore_root_logging: Any) -> None:
    """Faust's spinner set the root logger to DEBUG at WARNING and above: every aiokafka
    and aiosqlite debug call then built a record that a handler threw away."""
    app = faust.App("t-logging", broker="kafka://127.0.0.1:1")
    runtime = cast(Any, SimpleNamespace(restarts=SimpleNamespace(on_restart=None)))
    worker = GracefulWorker(app, runtime, 1.0, loglevel=loglevel, quiet=True)
    worker._setup_logging()
    assert not logging.getLogger("aiosqlite").isEnabledFor(logging.DEBUG)
    assert not logging.getLogger("aiokafka.producer").isEnabledFor(logging.DEBUG)
    assert logging.getLogger().getEffectiveLevel() == logging.getLevelName(loglevel.upper())


@pytest.mark.parametrize("name", ["uvloop", "asyncio"])
def test_event_loop_setting_picks_the_loop(name: str) -> None:
    settings = load_settings({"STREAMWORKER_EVENT_LOOP": name})
    try:
        use_event_loop(settings.event_loop)

        async def loop_module() -> str:
            return type(asyncio.get_running_loop()).__module__

        assert asyncio.run(loop_module()).startswith(name)
    finally:
        asyncio.set_event_loop_policy(None)


def test_unknown_event_loop_is_refused() -> None:
    with pytest.raises(ConfigError, match="STREAMWORKER_EVENT_LOOP"):
        load_settings({"STREAMWORKER_EVENT_LOOP": "trio"})
