"""Rate limits (GCRA per tenant, reads apart from submissions), headers, in-flight bounds."""

from __future__ import annotations

import pytest

from streamworker.gateway.ratelimit import Decision, RateLimiter, ratelimit_headers
from streamworker.gateway.tenants import Tenant

ALICE = Tenant("alice", submissions_per_minute=60, reads_per_minute=600, max_in_flight=3)
BOB = Tenant("bob", submissions_per_minute=6, reads_per_minute=60, max_in_flight=1)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_tenant_bursts_its_minute_then_goes_at_the_steady_rate() -> None:
    clock = Clock()
    limiter = RateLimiter([ALICE, BOB], clock)
    first = limiter.check(ALICE, "submission")
    assert (first.allowed, first.limit, first.remaining) == (True, 60, 59)
    assert first.reset_s == pytest.approx(1.0)
    for _ in range(59):
        assert limiter.check(ALICE, "submission").allowed
    refused = limiter.check(ALICE, "submission")
    assert not refused.allowed and refused.remaining == 0
    assert refused.retry_after_s == pytest.approx(1.0)
    assert refused.reset_s == pytest.approx(60.0)
    clock.now += 0.5
    assert not limiter.check(ALICE, "submission").allowed, "a refusal costs nothing"
    clock.now += 0.5
    again = limiter.check(ALICE, "submission")
    assert again.allowed and again.remaining == 0
    clock.now += 60
    assert limiter.check(ALICE, "submission").remaining == 59, "a full bucket again"


def test_a_batch_costs_one_per_submission() -> None:
    limiter = RateLimiter([BOB], Clock())
    assert limiter.check(BOB, "submission", cost=4).remaining == 2
    refused = limiter.check(BOB, "submission", cost=3)
    assert not refused.allowed and refused.remaining == 2
    assert refused.retry_after_s == pytest.approx(10.0), "one more token: 60/6 seconds"
    assert limiter.check(BOB, "submission", cost=2).allowed
    too_big = RateLimiter([BOB], Clock()).check(BOB, "submission", cost=7)
    assert not too_big.allowed and too_big.retry_after_s == 60.0


def test_reads_and_submissions_do_not_starve_each_other() -> None:
    clock = Clock()
    limiter = RateLimiter([ALICE], clock)
    assert all(limiter.check(ALICE, "submission").allowed for _ in range(60))
    assert not limiter.check(ALICE, "submission").allowed
    polls = [limiter.check(ALICE, "read").allowed for _ in range(100)]
    assert all(polls), "a 10 Hz poller still reads while submissions are refused"
    assert all(limiter.check(ALICE, "read").allowed for _ in range(500))
    assert not limiter.check(ALICE, "read").allowed
    clock.now += 1
    assert limiter.check(ALICE, "submission").allowed, "polls do not eat submissions"


def test_tenants_have_separate_buckets() -> None:
    limiter = RateLimiter([ALICE, BOB], Clock())
    assert limiter.check(BOB, "submission", cost=6).allowed
    assert not limiter.check(BOB, "submission").allowed
    assert limiter.check(ALICE, "submission").allowed


def test_the_bucket_table_is_bounded_by_the_tenant_table() -> None:
    limiter = RateLimiter([ALICE, BOB], Clock())
    for i in range(10_000):
        with pytest.raises(ValueError, match="unknown tenant"):
            limiter.check(Tenant(f"hostile-{i}", 10**6, 10**6, 10**6), "read")
        limiter.check(ALICE if i % 2 else BOB, "read" if i % 3 else "submission")
    assert len(limiter) <= 4


def test_the_configured_limits_win_over_a_forged_tenant_object() -> None:
    limiter = RateLimiter([BOB], Clock())
    forged = Tenant("bob", 10**6, 10**6, 10**6)
    assert limiter.check(forged, "submission").limit == 6


def test_nonpositive_costs_are_refused() -> None:
    with pytest.raises(ValueError):
        RateLimiter([ALICE], Clock()).check(ALICE, "submission", cost=0)


def test_headers_on_success_and_refusal() -> None:
    ok = ratelimit_headers(Decision(True, 60, 59, 1.0, 0.0))
    assert ok == {
        "RateLimit-Limit": "60",
        "RateLimit-Remaining": "59",
        "RateLimit-Reset": "1",
        "RateLimit-Policy": "60;w=60",
    }
    refused = ratelimit_headers(Decision(False, 60, 0, 59.2, 0.2))
    assert refused["Retry-After"] == "1", "at least one second, a whole number"
    assert refused["RateLimit-Reset"] == "60"
    assert ratelimit_headers(Decision(False, 6, 0, 60, 9.01))["Retry-After"] == "10"
    assert ratelimit_headers(Decision(False, 6, 0, 60, 10.0))["Retry-After"] == "10"


def test_headers_from_a_real_refusal() -> None:
    limiter = RateLimiter([BOB], Clock())
    limiter.check(BOB, "submission", cost=6)
    headers = ratelimit_headers(limiter.check(BOB, "submission"))
    assert headers["Retry-After"] == "10" and headers["RateLimit-Remaining"] == "0"
