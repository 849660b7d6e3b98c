"""Pool sizing by Little's law: the estimators and the target they give."""

from __future__ import annotations

import math

import pytest

from streamworker.sandbox.pool_sizing import (
    ARRIVAL_TAU_S,
    IDLE_RATE_PER_S,
    ArrivalRate,
    RefillTime,
    creates_in_flight,
    load,
    pool_floor,
    target_size,
    warm_minimum,
)
from streamworker.settings import Settings


def steady(rate: float, seconds: float, start: float = 1000.0) -> tuple[ArrivalRate, float]:
    """An estimator fed one take every 1/rate seconds for `seconds`; the last take's time."""
    arrivals = ArrivalRate()
    at = start
    for i in range(round(seconds * rate)):
        at = start + i / rate
        arrivals.arrive(at)
    return arrivals, at


def test_no_data_gives_the_minimum() -> None:
    arrivals, refill = ArrivalRate(), RefillTime()
    assert arrivals.rate(5.0) == 0.0 and refill.seconds is None
    assert target_size(arrivals.rate(5.0), refill.seconds, 2, 8) == 2
    assert target_size(3.0, None, 1, 8) == 1, "a rate without a refill time is no size"


def test_a_steady_rate_is_estimated_and_sized_by_littles_law() -> None:
    arrivals, last = steady(rate=4.0, seconds=10 * ARRIVAL_TAU_S)
    between = arrivals.rate(last + 0.125)  # halfway to the next take
    assert between == pytest.approx(4.0, rel=0.01)
    # 4 takes/s replaced in 0.5 s: 2 under way, plus a spare of sqrt(2), rounded up.
    assert load(between, 0.5) == pytest.approx(2.0, rel=0.01)
    assert target_size(between, 0.5, 0, 8) == 4
    assert creates_in_flight(between, 0.5) in (2, 3)
    # Faster creates need fewer containers for the same rate.
    assert target_size(between, 0.1, 0, 8) == 2


def test_the_estimate_ramps_up_within_a_few_time_constants() -> None:
    arrivals, last = steady(rate=2.0, seconds=ARRIVAL_TAU_S)
    # After one time constant about 1 - 1/e of the rate is seen: conservative, and the
    # pool's misses cover the rest meanwhile.
    assert 0.55 * 2.0 < arrivals.rate(last) < 0.75 * 2.0


def test_a_burst_of_simultaneous_takes_is_counted_not_divided_by_zero() -> None:
    arrivals = ArrivalRate()
    arrivals.arrive(100.0, count=1)
    for _ in range(49):
        arrivals.arrive(100.0)
    assert arrivals.rate(100.0) == pytest.approx(50 / ARRIVAL_TAU_S)
    same = ArrivalRate()
    same.arrive(100.0, count=50)
    assert same.rate(100.0) == pytest.approx(arrivals.rate(100.0))
    # 5/s for 0.3 s creates: 1.5 under way, plus sqrt(1.5), rounded up.
    assert target_size(arrivals.rate(100.0), 0.3, 1, 8) == 3
    # The burst fades: a factor e per time constant.
    assert arrivals.rate(100.0 + ARRIVAL_TAU_S) == pytest.approx(5.0 / math.e)


def test_an_idle_pool_decays_to_its_minimum() -> None:
    arrivals, last = steady(rate=4.0, seconds=60.0)
    assert target_size(arrivals.rate(last), 0.5, 1, 8) == 4
    later = last + 10 * ARRIVAL_TAU_S
    assert arrivals.rate(later) < IDLE_RATE_PER_S
    assert target_size(arrivals.rate(later), 0.5, 1, 8) == 1
    assert target_size(arrivals.rate(later), 0.5, 0, 8) == 0


