"""What every gateway route needs, built once per process: settings, the store, the
results hub, the submitter, and the caller's tenant and limits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import Request

from streamworker.gateway.http import Caller, loopback_only
from streamworker.gateway.results import ResultsHub
from streamworker.gateway.store import GatewayStore
from streamworker.gateway.submitter import Submitter
from streamworker.settings import Settings

Limit = Callable[[Caller, int], None]


def _unlimited(caller: Caller, cost: int) -> None:
    """No configured limits: every request passes (the in-flight bound still holds)."""
    del caller, cost


@dataclass
class Gateway:
    settings: Settings
    store: GatewayStore
    hub: ResultsHub
    submitter: Submitter
    authenticate: Callable[[Request], Caller] = loopback_only
    limit_submissions: Limit = field(default=_unlimited)
    limit_reads: Limit = field(default=_unlimited)
