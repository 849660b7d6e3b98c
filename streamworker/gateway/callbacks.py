"""Judge0 callbacks done right: signed, bounded, retried with jitter, never to a private
address, every attempt recorded.

Judge0 PUTs the result to `callback_url` once and forgets it. Here `deliver` PUTs the
caller's JSON body, signed with HMAC-SHA256 over `"{timestamp}." + body` so a receiver
can tell us from a forger and a fresh delivery from a replay; it retries connection
errors, timeouts, 5xx and 429 with capped exponential backoff and full jitter (honouring
`Retry-After`), gives up after `max_tries` ("dead": the caller dead-letters it), and
never follows a redirect. Targets go through `ssrf` before every attempt.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import hmac
import math
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import aiohttp

from streamworker import __version__, metrics
from streamworker.errors import ConfigError
from streamworker.gateway.ssrf import (
    CallbackRefused,
    CheckedTarget,
    GetAddrInfo,
    IPNetwork,
    PinnedConnector,
    UnpinnedHost,
    check_url,
    parse_allow_list,
    pinned,
    resolve_target,
)

MAX_RESPONSE_BYTES = 64 * 1024
MIN_SECRET_BYTES = 16
MAX_ERROR_CHARS = 500
EVENT_ID_HEADER = "X-Streamworker-Event-Id"
TIMESTAMP_HEADER = "X-Streamworker-Timestamp"
SIGNATURE_HEADER = "X-Streamworker-Signature"
_EVENT_ID = re.compile(r"^[\x21-\x7e]{1,200}$")
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")

Outcome = Literal["delivered", "retry", "refused", "dead", "rejected"]
FinalOutcome = Literal["delivered", "refused", "dead", "rejected"]


@dataclass(frozen=True)
class CallbackPolicy:
    """How callbacks are delivered; one per gateway, from `callback_policy_from_env`."""

    secret: bytes
    max_tries: int = 5
    timeout_s: float = 5.0
    """Per attempt, DNS included."""
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    """Caps each backoff delay and any Retry-After the receiver asks for."""
    allow_cidrs: tuple[IPNetwork, ...] = ()
    allow_hosts: frozenset[str] = field(default_factory=frozenset)
    """Exact host names (lower case, no trailing dot) admitted whatever they resolve to."""

    def __post_init__(self) -> None:
        if len(self.secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the callback secret needs at least {MIN_SECRET_BYTES} bytes")
        if self.max_tries < 1 or self.timeout_s <= 0 or self.backoff_base_s < 0:
            raise ValueError("max_tries >= 1, timeout_s > 0 and backoff_base_s >= 0")
        if self.backoff_max_s < self.backoff_base_s:
            raise ValueError("backoff_max_s must be at least backoff_base_s")


@dataclass(frozen=True)
class Attempt:
    """One try, as the audit log keeps it."""

    event_id: str
    url: str
    """scheme://host:port/path: no query string (it may carry a receiver's secret)."""
    try_number: int
    started_at: float
    """Unix seconds."""
    duration_s: float
    http_status: int | None
    error: str | None
    outcome: Outcome


@dataclass(frozen=True)
class DeliveryOutcome:
    """How a delivery ended: delivered, refused (SSRF guard), rejected (4xx/3xx) or dead."""

    event_id: str
    outcome: FinalOutcome
    tries: int
    http_status: int | None
    error: str | None


# --- signatures ------------------------------------------------------------------------


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The signature header's value: `v1=` + hex HMAC-SHA256 of `"{timestamp}." + body`."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def verify_signature(
    secret: bytes,
    timestamp: str | int,
    body: bytes,
    header: str,
    now: float,
    tolerance_s: float = 300,
) -> bool:
    """A receiver's check: the timestamp is recent and one `v1=` signature matches.

    `header` may list several comma-separated signatures (a sender rotating secrets);
    each is compared in constant time and all are compared.
    """
    text = str(timestamp)
    if not _TIMESTAMP.match(text) or abs(now - int(text)) > tolerance_s:
        return False
    expected = sign(secret, int(text), body).encode()
    matched = False
    for candidate in header.split(",")[:8]:
        given = candidate.strip().encode("utf-8", "surrogateescape")
        matched |= hmac.compare_digest(given, expected)
    return matched


# --- the retry schedule ----------------------------------------------------------------