def test_a_reading_older_than_the_last_take_counts_as_simultaneous() -> None:
    arrivals = ArrivalRate()
    arrivals.arrive(50.0)
    arrivals.arrive(49.0)
    assert arrivals.rate(50.0) == pytest.approx(2 / ARRIVAL_TAU_S)
    assert arrivals.rate(10.0) == pytest.approx(2 / ARRIVAL_TAU_S)


@pytest.mark.parametrize(
    ("rate", "refill_s", "min_size", "max_size", "expected"),
    [
        (1000.0, 0.5, 2, 8, 8),  # clamped to the maximum
        (0.5, 0.2, 3, 8, 3),  # a light load never goes below the minimum
        (0.5, 0.2, 0, 8, 1),  # any real load keeps one container warm
        (5.0, 0.3, 4, 2, 4),  # a minimum above the maximum wins
        (5.0, 0.3, -1, 8, 3),  # a negative minimum counts as 0
    ],
)
def test_target_is_clamped(
    rate: float, refill_s: float, min_size: int, max_size: int, expected: int
) -> None:
    assert target_size(rate, refill_s, min_size, max_size) == expected


@pytest.mark.parametrize(
    ("rate", "refill_s"),
    [
        (0.0, 0.5),
        (-3.0, 0.5),
        (math.nan, 0.5),
        (math.inf, 0.5),
        (4.0, 0.0),
        (4.0, -1.0),
        (4.0, math.nan),
        (4.0, math.inf),
        (4.0, None),
        (1e308, 1e308),  # the product overflows
        (IDLE_RATE_PER_S / 2, 30.0),
    ],
)
def test_degenerate_inputs_give_the_minimum(rate: float, refill_s: float | None) -> None:
    assert target_size(rate, refill_s, 2, 8) == 2
    assert creates_in_flight(rate, refill_s) == 0


def test_non_finite_arrivals_are_ignored() -> None:
    arrivals = ArrivalRate()
    arrivals.arrive(math.nan)
    arrivals.arrive(math.inf)
    arrivals.arrive(1.0, count=0)
    assert arrivals.rate(2.0) == 0.0
    arrivals.arrive(2.0)
    assert arrivals.rate(math.nan) == pytest.approx(1 / ARRIVAL_TAU_S)
    assert arrivals.rate(math.inf) == 0.0


def test_refill_time_is_an_ewma_that_ignores_non_measurements() -> None:
    refill = RefillTime(weight=0.2)
    for bad in (math.nan, math.inf, -0.1):
        refill.observe(bad)
    assert refill.seconds is None
    refill.observe(0.2)
    assert refill.seconds == pytest.approx(0.2)
    refill.observe(1.2)
    assert refill.seconds == pytest.approx(0.4)
    for _ in range(40):
        refill.observe(0.5)
    assert refill.seconds == pytest.approx(0.5, rel=1e-3)


@pytest.mark.parametrize(
    ("configured", "concurrency", "max_uses", "max_size", "floor"),
    [
        (None, 4, 100, 8, 5),  # auto with reuse: every slot busy and one being wiped
        (None, 4, 1, 8, 2),  # auto, single-use: the old default
        (None, 16, 100, 8, 8),  # never above the maximum
        (None, 4, 100, 0, 0),  # pools off
        (0, 4, 100, 8, 0),  # an explicit 0 keeps a pool empty until it is used
        (3, 4, 100, 8, 3),  # an explicit size is taken as it is
        (12, 4, 100, 8, 8),
        (-5, 4, 100, 8, 0),
    ],
)
def test_warm_minimum(
    configured: int | None, concurrency: int, max_uses: int, max_size: int, floor: int
) -> None:
    assert warm_minimum(configured, concurrency, max_uses, max_size) == floor


def test_pool_floor_reads_the_settings() -> None:
    assert pool_floor(Settings(concurrency=4, pool_max_uses=100, pool_max_size=8)) == 5
    assert pool_floor(Settings(concurrency=4, pool_max_uses=1, pool_max_size=8)) == 2
    assert pool_floor(Settings(pool_min_size=3, pool_max_size=8)) == 3
