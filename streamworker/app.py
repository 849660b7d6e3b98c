"""The Faust wiring, kept thin: decode → judge → publish → audit.

Faust and Kafka types stop here; the logic lives in `streamworker.pipeline`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
from faust.web import Request, Response, View

from streamworker import metrics
from streamworker.pipeline import Outcome, Source
from streamworker.runtime import WorkerRuntime
from streamworker.settings import Settings
from streamworker.topics import ensure_topics

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> tuple[faust.App, WorkerRuntime]:
    """A Faust app for `settings`, with its agent, startup task and HTTP pages."""
    (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        processing_guarantee=settings.processing_guarantee,
        web_bind=settings.http_host,
        web_host=settings.http_host,
        web_port=settings.http_port,
        web_in_thread=False,
        datadir=str(settings.data_dir / "faust"),
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        producer_linger_ms=0,
        topic_allow_declare=False,
        topic_disable_leader=True,
        store="memory://",
        table_cleanup_interval=3600.0,
    )
    runtime = WorkerRuntime(settings)
    raw: dict[str, Any] = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }
    submissions = app.topic(settings.topics.submissions, **raw)
    results = app.topic(settings.topics.results, **raw)
    dlq = app.topic(settings.topics.dlq, **raw)

    async def publish(outcome: Outcome) -> None:
        if outcome.dead_letter is not None:
            dead = outcome.dead_letter
            await dlq.send(key=dead.key, value=dead.value, headers=dead.headers)
        if outcome.result is not None:
            result = outcome.result
            await results.send(key=result.submission_id.encode(), value=result.encode())
            runtime.pipeline.record_published(result)

    @app.agent(submissions, concurrency=settings.concurrency)
    async def judge_submissions(stream: faust.StreamT[bytes]) -> None:
        await runtime.ready.wait()
        async for event in stream.events():
            message = event.message
            headers = message.headers
            source = Source(
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                key=message.key,
                headers=list(headers.items()) if isinstance(headers, dict) else headers or [],
            )
            value = message.value if isinstance(message.value, bytes) else bytes(message.value)
            outcome = await runtime.pipeline.handle(value, source)
            await publish(outcome)

    async def start_runtime() -> None:
        await runtime.start()

    app.task(start_runtime)

    @app.on_before_shutdown.connect
    async def stop_runtime(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        await runtime.stop()

    @app.page("/health")
    async def health(web: View, request: Request) -> Response:
        report = await runtime.health()
        return web.json(report.body(), status=200 if report.healthy else 503)

    @app.page("/metrics")
    async def metrics_page(web: View, request: Request) -> Response:
        return web.bytes(metrics.render(), content_type="text/plain; version=0.0.4")

    return app, runtime


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run one worker until SIGTERM/SIGINT (blocking)."""
    asyncio.run(ensure_topics(settings))
    app, _ = create_app(settings)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
