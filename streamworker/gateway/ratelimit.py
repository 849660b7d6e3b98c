"""Per-tenant rate limits (GCRA) and in-flight bounds, counted in submissions.

Two buckets per tenant: one for submissions (a batch of N costs N) and a much larger one
for reads, because Judge0's SDKs poll every 100 ms: a submission flood must not starve
the polls, nor the polls the submissions. GCRA keeps one number per bucket, the
theoretical arrival time; a tenant may burst its whole per-minute allowance, then goes
at the steady rate. Buckets are keyed by tenant name, and only names of the tenant table
are accepted, so hostile requests cannot grow the table. Each replica keeps its own
buckets: N replicas allow up to N times the configured rates.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from streamworker.gateway.tenants import Tenant

Kind = Literal["submission", "read"]
WINDOW_S = 60.0
_EPSILON = 1e-9


@dataclass(frozen=True)
class Decision:
    """One check: allowed or not, and what the RateLimit headers say."""

    allowed: bool
    limit: int
    """Requests (submissions) per window."""
    remaining: int
    reset_s: float
    """Until the bucket is full again."""
    retry_after_s: float
    """Until this request would be allowed (0 when it was); a cost above `limit` can
    never be: its wait is a whole window, the caller should rather refuse the batch."""


def _limit_of(tenant: Tenant, kind: Kind) -> int:
    return tenant.submissions_per_minute if kind == "submission" else tenant.reads_per_minute


class RateLimiter:
    """GCRA buckets for a fixed set of tenants; `clock` is monotonic (injectable)."""

    def __init__(
        self, tenants: Iterable[Tenant], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._tenants = {tenant.name: tenant for tenant in tenants}
        self._clock = clock
        self._tat: dict[tuple[str, Kind], float] = {}

    def __len__(self) -> int:
        """Buckets in use: never more than two per configured tenant."""
        return len(self._tat)

    def check(
        self, tenant: Tenant, kind: Kind, cost: int = 1, now: float | None = None
    ) -> Decision:
        """Take `cost` from `tenant`'s `kind` bucket if it holds that much."""
        known = self._tenants.get(tenant.name)
        if known is None:
            raise ValueError(f"unknown tenant {tenant.name!r}: buckets are for the table's only")
        if cost < 1:
            raise ValueError("cost must be at least 1")
        now = self._clock() if now is None else now
        limit = _limit_of(known, kind)
        interval = WINDOW_S / limit
        key = (known.name, kind)
        tat = max(self._tat.get(key, now), now)
        new_tat = tat + cost * interval
        if new_tat - now > WINDOW_S + _EPSILON:
            wait = WINDOW_S if cost > limit else new_tat - now - WINDOW_S
            return Decision(
                False, limit, self._remaining(tat, now, interval, limit), tat - now, wait
            )
        self._tat[key] = new_tat
        remaining = self._remaining(new_tat, now, interval, limit)
        return Decision(True, limit, remaining, new_tat - now, 0.0)

    @staticmethod
    def _remaining(tat: float, now: float, interval: float, limit: int) -> int:
        return max(0, min(limit, math.floor((WINDOW_S - (tat - now)) / interval + _EPSILON)))


def ratelimit_headers(decision: Decision) -> dict[str, str]:
    """RateLimit-Limit/-Remaining/-Reset (IETF draft) always; Retry-After (whole seconds,
    at least 1) on a refusal."""
    headers = {
        "RateLimit-Limit": str(decision.limit),
        "RateLimit-Remaining": str(decision.remaining),
        "RateLimit-Reset": str(max(0, math.ceil(decision.reset_s - _EPSILON))),
        "RateLimit-Policy": f"{decision.limit};w={int(WINDOW_S)}",
    }
    if not decision.allowed:
        headers["Retry-After"] = str(max(1, math.ceil(decision.retry_after_s - _EPSILON)))
    return headers
