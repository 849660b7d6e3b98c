"""Callbacks end to end: a Judge0 submission with `callback_url` through the real gateway,
worker and Kafka, to a real HTTP receiver on loopback — delivered and signed, retried
after failures, dead-lettered when the receiver never answers, refused for a private
address — with every try in the audit log."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiokafka import AIOKafkaConsumer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from streamworker.gateway.callbacks import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify_signature,
)
from tests.conftest import free_port
from tests.integration.gateway_util import http, start_gateway

__all__ = ["start_gateway"]

SECRET = "callback-secret-of-the-tests-0123456789"


class Receiver:
    """A loopback HTTP server: answers each PUT per path from a script of statuses."""

    def __init__(self) -> None:
        self.port = free_port()
        self.calls: dict[str, list[dict[str, Any]]] = {}
        self.script: dict[str, list[int | None]] = {}

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.calls.setdefault(request.path, []).append(
            {"headers": dict(request.headers), "body": body, "method": request.method}
        )
        plan = self.script.get(request.path, [])
        status = plan.pop(0) if plan else 200
        if status is None:  # never answer (the gateway's timeout ends the try)
            await asyncio.sleep(3600)
        return web.Response(status=status)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rx = Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", rx.handle)
    # The silent path's handler never returns: do not wait aiohttp's default 60 s for it.
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", rx.port).start()
    yield rx
    await runner.cleanup()


async def until(check: Any, timeout_s: float = 90) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.3)
    raise AssertionError("condition not met in time")


async def test_callbacks_are_signed_retried_dead_lettered_and_audited(
    receiver: Receiver, start_worker: Any, start_gateway: Any, pg_url: str
) -> None:
    worker = await asyncio.to_thread(start_worker, database_url=pg_url)
    dlq_topic = f"{worker.env['STREAMWORKER_TOPIC_RESULTS']}.callbacks.dlq"
    gateway = await asyncio.to_thread(
        start_gateway,
        worker.env,
        STREAMWORKER_GATEWAY_CALLBACK_SECRET=SECRET,
        STREAMWORKER_GATEWAY_CALLBACK_ALLOW="127.0.0.1/32",
        STREAMWORKER_GATEWAY_CALLBACK_MAX_TRIES="3",
        STREAMWORKER_GATEWAY_CALLBACK_TIMEOUT_S="1",
        STREAMWORKER_GATEWAY_CALLBACK_BACKOFF_BASE_S="0.1",
        STREAMWORKER_TOPIC_CALLBACKS_DLQ=dlq_topic,
    )
    receiver.script = {"/flaky": [500, 429], "/silent": [None, None, None]}

    async def submit(path: str) -> str:
        body = {"source_code": "print('cb')", "language_id": 71, "callback_url": receiver.url(path)}
        status, answer, _ = await asyncio.to_thread(
            http, "POST", f"{gateway.url}/submissions", body
        )
        assert status == 201, answer
        return str(answer["token"])

    ok, flaky, silent = await submit("/ok"), await submit("/flaky"), await submit("/silent")
    status, refused_body, _ = await asyncio.to_thread(
        http,
        "POST",
        f"{gateway.url}/submissions",
        {"source_code": "print(1)", "language_id": 71, "callback_url": "http://10.0.0.1/hook"},
    )
    assert status == 201, refused_body  # the SSRF guard answers at delivery, not at POST
    refused = refused_body["token"]

    async def delivered(path: str, count: int) -> list[dict[str, Any]] | None:
        calls = receiver.calls.get(path, [])
        return calls if len(calls) >= count else None

    (call,) = await until(lambda: delivered("/ok", 1))
    assert call["method"] == "PUT"
    payload = json.loads(call["body"])
    assert payload["token"] == ok and payload["status"] == {"id": 3, "description": "Accepted"}
    assert base64.b64decode(payload["stdout"]) == b"cb\n"
    headers = call["headers"]
    assert verify_signature(
        SECRET.encode(), headers[TIMESTAMP_HEADER], call["body"], headers[SIGNATURE_HEADER],
        now=time.time(),
    )  # fmt: skip
    assert not verify_signature(
        SECRET.encode(), headers[TIMESTAMP_HEADER], call["body"] + b" ", headers[SIGNATURE_HEADER],
        now=time.time(),
    )  # fmt: skip

    flaky_calls = await until(lambda: delivered("/flaky", 3))
    assert len({c["headers"][EVENT_ID_HEADER] for c in flaky_calls}) == 1  # one idempotency key

    consumer = AIOKafkaConsumer(
        dlq_topic,
        bootstrap_servers=worker.env["STREAMWORKER_KAFKA_BOOTSTRAP"],
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), 120)
    finally:
        await consumer.stop()
    assert dict(record.headers)["token"] == silent.encode()
    assert json.loads(record.value)["token"] == silent

    engine = create_async_engine(pg_url)

    async def tries() -> dict[str, list[str]] | None:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT payload FROM audit_events WHERE kind = 'callback' "
                        "AND submission_id IN (:a, :b, :c, :d)"
                    ),
                    {"a": ok, "b": flaky, "c": silent, "d": refused},
                )
            ).all()
        found: dict[str, list[str]] = {}
        for (payload,) in rows:
            data = payload if isinstance(payload, dict) else json.loads(payload)
            found.setdefault(data["token"], []).append(data["outcome"])
        return found if len(found) == 4 and len(found[silent]) == 3 else None

    try:
        outcomes = await until(tries)
    finally:
        await engine.dispose()
    assert outcomes[ok] == ["delivered"]
    assert sorted(outcomes[flaky]) == ["delivered", "retry", "retry"]
    assert outcomes[silent].count("dead") == 1 and len(outcomes[silent]) == 3
    assert outcomes[refused] == ["refused"]
