"""The pure parts of callbacks: signatures, the retry schedule, outcomes, configuration."""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import hmac
import ipaddress

import aiohttp
import pytest

from streamworker.errors import ConfigError
from streamworker.gateway.callbacks import (
    Attempt,
    CallbackPolicy,
    backoff_delay_s,
    callback_policy_from_env,
    callback_session,
    classify,
    deliver,
    parse_retry_after,
    redact,
    retry_delay_s,
    sign,
    verify_signature,
)

SECRET = b"0123456789abcdef-secret"
BODY = b'{"token":"abc","status":{"id":3,"description":"Accepted"}}'
NOW = 1_800_000_000


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET, f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, NOW, BODY) == f"v1={expected}"


def test_signature_round_trip() -> None:
    header = sign(SECRET, NOW, BODY)
    assert verify_signature(SECRET, str(NOW), BODY, header, now=NOW + 10)
    assert verify_signature(SECRET, NOW, BODY, header, now=NOW - 10)
    rotated = f"v1={'0' * 64}, {header}"
    assert verify_signature(SECRET, NOW, BODY, rotated, now=NOW)


@pytest.mark.parametrize(
    ("secret", "timestamp", "body", "now"),
    [
        (b"another-secret-of-16+", str(NOW), BODY, NOW),  # wrong secret
        (SECRET, str(NOW + 1), BODY, NOW),  # timestamp changed
        (SECRET, str(NOW), BODY + b" ", NOW),  # body changed
        (SECRET, str(NOW), BODY.replace(b"3", b"4"), NOW),  # one byte flipped
        (SECRET, str(NOW), BODY, NOW + 301),  # too old: a replay
        (SECRET, str(NOW), BODY, NOW - 301),  # from the future
        (SECRET, "1.8e9", BODY, NOW),  # not an integer
        (SECRET, "-5", BODY, NOW),
        (SECRET, "", BODY, NOW),
    ],
)
def test_a_tampered_or_stale_delivery_is_rejected(
    secret: bytes, timestamp: str, body: bytes, now: int
) -> None:
    header = sign(SECRET, NOW, BODY)
    assert not verify_signature(secret, timestamp, body, header, now=now)


@pytest.mark.parametrize("header", ["", "v1=", "v0=abc", "garbage", "v1=é", "v1=" + "0" * 64])
def test_a_malformed_signature_header_is_rejected(header: str) -> None:
    assert not verify_signature(SECRET, NOW, BODY, header, now=NOW)


def test_verification_compares_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    header = f"{sign(SECRET, NOW, BODY)},v1=00"
    assert verify_signature(SECRET, NOW, BODY, header, now=NOW)
    assert len(calls) == 2, "every listed signature is compared, no early exit"


POLICY = CallbackPolicy(secret=SECRET, backoff_base_s=0.5, backoff_max_s=30)


@pytest.mark.parametrize(
    ("try_number", "ceiling"), [(1, 0.5), (2, 1.0), (3, 2.0), (6, 16.0), (7, 30.0), (500, 30.0)]
)
def test_backoff_is_full_jitter_under_a_capped_exponential(try_number: int, ceiling: float) -> None:
    assert backoff_delay_s(try_number, POLICY, 0.0) == 0.0
    assert backoff_delay_s(try_number, POLICY, 0.5) == pytest.approx(ceiling / 2)
    top = backoff_delay_s(try_number, POLICY, 0.999999)
    assert ceiling * 0.999 < top < ceiling


def test_retry_after_lengthens_the_wait_but_is_capped() -> None:
    assert retry_delay_s(1, POLICY, 0.0, 7.0) == 7.0
    assert retry_delay_s(1, POLICY, 0.0, 10_000.0) == 30.0
    assert retry_delay_s(3, POLICY, 0.99, 0.1) == pytest.approx(1.98)
    assert retry_delay_s(1, POLICY, 0.5, None) == 0.25


def test_parse_retry_after_seconds_and_dates() -> None:
    assert parse_retry_after("1", NOW) == 1.0
    assert parse_retry_after(" 120 ", NOW) == 120.0
    date = email.utils.formatdate(NOW + 42, usegmt=True)
    assert parse_retry_after(date, NOW) == pytest.approx(42)
    assert parse_retry_after(email.utils.formatdate(NOW - 42, usegmt=True), NOW) == 0.0
    for bad in (None, "", "-1", "1.5", "soon", "9" * 40):
        assert parse_retry_after(bad, NOW) is None


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (None, "retry"),
        (200, "delivered"),
        (204, "delivered"),
        (301, "rejected"),
        (307, "rejected"),
        (400, "rejected"),
        (401, "rejected"),
        (404, "rejected"),
        (410, "rejected"),
        (429, "retry"),
        (500, "retry"),
        (503, "retry"),
    ],
)
def test_classify(status: int | None, outcome: str) -> None:
    assert classify(status) == outcome