def backoff_delay_s(try_number: int, policy: CallbackPolicy, rand: float) -> float:
    """Full jitter after failed try `try_number` (1-based): uniform in
    [0, min(backoff_max_s, backoff_base_s * 2**(try_number-1))), `rand` in [0, 1)."""
    exponent = min(try_number - 1, 60)
    return rand * min(policy.backoff_max_s, policy.backoff_base_s * 2.0**exponent)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Retry-After as seconds from `now` (unix): delta-seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit() and len(value) <= 10:
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def retry_delay_s(
    try_number: int, policy: CallbackPolicy, rand: float, retry_after_s: float | None
) -> float:
    """The wait before the next try: the jittered backoff, or longer when the receiver
    asked for it, but never more than `backoff_max_s`."""
    delay = backoff_delay_s(try_number, policy, rand)
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, policy.backoff_max_s))
    return delay


def classify(status: int | None) -> Outcome:
    """An answer (None: no answer) as delivered, retry or rejected.

    Retried: no answer (connection error, timeout), 5xx and 429. Everything else that is
    not 2xx is the receiver's final word, redirects included (they are not followed).
    """
    if status is None or status >= 500 or status == 429:
        return "retry"
    return "delivered" if 200 <= status < 300 else "rejected"


# --- delivery --------------------------------------------------------------------------


def redact(url: str) -> str:
    """A URL fit for logs before it is parsed: no userinfo, query or fragment, cut short."""
    head = url.split("#", 1)[0].split("?", 1)[0]
    return re.sub(r"//[^/]*@", "//", head)[:200]


def _final(verdict: Outcome) -> FinalOutcome:
    if verdict == "retry":
        raise AssertionError("a retry is not how a delivery ends")
    return verdict


def callback_session() -> aiohttp.ClientSession:
    """The session `deliver` needs: it connects only to addresses `deliver` checked, reads
    no proxy settings from the environment and keeps no cookies."""
    return aiohttp.ClientSession(
        connector=PinnedConnector(),
        trust_env=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        headers={"User-Agent": f"streamworker-callback/{__version__}"},
    )


@dataclass
class _Answer:
    status: int | None = None
    retry_after: str | None = None
    error: str | None = None
    refused: bool = False


async def _drain(response: aiohttp.ClientResponse) -> None:
    """Read at most MAX_RESPONSE_BYTES of the answer and discard them; more closes it."""
    read = 0
    while read <= MAX_RESPONSE_BYTES:
        chunk = await response.content.readany()
        if not chunk:
            return
        read += len(chunk)
    response.close()


async def _attempt(
    session: aiohttp.ClientSession,
    target: CheckedTarget,
    headers: Mapping[str, str],
    body: bytes,
    policy: CallbackPolicy,
    getaddrinfo: GetAddrInfo | None,
) -> _Answer:
    """One PUT, DNS included, within `policy.timeout_s`; never raises but cancellation."""
    answer = _Answer()
    try:
        async with asyncio.timeout(policy.timeout_s):
            addresses = await resolve_target(target, policy, getaddrinfo)
            with pinned(target.host, addresses):
                async with session.put(
                    target.url, data=body, headers=headers, allow_redirects=False
                ) as response:
                    answer.status = response.status
                    answer.retry_after = response.headers.get("Retry-After")
                    await _drain(response)
    except CallbackRefused as exc:
        answer.refused, answer.error = True, exc.reason
    except aiohttp.ClientConnectorError as exc:
        answer.refused = isinstance(exc.os_error, UnpinnedHost)
        answer.error = f"connect: {exc.os_error}"
    except TimeoutError:
        answer.error = f"timed out after {policy.timeout_s:g}s"
    except (aiohttp.ClientError, OSError) as exc:
        answer.error = f"{type(exc).__name__}: {exc}"
    if answer.status is not None:
        answer.error = None  # the receiver answered; a cut-off body does not matter
    elif answer.error is not None:
        answer.error = answer.error[:MAX_ERROR_CHARS]
    return answer


def _headers(event_id: str, policy: CallbackPolicy, body: bytes, now: float) -> dict[str, str]:
    timestamp = int(now)
    return {
        "Content-Type": "application/json",
        EVENT_ID_HEADER: event_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(policy.secret, timestamp, body),
    }


