"""Tenants on the real gateway: Judge0's auth headers map to tenants, a tenant never reads
another's token, submissions are rate limited (429 with Retry-After and RateLimit-*)
while polling goes on, in-flight submissions are bounded (503 "queue is full"), an
Idempotency-Key returns the first token, and DELETE is off."""

from __future__ import annotations

import time
from typing import Any

from tests.integration.gateway_util import http, start_gateway

__all__ = ["start_gateway"]

ALICE, BOB, CAROL = (
    "alice-token-0123456789abcdef",
    "bob-token-0123456789abcdef",
    "carol-token-0123456789abc",
)
HELLO = {"source_code": "print('hello')", "language_id": 71}
SLOW = {
    "source_code": "import time; time.sleep(4); print(1)",
    "language_id": 71,
    "wall_time_limit": 10,
}


def test_tenants_auth_isolation_limits_and_idempotency(
    start_worker: Any, start_gateway: Any, pg_url: str
) -> None:
    worker = start_worker(database_url=pg_url)
    gateway = start_gateway(
        worker.env,
        STREAMWORKER_GATEWAY_TENANTS=f"alice:{ALICE}:3,bob:{BOB},carol:{CAROL}:100:1",
    )
    url = f"{gateway.url}/submissions"

    status, body, _ = http("POST", url, HELLO)
    assert (status, body) == (401, None)  # Judge0: 401, empty body — loopback too, once configured
    status, body, _ = http("GET", f"{gateway.url}/languages", headers={"X-Auth-Token": "wrong"})
    assert status == 401

    tokens = []
    for headers, query in [
        ({"X-Auth-Token": ALICE}, ""),
        ({"Authorization": f"Bearer {ALICE}"}, ""),
        ({}, f"?X-Auth-Token={ALICE}"),
    ]:
        status, body, got = http("POST", url + query, HELLO, headers=headers)
        assert status == 201, body
        assert got["ratelimit-limit"] == "3"
        tokens.append(body["token"])
    status, body, got = http("POST", url, HELLO, headers={"X-RapidAPI-Key": ALICE})
    assert status == 429 and int(got["retry-after"]) >= 1 and got["ratelimit-remaining"] == "0"
    # Polling is a separate, larger bucket: alice still reads while her submissions wait.
    for _ in range(20):
        status, body, _ = http("GET", f"{url}/{tokens[0]}", headers={"X-Auth-Token": ALICE})
        assert status == 200
    # Bob never sees alice's tokens: not even that they exist.
    status, body, _ = http("GET", f"{url}/{tokens[0]}", headers={"X-Auth-Token": BOB})
    assert status == 404
    status, body, _ = http(
        "GET", f"{url}/batch?tokens={tokens[0]},{tokens[1]}", headers={"X-Auth-Token": BOB}
    )
    assert body == {"submissions": [None, None]}

    # Idempotency-Key: the same key from the same tenant is the same submission.
    keyed = {"X-Auth-Token": BOB, "Idempotency-Key": "order-42"}
    first = http("POST", url, HELLO, headers=keyed)[1]["token"]
    assert (
        http("POST", url, {**HELLO, "source_code": "print(2)"}, headers=keyed)[1]["token"] == first
    )

    # Carol may have one submission in flight.
    status, body, _ = http("POST", url, SLOW, headers={"X-Auth-Token": CAROL})
    assert status == 201
    status, body, _ = http("POST", url, SLOW, headers={"X-Auth-Token": CAROL})
    assert (status, body) == (503, {"error": "queue is full"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # answered: the slot is free again
        status, body, _ = http("POST", url, HELLO, headers={"X-Auth-Token": CAROL})
        if status == 201:
            break
        time.sleep(0.5)
    assert status == 201

    status, body, _ = http("DELETE", f"{url}/{first}", headers={"X-Auth-Token": BOB})
    assert (status, body) == (400, {"error": "delete not allowed"})
