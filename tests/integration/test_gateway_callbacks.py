"""Callbacks against real receivers on 127.0.0.1: signatures, retries, timeouts, refusals.

Nothing but loopback is needed. The receivers are allow-listed by CIDR (127.0.0.1/32),
except in the tests of the guard itself, which prove that nothing connects.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from streamworker import metrics
from streamworker.gateway.callbacks import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Attempt,
    CallbackPolicy,
    callback_session,
    deliver,
    verify_signature,
)

pytestmark = [pytest.mark.integration, pytest.mark.no_runtime_images]

SECRET = b"integration-secret-0123456789"
BODY = b'{"token":"t-1","status":{"id":3,"description":"Accepted"},"stdout":"aGk="}'
LOOPBACK = (ipaddress.ip_network("127.0.0.1/32"),)


@dataclass
class Receiver:
    """A real aiohttp server that scripts its answers per path and keeps what it got."""

    port: int = 0
    seen: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    flaky_calls: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}?secret=in-the-query"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append((request.path, dict(request.headers), body))
        if request.path == "/ok":
            return web.Response(status=204)
        if request.path == "/flaky":
            self.flaky_calls += 1
            if self.flaky_calls == 1:
                return web.Response(status=500, text="boom")
            if self.flaky_calls == 2:
                return web.Response(status=429, headers={"Retry-After": "1"})
            return web.Response(status=200, text="x" * 200_000)  # more than we read
        if request.path == "/redirect":
            raise web.HTTPFound(self.url("/ok"))
        return web.Response(status=404)


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", rec.handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.base_events.Server)
    rec.port = server.sockets[0].getsockname()[1]
    try:
        yield rec
    finally:
        await runner.cleanup()


@dataclass
class Silent:
    """A TCP server that accepts, never reads and never answers; counts connections."""

    port: int
    connections: int = 0


@pytest_asyncio.fixture
async def silent() -> AsyncIterator[Silent]:
    holder = Silent(port=0)
    writers: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        holder.connections += 1
        writers.append(writer)
        await reader.read()  # until the client gives up and closes

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    holder.port = server.sockets[0].getsockname()[1]
    try:
        yield holder
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


def policy(**overrides: Any) -> CallbackPolicy:
    values: dict[str, Any] = {
        "secret": SECRET,
        "max_tries": 4,
        "timeout_s": 2.0,
        "backoff_base_s": 0.01,
        "backoff_max_s": 5.0,
        "allow_cidrs": LOOPBACK,
    }
    values.update(overrides)
    return CallbackPolicy(**values)


class Recorder:
    def __init__(self) -> None:
        self.attempts: list[Attempt] = []

    async def __call__(self, attempt: Attempt) -> None:
        self.attempts.append(attempt)


def delivered_total(outcome: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "streamworker_callback_deliveries_total", {"outcome": outcome}
    )
    return value or 0.0


async def test_delivered_first_try_with_a_valid_signature(receiver: Receiver) -> None:
    record = Recorder()
    before = delivered_total("delivered")
    async with callback_session() as session:
        outcome = await deliver(session, receiver.url("/ok"), BODY, "sub-1", policy(), record)
    assert (outcome.outcome, outcome.tries, outcome.http_status) == ("delivered", 1, 204)
    [(path, headers, body)] = receiver.seen
    assert path == "/ok" and body == BODY
    assert headers["Content-Type"] == "application/json"
    assert headers[EVENT_ID_HEADER] == "sub-1"
    assert verify_signature(
        SECRET, headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER], now=time.time()
    )
    assert not verify_signature(
        SECRET, headers[TIMESTAMP_HEADER], body + b"x", headers[SIGNATURE_HEADER], time.time()
    )
    [attempt] = record.attempts
    assert attempt.url == f"http://127.0.0.1:{receiver.port}/ok", "no query string kept"
    assert (attempt.try_number, attempt.http_status, attempt.outcome) == (1, 204, "delivered")
    assert delivered_total("delivered") == before + 1


async def test_500_then_429_with_retry_after_then_200_is_delivered_on_try_3(
    receiver: Receiver,
) -> None:
    record = Recorder()
    async with callback_session() as session:
        outcome = await deliver(session, receiver.url("/flaky"), BODY, "sub-2", policy(), record)
    assert (outcome.outcome, outcome.tries, outcome.http_status) == ("delivered", 3, 200)
    assert [a.http_status for a in record.attempts] == [500, 429, 200]
    assert [a.outcome for a in record.attempts] == ["retry", "retry", "delivered"]
    assert [a.try_number for a in record.attempts] == [1, 2, 3]
    gap = record.attempts[2].started_at - record.attempts[1].started_at
    assert gap >= 0.95, "Retry-After: 1 was honoured"
    ids = {headers[EVENT_ID_HEADER] for _, headers, _ in receiver.seen}
    assert ids == {"sub-2"}, "the idempotency key is stable across retries"
    for _, headers, body in receiver.seen:
        assert verify_signature(
            SECRET, headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER], time.time()
        )


async def test_a_receiver_that_never_answers_ends_dead_in_bounded_time(silent: Silent) -> None:
    record = Recorder()
    strict = policy(max_tries=3, timeout_s=0.3)
    before = delivered_total("dead")
    started = time.monotonic()
    async with callback_session() as session:
        url = f"http://127.0.0.1:{silent.port}/hook"
        outcome = await deliver(session, url, BODY, "sub-3", strict, record)
    elapsed = time.monotonic() - started
    assert (outcome.outcome, outcome.tries, outcome.http_status) == ("dead", 3, None)
    assert [a.outcome for a in record.attempts] == ["retry", "retry", "dead"]
    assert all(a.error and "timed out" in a.error for a in record.attempts)
    assert all(0.25 <= a.duration_s < 1.0 for a in record.attempts)
    assert 0.85 <= elapsed < 3 * 0.3 + 2 * 0.04 + 1.0
    assert silent.connections == 3
    assert delivered_total("dead") == before + 1


async def test_a_404_is_rejected_without_retry(receiver: Receiver) -> None:
    record = Recorder()
    async with callback_session() as session:
        outcome = await deliver(session, receiver.url("/gone"), BODY, "sub-4", policy(), record)
    assert (outcome.outcome, outcome.tries, outcome.http_status) == ("rejected", 1, 404)
    assert len(receiver.seen) == 1 and len(record.attempts) == 1


async def test_a_redirect_is_not_followed(receiver: Receiver) -> None:
    record = Recorder()
    async with callback_session() as session:
        url = receiver.url("/redirect")
        outcome = await deliver(session, url, BODY, "sub-5", policy(), record)
    assert (outcome.outcome, outcome.http_status) == ("rejected", 302)
    assert [path for path, _, _ in receiver.seen] == ["/redirect"]


def fake_dns(address: str) -> Any:
    calls: list[str] = []

    async def getaddrinfo(host: str, port: int) -> Sequence[tuple[Any, ...]]:
        calls.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    getaddrinfo.calls = calls  # type: ignore[attr-defined]
    return getaddrinfo


async def test_a_name_resolving_to_loopback_is_refused_before_connecting(silent: Silent) -> None:
    record = Recorder()
    dns = fake_dns("127.0.0.1")
    async with callback_session() as session:
        url = f"http://hooks.example:{silent.port}/x"
        outcome = await deliver(
            session, url, BODY, "sub-6", policy(allow_cidrs=()), record, getaddrinfo=dns
        )
    assert (outcome.outcome, outcome.tries) == ("refused", 1)
    assert outcome.error is not None and "resolves to 127.0.0.1" in outcome.error
    assert [a.outcome for a in record.attempts] == ["refused"]
    assert dns.calls == ["hooks.example"]
    await asyncio.sleep(0.05)
    assert silent.connections == 0


async def test_a_literal_loopback_url_is_refused_without_the_allow_list(silent: Silent) -> None:
    record = Recorder()
    async with callback_session() as session:
        url = f"http://[::ffff:127.0.0.1]:{silent.port}/x"
        outcome = await deliver(session, url, BODY, "sub-7", policy(allow_cidrs=()), record)
    assert outcome.outcome == "refused" and outcome.tries == 1
    await asyncio.sleep(0.05)
    assert silent.connections == 0


async def test_an_allow_listed_name_connects_to_the_checked_address_only(
    receiver: Receiver,
) -> None:
    # aiohttp cannot resolve hooks.example itself: the request reaches the receiver only
    # through the address `deliver` checked and pinned.
    record = Recorder()
    dns = fake_dns("127.0.0.1")
    allow = policy(allow_cidrs=(), allow_hosts=frozenset({"hooks.example"}))
    async with callback_session() as session:
        url = f"http://hooks.example:{receiver.port}/ok"
        outcome = await deliver(session, url, BODY, "sub-8", allow, record, getaddrinfo=dns)
    assert (outcome.outcome, outcome.http_status) == ("delivered", 204)
    [(_, headers, _)] = receiver.seen
    assert headers["Host"] == f"hooks.example:{receiver.port}"


async def test_a_closed_port_is_retried_then_dead() -> None:
    with socket.socket() as sock:  # a port nobody listens on once this closes
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    record = Recorder()
    async with callback_session() as session:
        url = f"http://127.0.0.1:{port}/x"
        outcome = await deliver(session, url, BODY, "sub-9", policy(max_tries=2), record)
    assert (outcome.outcome, outcome.tries) == ("dead", 2)
    assert [a.outcome for a in record.attempts] == ["retry", "dead"]
    assert all(a.error and a.error.startswith("connect:") for a in record.attempts)
