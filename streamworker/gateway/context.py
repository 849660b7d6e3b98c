"""What every gateway route needs, built once per process: settings, the store, the
results hub, the submitter, the tenants and their rate limits."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from streamworker.gateway.callbacks import CallbackPolicy
from streamworker.gateway.http import Caller, HttpError
from streamworker.gateway.ratelimit import Kind, RateLimiter, ratelimit_headers
from streamworker.gateway.results import ResultsHub
from streamworker.gateway.store import GatewayStore
from streamworker.gateway.submitter import Submitter
from streamworker.gateway.tenants import Forbidden, TenantTable, Unauthorized, authenticate
from streamworker.settings import Settings


@dataclass
class Gateway:
    settings: Settings
    store: GatewayStore
    hub: ResultsHub
    submitter: Submitter
    tenants: TenantTable
    limiter: RateLimiter
    callbacks: CallbackPolicy | None = None
    """None: callbacks are off (no signing secret) and a `callback_url` is refused."""

    def authenticate(self, request: Request) -> Caller:
        """The caller's tenant; 401 (empty body, as Judge0) or 403 otherwise."""
        host = request.client.host if request.client else None
        try:
            tenant = authenticate(request.headers, request.query_params, host, self.tenants)
        except Unauthorized as exc:
            raise HttpError(401) from exc
        except Forbidden as exc:
            raise HttpError(403) from exc
        return Caller(tenant.name, tenant)

    def limit(self, request: Request, caller: Caller, kind: Kind, cost: int = 1) -> None:
        """Take `cost` from the caller's bucket; 429 with `Retry-After` when it is empty.
        Submissions and reads have separate buckets, so polling is never starved."""
        decision = self.limiter.check(caller.limits, kind, cost)
        headers = ratelimit_headers(decision)
        request.state.ratelimit = headers
        if not decision.allowed:
            raise HttpError(
                429,
                {"error": f"too many {kind}s: retry after {headers.get('Retry-After', '1')}s"},
                headers,
            )
