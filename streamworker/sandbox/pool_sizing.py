"""How big a warm pool should be, from what it observes: pure, no I/O, no clock of its own.

Little's law: a container taken from the pool is replaced after one refill time R, so
with takes arriving at rate λ about λ·R replacements are under way at any moment, and
the pool must hold that many (ready or in creation) for the next take to find one.
Arrivals are not regular, so a spare of √(λ·R) — one standard deviation of a Poisson
count with mean λ·R (square-root staffing) — is added and the sum rounded up:

    target = clamp(ceil(λ·R + √(λ·R)), min_size, max_size)

The estimators are fed by `LanguagePool` with `time.monotonic()` readings; a miss still
grows the pool at once there, since a burst outruns any smoothed rate.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streamworker.settings import Settings

ARRIVAL_TAU_S = 10.0
"""Time constant of the arrival-rate estimate. Each arrival adds 1/τ to a level that
decays as exp(-t/τ): at 1 take/s the estimate averages ~10 arrivals (noise ~30 %), a
burst of n simultaneous takes raises it by n/τ and no more, and a stopped stream is
forgotten by a factor e every 10 s — well inside the default 60 s idle shrink."""

REFILL_WEIGHT = 0.2
"""Weight of each new create+start duration in the refill-time estimate: it follows a
daemon slowing down under load within a handful of creates, while one slow create moves
it by a fifth only."""

IDLE_RATE_PER_S = 1.0 / 60.0
"""Below one take a minute a pool counts as idle: the decaying estimate never reaches
zero by itself, and a stray take should not keep a container warm for minutes."""


class ArrivalRate:
    """An exponentially weighted estimate of takes per second, decaying between takes.

    Equal to λ on average for a steady rate λ (λ ± 1/2τ around each take). Simultaneous
    arrivals need no interval between them, so a burst is counted, not divided by zero.
    """

    def __init__(self, tau_s: float = ARRIVAL_TAU_S) -> None:
        self.tau_s = tau_s
        self._level = 0.0
        self._at: float | None = None

    def arrive(self, now: float, count: int = 1) -> None:
        """Count `count` takes at monotonic time `now` (a reading older than the last
        one counts as simultaneous with it; a non-finite one is ignored)."""
        if not math.isfinite(now) or count <= 0:
            return
        self._level = self.rate(now) + count / self.tau_s
        self._at = now if self._at is None else max(self._at, now)

    def rate(self, now: float) -> float:
        """Takes per second as of `now`; 0.0 before the first take."""
        if self._at is None:
            return 0.0
        elapsed = now - self._at
        if math.isnan(elapsed) or elapsed <= 0:
            return self._level
        return self._level * math.exp(-elapsed / self.tau_s)


class RefillTime:
    """An exponentially weighted average of observed create+start durations, in seconds."""

    def __init__(self, weight: float = REFILL_WEIGHT) -> None:
        self.weight = weight
        self.seconds: float | None = None
        """None until the first container was made: no data, no rate-based size."""

    def observe(self, seconds: float) -> None:
        """Fold in one duration; a negative or non-finite one is not a measurement."""
        if not math.isfinite(seconds) or seconds < 0:
            return
        if self.seconds is None:
            self.seconds = seconds
        else:
            self.seconds += self.weight * (seconds - self.seconds)


def load(rate: float, refill_s: float | None) -> float:
    """λ·R: the containers being replaced at any moment; 0.0 for an idle pool or inputs
    that are no measurement (no refill yet, zero, negative, infinite or NaN, or a
    product that overflows)."""
    if refill_s is None or not math.isfinite(rate) or not math.isfinite(refill_s):
        return 0.0
    if rate < IDLE_RATE_PER_S or refill_s <= 0:
        return 0.0
    offered = rate * refill_s
    return offered if math.isfinite(offered) else 0.0


def target_size(rate: float, refill_s: float | None, min_size: int, max_size: int) -> int:
    """The pool size for takes at `rate` per second refilled in `refill_s` seconds:
    ceil(λ·R + √(λ·R)) within [min_size, max_size]; min_size when there is no load."""
    low = max(0, min_size)
    high = max(low, max_size)
    offered = load(rate, refill_s)
    if offered <= 0:
        return low
    return min(high, max(low, math.ceil(offered + math.sqrt(offered))))


def creates_in_flight(rate: float, refill_s: float | None) -> int:
    """Creates that must run side by side for the refills to keep pace: ceil(λ·R)."""
    return math.ceil(load(rate, refill_s))


def pool_floor(settings: Settings) -> int:
    """The pre-warmed floor these settings give every pool (`warm_minimum`)."""
    s = settings
    return warm_minimum(s.pool_min_size, s.concurrency, s.pool_max_uses, s.pool_max_size)


def warm_minimum(configured: int | None, concurrency: int, max_uses: int, max_size: int) -> int:
    """A pre-warmed pool's floor: the configured one, else ("auto") concurrency + 1 when
    containers are reused, else 2; never above `max_size`.

    With reuse, a worker at its concurrency holds that many containers at once and one
    more is usually being wiped; a smaller floor means the first burst after a quiet spell
    misses, and each miss starts a create (~15 ms of the worker's CPU, more of dockerd's)
    for a container the pool gives back a minute later. Single-use pools replace every
    take anyway and follow the arrival rate from 2 up.
    """
    if configured is not None:
        return max(0, min(configured, max_size))
    wanted = concurrency + 1 if max_uses > 1 else 2
    return max(0, min(wanted, max_size))


AGE_SPREAD = 0.2
"""A pooled container retires between (1 - AGE_SPREAD) and 1 times the max idle age."""


def retirement_age(max_idle_s: float, draw: float) -> float:
    """One container's own age limit, for `draw` in [0, 1).

    A pool fills all at once (at start, after a burst, after a daemon restart); with one
    shared limit an idle pool would also retire and recreate all of it at once, and a
    burst arriving then would find none ready. Spread over the last fifth of the period
    (and each retired when due: `LanguagePool._recycle_old`), they go one at a time.
    Never above `max_idle_s`: the idle-until label other workers' reapers trust stays
    true.
    """
    return max_idle_s * (1.0 - AGE_SPREAD * min(max(draw, 0.0), 1.0))
