"""Running, draining and restarting one worker process.

`GracefulWorker` turns SIGTERM/SIGINT into a drain (finish in-flight runs, commit,
stop); `run_worker` runs it and restarts the process in place when a restart was
requested (a broken Kafka transaction only a fresh producer recovers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from typing import Any, NoReturn

import faust
from aiokafka.errors import ProducerFenced

from streamworker.settings import Settings
from streamworker.worker.app import PRODUCER_MAX_REQUEST_BYTES, create_app
from streamworker.worker.runtime import WorkerRuntime
from streamworker.worker.taskdump import dump_tasks
from streamworker.worker.topics import ensure_topics, message_budget

log = logging.getLogger(__name__)

RESTART_PAUSE_S = 1.0


# A subclass because mode's `Worker` offers no hook for its signal handlers: it calls its
# own `_on_sigterm`/`_on_sigint`/`_on_sigusr1`, which only overriding can change.
class GracefulWorker(faust.Worker):
    """SIGTERM/SIGINT: stop taking events, let in-flight runs finish within the grace
    period, commit, then stop. A second signal stops at once."""

    def __init__(self, app: faust.App, runtime: WorkerRuntime, grace_s: float, **kw: Any):
        super().__init__(app, **kw)
        # Faust's terminal spinner, at a log level of WARNING or above, sets the root
        # logger to DEBUG and filters in its handlers: every library's debug call then
        # builds a record nobody prints (~5 % of the worker's CPU under load).
        self.spinner = None
        self._runtime = runtime
        self._grace_s = grace_s
        self._draining = False
        runtime.restarts.on_restart = self._stop_for_restart

    def _on_sigterm(self) -> None:
        self._begin_drain(signal.SIGTERM)

    def _on_sigint(self) -> None:
        self._begin_drain(signal.SIGINT)

    def _on_sigusr1(self) -> None:
        # mode's own dump stops at each task's outer coroutine; ours names the await
        # a task is actually suspended in.
        log.warning("SIGUSR1: %s", dump_tasks())

    def _stop_for_restart(self, reason: str) -> None:
        # No grace: the broken transaction cannot commit, and every commit includes it.
        # Unacknowledged events go to the restarted process.
        self._draining = True
        self.app.conf.stream_wait_empty = False
        self._schedule_shutdown(signal.SIGTERM)

    def _begin_drain(self, sig: signal.Signals) -> None:
        if self._draining:
            self._schedule_shutdown(sig)
            return
        self._draining = True
        self._drain_task = asyncio.ensure_future(self._drain_then_stop(sig))

    async def _drain_then_stop(self, sig: signal.Signals) -> None:
        log.info("%s: draining (grace %.0fs)", sig.name, self._grace_s)
        consumer = self.app.consumer
        with contextlib.suppress(Exception):
            consumer.pause_partitions(consumer.assignment())
        await self._runtime.drain(self._grace_s)
        # Events skipped while draining stay unacknowledged on purpose (redelivered);
        # Faust must not wait for them on the way out.
        self.app.conf.stream_wait_empty = False
        try:
            await consumer.commit()
        except Exception as exc:  # the stop below commits again or redelivers
            log.warning("final commit failed: %s", exc)
        self._schedule_shutdown(sig)


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run one worker until SIGTERM/SIGINT (blocking)."""
    use_event_loop(settings.event_loop)
    partitions = asyncio.run(ensure_topics(settings))
    budget = asyncio.run(message_budget(settings, PRODUCER_MAX_REQUEST_BYTES))
    app, runtime = create_app(settings, partitions, budget)
    worker = GracefulWorker(app, runtime, settings.shutdown_grace_s, loglevel=loglevel, quiet=True)
    restarts = runtime.restarts
    try:
        worker.execute_from_commandline()
    finally:
        # Faust crashes the app itself when a commit finds its producer fenced.
        if isinstance(app.crash_reason, ProducerFenced):
            restarts.on_restart = None  # the worker has stopped already
            restarts.request(f"a commit found its producer fenced: {app.crash_reason!r}")
        if restarts.reason is not None:
            restart_in_place()


def use_event_loop(name: str) -> None:
    """Install the event loop policy before any loop exists (`STREAMWORKER_EVENT_LOOP`)."""
    if name == "uvloop":
        import uvloop  # only when asked for: an optional speed-up, not a requirement

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    else:
        asyncio.set_event_loop_policy(None)


def restart_in_place() -> NoReturn:
    """Replace this process with a fresh run of the same command (same pid, same
    environment): a new consumer joins the group and new producers fence the old ones'
    transactions, which is how Kafka recovers a broken transaction."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    time.sleep(RESTART_PAUSE_S)  # a restart that keeps failing must not spin
    os.execv(sys.executable, sys.orig_argv)
