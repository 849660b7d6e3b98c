"""The worker's HTTP pages: `/health` (liveness), `/ready` (readiness), `/metrics`."""

from __future__ import annotations

from typing import Any

import faust
from faust.web import Request, Response, View

from streamworker import metrics
from streamworker.worker.health import consumer_state
from streamworker.worker.resources import Resources


class GroupState:
    """Whether the consumer finished its first rebalance (not ready before that)."""

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self.joined = False
        app.on_rebalance_complete.connect(self._joined)

    async def _joined(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        self.joined = True

    def consumer(self) -> str:
        return consumer_state(self.joined, bool(self.app.rebalancing))


def install_pages(app: faust.App, resources: Resources) -> GroupState:
    """Register the pages on `app`; returns the group state `/ready` reads."""
    group = GroupState(app)

    @app.page("/health")
    async def health(web: View, request: Request) -> Response:
        report = await resources.health()
        return web.json(report.body(), status=200 if report.healthy else 503)

    @app.page("/ready")
    async def ready(web: View, request: Request) -> Response:
        report = await resources.readiness(group.consumer())
        return web.json(report.body(), status=200 if report.ready else 503)

    @app.page("/metrics")
    async def metrics_page(web: View, request: Request) -> Response:
        return web.bytes(metrics.render(), content_type="text/plain; version=0.0.4")

    return group