async def deliver(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    event_id: str,
    policy: CallbackPolicy,
    record: Callable[[Attempt], Awaitable[None]],
    *,
    getaddrinfo: GetAddrInfo | None = None,
    rand: Callable[[], float] = random.random,
    wall_clock: Callable[[], float] = time.time,
) -> DeliveryOutcome:
    """PUT `body` to `url` until delivered, refused, rejected or out of tries.

    `session` must come from `callback_session()` (its connector only connects to checked
    addresses). `event_id` is the idempotency key receivers dedupe on: the same on every
    try. `record` is awaited for every attempt, before any wait; its errors propagate.
    """
    if not isinstance(session.connector, PinnedConnector):
        raise TypeError("deliver needs a session from callback_session()")
    if not _EVENT_ID.match(event_id):
        raise ValueError("event_id must be 1-200 printable ASCII characters")
    try_number, answer = 0, _Answer()
    outcome: FinalOutcome = "dead"
    display = redact(url)
    while try_number < policy.max_tries:
        try_number += 1
        started, clock = wall_clock(), time.monotonic()
        try:
            target = check_url(url, policy)
        except CallbackRefused as exc:
            answer = _Answer(error=exc.reason, refused=True)
        else:
            display = target.display
            headers = _headers(event_id, policy, body, started)
            answer = await _attempt(session, target, headers, body, policy, getaddrinfo)
        duration = time.monotonic() - clock
        verdict: Outcome = "refused" if answer.refused else classify(answer.status)
        if verdict == "retry" and try_number >= policy.max_tries:
            verdict = "dead"
        metrics.CALLBACK_SECONDS.observe(duration)
        attempt = Attempt(
            event_id, display, try_number, started, duration, answer.status, answer.error, verdict
        )
        await record(attempt)
        if verdict != "retry":
            outcome = _final(verdict)
            break
        retry_after = None
        if answer.status in (429, 503):
            retry_after = parse_retry_after(answer.retry_after, wall_clock())
        await asyncio.sleep(retry_delay_s(try_number, policy, rand(), retry_after))
    metrics.CALLBACK_DELIVERIES.labels(outcome).inc()
    return DeliveryOutcome(event_id, outcome, try_number, answer.status, answer.error)


# --- configuration ---------------------------------------------------------------------


def _env_int(env: Mapping[str, str], key: str, default: int, low: int, high: int) -> int:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ConfigError(key, f"expected an integer from {low} to {high}, got {raw!r}")
    return int(raw)


def _env_number(env: Mapping[str, str], key: str, default: float, low: float, high: float) -> float:
    raw = env.get(key)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(key, f"expected a number, got {raw!r}") from exc
    if not (math.isfinite(value) and low <= value <= high):
        raise ConfigError(key, f"must be between {low:g} and {high:g}, got {raw!r}")
    return value


def callback_policy_from_env(env: Mapping[str, str]) -> CallbackPolicy | None:
    """The policy from STREAMWORKER_GATEWAY_CALLBACK_*; None when no secret is set
    (callbacks are then off: the gateway refuses submissions that ask for one)."""
    secret = env.get("STREAMWORKER_GATEWAY_CALLBACK_SECRET", "")
    if not secret:
        return None
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise ConfigError(
            "STREAMWORKER_GATEWAY_CALLBACK_SECRET", f"needs at least {MIN_SECRET_BYTES} bytes"
        )
    key = "STREAMWORKER_GATEWAY_CALLBACK_ALLOW"
    cidrs, hosts = parse_allow_list(key, env.get(key, ""))
    base = _env_number(env, "STREAMWORKER_GATEWAY_CALLBACK_BACKOFF_BASE_S", 0.5, 0, 60)
    return CallbackPolicy(
        secret=secret.encode(),
        max_tries=_env_int(env, "STREAMWORKER_GATEWAY_CALLBACK_MAX_TRIES", 5, 1, 20),
        timeout_s=_env_number(env, "STREAMWORKER_GATEWAY_CALLBACK_TIMEOUT_S", 5, 0.1, 60),
        backoff_base_s=base,
        backoff_max_s=_env_number(
            env, "STREAMWORKER_GATEWAY_CALLBACK_BACKOFF_MAX_S", max(30.0, base), base, 3600
        ),
        allow_cidrs=cidrs,
        allow_hosts=hosts,
    )