def test_redact_drops_userinfo_query_and_fragment() -> None:
    assert redact("http://u:p@h.example/x?token=1#f") == "http://h.example/x"
    assert len(redact("http://h/" + "a" * 5000)) == 200


def test_policy_refuses_a_short_secret_and_nonsense_bounds() -> None:
    with pytest.raises(ValueError, match="secret"):
        CallbackPolicy(secret=b"short")
    with pytest.raises(ValueError):
        CallbackPolicy(secret=SECRET, max_tries=0)
    with pytest.raises(ValueError):
        CallbackPolicy(secret=SECRET, backoff_base_s=5, backoff_max_s=1)


def test_policy_from_env() -> None:
    assert callback_policy_from_env({}) is None
    policy = callback_policy_from_env(
        {
            "STREAMWORKER_GATEWAY_CALLBACK_SECRET": "x" * 32,
            "STREAMWORKER_GATEWAY_CALLBACK_ALLOW": "127.0.0.1, 10.0.0.0/8,Hooks.Internal.,::1",
            "STREAMWORKER_GATEWAY_CALLBACK_MAX_TRIES": "3",
            "STREAMWORKER_GATEWAY_CALLBACK_TIMEOUT_S": "2.5",
        }
    )
    assert policy is not None
    assert policy.secret == b"x" * 32 and policy.max_tries == 3 and policy.timeout_s == 2.5
    assert policy.allow_cidrs == (
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    assert policy.allow_hosts == frozenset({"hooks.internal"})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("STREAMWORKER_GATEWAY_CALLBACK_SECRET", "short", "at least 16 bytes"),
        ("STREAMWORKER_GATEWAY_CALLBACK_ALLOW", "10.0.0.1/8", "not a valid CIDR"),
        ("STREAMWORKER_GATEWAY_CALLBACK_ALLOW", "10.0.0.300", "not a valid CIDR"),
        ("STREAMWORKER_GATEWAY_CALLBACK_ALLOW", "hooks&co.example", "neither a CIDR"),
        ("STREAMWORKER_GATEWAY_CALLBACK_MAX_TRIES", "2.5", "integer"),
        ("STREAMWORKER_GATEWAY_CALLBACK_MAX_TRIES", "0", "integer"),
        ("STREAMWORKER_GATEWAY_CALLBACK_TIMEOUT_S", "nan", "between"),
        ("STREAMWORKER_GATEWAY_CALLBACK_TIMEOUT_S", "soon", "a number"),
    ],
)
def test_policy_from_env_names_the_bad_key(key: str, value: str, message: str) -> None:
    env = {"STREAMWORKER_GATEWAY_CALLBACK_SECRET": "y" * 16, key: value}
    with pytest.raises(ConfigError, match=message) as caught:
        callback_policy_from_env(env)
    assert caught.value.key == key


def test_deliver_refuses_a_session_that_resolves_by_itself() -> None:
    async def scenario() -> None:
        async def record(attempt: Attempt) -> None:
            raise AssertionError("nothing is attempted")

        async with aiohttp.ClientSession() as session:
            with pytest.raises(TypeError, match="callback_session"):
                await deliver(session, "http://8.8.8.8/", BODY, "e1", POLICY, record)

    asyncio.run(scenario())


def test_a_refused_url_is_recorded_once_without_its_secrets() -> None:
    attempts: list[Attempt] = []

    async def record(attempt: Attempt) -> None:
        attempts.append(attempt)

    async def scenario() -> None:
        async with callback_session() as session:
            outcome = await deliver(
                session, "http://user:pw@10.0.0.1/x?tok=1", BODY, "e2", POLICY, record
            )
        assert (outcome.outcome, outcome.tries, outcome.http_status) == ("refused", 1, None)

    asyncio.run(scenario())
    [attempt] = attempts
    assert attempt.outcome == "refused" and attempt.url == "http://10.0.0.1/x"
    assert attempt.error is not None and "userinfo" in attempt.error
