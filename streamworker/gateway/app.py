"""The gateway's ASGI app: Judge0 CE 1.13.1 and Piston v2 over the Kafka pipeline.

FastAPI (on Starlette) because it is well kept, serves OpenAPI docs (`/docs`,
`/openapi.json`) for free, and lets each route answer Judge0's exact shapes. Trailing
slashes are routes of their own, never redirects (a 307 breaks POST clients). The app
holds no Docker access and no state a second replica would need: tokens are in SQL and
every replica reads every result."""

from __future__ import annotations

import contextlib
import os
import platform
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from streamworker import __version__, metrics
from streamworker.gateway import judge0_data, judge0_routes, piston
from streamworker.gateway.callback_agent import CallbackAgent
from streamworker.gateway.callbacks import callback_policy_from_env
from streamworker.gateway.context import Gateway
from streamworker.gateway.http import HttpError, json_body
from streamworker.gateway.ratelimit import RateLimiter
from streamworker.gateway.results import ResultsHub
from streamworker.gateway.store import GatewayStore
from streamworker.gateway.submitter import QueueFull, Refused, Submitter
from streamworker.gateway.tenants import load_tenants
from streamworker.settings import Settings


def create_app(settings: Settings, env: Mapping[str, str]) -> FastAPI:
    """The app. `env` holds the tenant and callback settings (they are secrets, read at
    the edge like the rest). Nothing connects before the lifespan starts."""
    gw = _build(settings, env)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        agent = CallbackAgent(settings, gw.store, gw.callbacks) if gw.callbacks else None
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(gw.store.close)
            await gw.hub.start()
            stack.push_async_callback(gw.hub.stop)
            await gw.submitter.start()
            stack.push_async_callback(gw.submitter.stop)
            if agent is not None:
                await agent.start()
                stack.push_async_callback(agent.stop)
            yield

    app = FastAPI(
        title="streamworker gateway",
        version=__version__,
        description="Judge0 CE 1.13.1 and Piston v2 compatible API over streamworker's Kafka "
        "pipeline (docs/gateway.md).",
        lifespan=lifespan,
        redirect_slashes=False,
    )

    @app.middleware("http")
    async def measure_and_label(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """Rate-limit headers on every answer; request counts and times by API."""
        began = time.perf_counter()
        response = await call_next(request)
        for key, value in getattr(request.state, "ratelimit", {}).items():
            response.headers.setdefault(key, value)
        api = _api_of(request.url.path)
        metrics.GATEWAY_REQUESTS.labels(api, str(response.status_code)).inc()
        metrics.GATEWAY_REQUEST_SECONDS.labels(api).observe(time.perf_counter() - began)
        metrics.GATEWAY_IN_FLIGHT.set(gw.submitter.in_flight)
        return response

    @app.exception_handler(HttpError)
    async def http_error(request: Request, exc: HttpError) -> Response:
        return exc.response()

    @app.exception_handler(QueueFull)
    async def queue_full(request: Request, exc: QueueFull) -> Response:
        return JSONResponse({"error": "queue is full"}, status_code=503)

    router = APIRouter()
    judge0_routes.register(router, gw)
    _register_info(router, gw)
    _register_piston(router, gw)
    app.include_router(router)
    return app


def _api_of(path: str) -> str:
    """A bounded label: never the path itself (tokens would make a series each)."""
    if path.startswith("/api/v2/"):
        return "piston"
    if path.startswith(("/submissions", "/languages", "/statuses", "/about", "/config_info")):
        return "judge0"
    return "other"


def _build(settings: Settings, env: Mapping[str, str]) -> Gateway:
    hub = ResultsHub(settings)
    tenants = load_tenants(env)
    return Gateway(
        settings=settings,
        store=GatewayStore.open(settings.resolved_database_url()),
        hub=hub,
        submitter=Submitter(settings, hub),
        tenants=tenants,
        limiter=RateLimiter(tenants.tenants),
        callbacks=callback_policy_from_env(env),
    )


def _both(router: APIRouter, path: str, endpoint: Any, methods: list[str]) -> None:
    router.add_api_route(path, endpoint, methods=methods)
    router.add_api_route(path + "/", endpoint, methods=methods, include_in_schema=False)


def _register_info(router: APIRouter, gw: Gateway) -> None:
    async def languages(request: Request) -> Response:
        gw.authenticate(request)
        return JSONResponse(judge0_data.languages())

    async def languages_all(request: Request) -> Response:
        gw.authenticate(request)
        return JSONResponse([{**lang, "is_archived": False} for lang in judge0_data.languages()])

    async def language(request: Request, language_id: str) -> Response:
        gw.authenticate(request)
        lang = judge0_data.language_ids().get(int(language_id)) if language_id.isdigit() else None
        if lang is None:
            raise HttpError(404, {"error": f"language with id {language_id} doesn't exist"})
        return JSONResponse(judge0_data.language_detail(lang, int(language_id)))

    async def statuses(request: Request) -> Response:
        gw.authenticate(request)
        return JSONResponse([{"id": i, "description": d} for i, d in judge0_data.STATUSES])

    async def about(request: Request) -> Response:
        gw.authenticate(request)
        return JSONResponse(judge0_data.about())

    async def config_info(request: Request) -> Response:
        gw.authenticate(request)
        return JSONResponse(judge0_data.config_info(gw.settings, gw.settings.gateway.max_in_flight))

    async def system_info(request: Request) -> Response:
        gw.authenticate(request)
        return JSONResponse(
            {
                "Architecture": platform.machine(),
                "CPU(s)": str(os.cpu_count() or 0),
                "Model name": platform.processor() or platform.machine(),
                "Kernel": platform.release(),
            }
        )

    async def workers(request: Request) -> Response:
        gw.authenticate(request)
        waiting = gw.submitter.in_flight
        return JSONResponse(
            [
                {
                    "queue": gw.settings.topics.submissions,
                    "size": waiting,
                    "available": 1,
                    "idle": 0 if waiting else 1,
                    "working": 1 if waiting else 0,
                    "paused": 0,
                    "failed": 0,
                }
            ]
        )

    async def statistics(request: Request) -> Response:
        gw.authenticate(request)
        return JSONResponse(await gw.store.statistics())

    async def version(request: Request) -> Response:
        return PlainTextResponse(judge0_data.COMPAT_VERSION)

    async def health(request: Request) -> Response:
        ok = gw.hub.running
        return JSONResponse(
            {"status": "ok" if ok else "unhealthy", "in_flight": gw.submitter.in_flight},
            status_code=200 if ok else 503,
        )

    async def metrics_page(request: Request) -> Response:
        return Response(metrics.render_gateway(), media_type=CONTENT_TYPE_LATEST)

    _both(router, "/languages", languages, ["GET"])
    _both(router, "/languages/all", languages_all, ["GET"])
    _both(router, "/languages/{language_id}", language, ["GET"])
    _both(router, "/statuses", statuses, ["GET"])
    _both(router, "/about", about, ["GET"])
    _both(router, "/config_info", config_info, ["GET"])
    _both(router, "/system_info", system_info, ["GET"])
    _both(router, "/workers", workers, ["GET"])
    _both(router, "/statistics", statistics, ["GET"])
    _both(router, "/version", version, ["GET"])
    _both(router, "/health", health, ["GET"])
    router.add_api_route("/metrics", metrics_page, methods=["GET"])


def _register_piston(router: APIRouter, gw: Gateway) -> None:
    async def runtimes(request: Request) -> Response:
        gw.authenticate(request)
        return JSONResponse(piston.runtimes())

    async def execute(request: Request) -> Response:
        caller = gw.authenticate(request)
        if "json" not in request.headers.get("content-type", "application/json"):
            raise HttpError(415, {"message": "request body must be application/json"})
        body = await json_body(request, gw.settings.gateway.max_body_bytes)
        gw.limit(request, caller, "submission")
        submission_id = str(uuid.uuid4())
        try:
            lang, event = piston.execute_event(body, submission_id, gw.settings)
        except piston.PistonInvalid as exc:
            raise HttpError(400, {"message": str(exc)}) from exc
        event["metadata"]["piston"]["tenant"] = caller.tenant
        try:
            gw.submitter.check([event])
        except Refused as exc:
            raise HttpError(400, {"message": str(exc)}) from exc
        gw.submitter.reserve(1, caller.limits)
        future = gw.hub.register(submission_id)
        try:
            await gw.submitter.produce([event], caller.tenant)
        except Exception as exc:
            gw.hub.forget(submission_id, future)
            raise HttpError(503, {"message": str(exc)}) from exc
        result = await gw.submitter.wait(future, submission_id, gw.settings.gateway.max_wait_s)
        if result is None:
            raise HttpError(
                504,
                {
                    "message": f"no result within {gw.settings.gateway.max_wait_s:g}s "
                    f"(submission {submission_id} is still queued)"
                },
            )
        return JSONResponse(piston.execute_response(lang, result))

    router.add_api_route("/api/v2/runtimes", runtimes, methods=["GET"])
    router.add_api_route("/api/v2/execute", execute, methods=["POST"])
    router.add_api_route(
        "/api/v2/piston/runtimes", runtimes, methods=["GET"], include_in_schema=False
    )
    router.add_api_route(
        "/api/v2/piston/execute", execute, methods=["POST"], include_in_schema=False
    )
