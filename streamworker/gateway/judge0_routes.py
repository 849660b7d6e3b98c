"""Judge0 CE 1.13.1's submission routes over the pipeline: POST/GET one, batch, DELETE.

A POST stores the token first (so a GET on any replica right after says "In Queue"),
then produces; `wait=true` registers its waiter before producing and answers from the
results topic, bounded by `max_wait_s`."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from streamworker.gateway.context import Gateway
from streamworker.gateway.http import Caller, HttpError, flag, json_body
from streamworker.gateway.judge0_data import MAX_BATCH
from streamworker.gateway.judge0_render import (
    InvalidFields,
    NotUtf8,
    View,
    parse_fields,
    render,
)
from streamworker.gateway.judge0_request import (
    Judge0Invalid,
    Judge0Request,
    parse_request,
    submission_event,
)
from streamworker.gateway.store import IdempotencyConflict, Token
from streamworker.gateway.submitter import ProduceFailed, QueueFull, Refused

BATCH_UTF8_ERROR = (
    "some attributes for one or more submissions cannot be converted to UTF-8, "
    "use base64_encoded=true query parameter"
)


def _fields(request: Request) -> tuple[str, ...]:
    try:
        return parse_fields(request.query_params.get("fields"))
    except InvalidFields as exc:
        raise HttpError(400, {"error": str(exc)}) from exc


def _metadata(token: str, tenant: str, req: Judge0Request) -> dict[str, Any]:
    judge0: dict[str, Any] = {"token": token, "tenant": tenant, "language_id": req.language_id}
    if req.callback_url:
        judge0["callback"] = True  # the callback agent reads only these results' tokens
    return {"judge0": judge0}


def _callbacks_allowed(gw: Gateway, requests: Sequence[Judge0Request]) -> None:
    if gw.callbacks is None and any(r.callback_url for r in requests):
        raise HttpError(
            422, {"callback_url": ["callbacks are not enabled on this server (no signing key)"]}
        )


def _check(gw: Gateway, events: Sequence[Mapping[str, Any]]) -> None:
    """What the worker would refuse is a 422 here, in Judge0's shape."""
    try:
        gw.submitter.check(events)
    except Refused as exc:
        raise HttpError(422, {exc.field: [exc.message]}) from exc


async def _store(
    gw: Gateway, caller: Caller, tokens: Sequence[Token], events: Sequence[Mapping[str, Any]]
) -> None:
    """Store the tokens, then produce; a failed produce takes the tokens back."""
    gw.submitter.reserve(len(events), caller.limits)
    await gw.store.add(tokens)
    try:
        await gw.submitter.produce(events, caller.tenant)
    except ProduceFailed as exc:
        await gw.store.remove([t.token for t in tokens])
        raise HttpError(503, {"error": str(exc)}) from exc


async def _view(gw: Gateway, token: Token) -> View:
    result = gw.hub.cached(token.submission_id)
    started = False
    if result is None:
        state = (await gw.store.states([token.submission_id])).get(token.submission_id)
        if state is not None:
            started, result = state.started, state.result
    return View(
        token=token.token,
        tenant=token.tenant,
        created_at=token.created_at,
        request=token.request,
        case_index=token.case_index,
        started=started or result is not None,
        result=result,
    )


class Judge0Routes:
    """Judge0's submission routes, bound to one `Gateway`."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    async def create(self, request: Request) -> Response:
        caller = self.gw.authenticate(request)
        encoded, wait = flag(request, "base64_encoded"), flag(request, "wait")
        fields = _fields(request)
        body = await json_body(request, self.gw.settings.gateway.max_body_bytes)
        self.gw.limit(request, caller, "submission")
        try:
            req = parse_request(body, encoded, self.gw.settings)
        except Judge0Invalid as exc:
            raise HttpError(422, exc.errors) from exc
        _callbacks_allowed(self.gw, [req])
        token_id = str(uuid.uuid4())
        token = Token(
            token=token_id,
            tenant=caller.tenant,
            submission_id=token_id,
            case_index=None,
            api="judge0",
            created_at=datetime.now(UTC),
            request=req.echo(),
            idempotency_key=request.headers.get("idempotency-key"),
        )
        event = submission_event(req, token_id, _metadata(token_id, caller.tenant, req))
        _check(self.gw, [event])
        future = self.gw.hub.register(token_id) if wait else None
        try:
            await _store(self.gw, caller, [token], [event])
        except IdempotencyConflict as exc:
            if future is not None:
                self.gw.hub.forget(token_id, future)
            return JSONResponse({"token": exc.existing[0].token}, status_code=201)
        except (QueueFull, HttpError):
            if future is not None:
                self.gw.hub.forget(token_id, future)
            raise
        if future is None:
            return JSONResponse({"token": token_id}, status_code=201)
        result = await self.gw.submitter.wait(future, token_id, self.gw.settings.gateway.max_wait_s)
        view = View(token_id, caller.tenant, token.created_at, token.request, None, True, result)
        try:
            return JSONResponse(render(view, fields, encoded), status_code=201)
        except NotUtf8 as exc:
            return JSONResponse({"token": token_id, "error": str(exc)}, status_code=201)

    async def show(self, request: Request, token: str) -> Response:
        caller = self.gw.authenticate(request)
        encoded, fields = flag(request, "base64_encoded"), _fields(request)
        self.gw.limit(request, caller, "read")
        found = (await self.gw.store.get([token])).get(token)
        if found is None or found.tenant != caller.tenant:
            raise HttpError(404, {"error": "submission not found"})
        try:
            return JSONResponse(render(await _view(self.gw, found), fields, encoded))
        except NotUtf8 as exc:
            raise HttpError(400, {"error": str(exc)}) from exc

    async def create_batch(self, request: Request) -> Response:
        caller = self.gw.authenticate(request)
        encoded = flag(request, "base64_encoded")
        body = await json_body(request, self.gw.settings.gateway.max_body_bytes)
        items = body.get("submissions") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            raise HttpError(400, {"error": "there should be at least one submission in a batch"})
        if len(items) > MAX_BATCH:
            raise HttpError(
                400,
                {
                    "error": "number of submissions in a batch should be less than or equal "
                    f"to {MAX_BATCH}"
                },
            )
        answers: list[dict[str, Any]] = []
        valid: list[tuple[int, Judge0Request]] = []
        for index, item in enumerate(items):
            try:
                req = parse_request(item, encoded, self.gw.settings)
                _callbacks_allowed(self.gw, [req])
                _check(self.gw, [submission_event(req, str(uuid.uuid4()), {})])
                valid.append((index, req))
                answers.append({})
            except Judge0Invalid as exc:
                answers.append(exc.errors)
            except HttpError as exc:
                answers.append(exc.body)
        if not valid:
            return JSONResponse(answers, status_code=422)
        self.gw.limit(request, caller, "submission", len(valid))
        tokens, events = fuse(valid, caller.tenant)
        _check(self.gw, events)
        for token in tokens:
            answers[token.request["batch_index"]] = {"token": token.token}
        await _store(self.gw, caller, tokens, events)
        return JSONResponse(answers, status_code=201)

    async def show_batch(self, request: Request) -> Response:
        caller = self.gw.authenticate(request)
        encoded, fields = flag(request, "base64_encoded"), _fields(request)
        raw = request.query_params.get("tokens") or request.headers.get("tokens") or ""
        wanted = [t.strip() for t in raw.split(",") if t.strip()][: MAX_BATCH * 5]
        self.gw.limit(request, caller, "read", max(1, len(wanted)))
        found = await self.gw.store.get(wanted)
        out: list[dict[str, Any] | None] = []
        try:
            for token in wanted:
                row = found.get(token)
                if row is None or row.tenant != caller.tenant:
                    out.append(None)
                else:
                    out.append(render(await _view(self.gw, row), fields, encoded))
        except NotUtf8 as exc:
            raise HttpError(400, {"error": BATCH_UTF8_ERROR}) from exc
        return JSONResponse({"submissions": out})

    async def delete(self, request: Request, token: str) -> Response:
        self.gw.authenticate(request)
        raise HttpError(400, {"error": "delete not allowed"})


def register(router: APIRouter, gw: Gateway) -> None:
    """Add Judge0's submission routes (each with and without a trailing slash)."""
    routes = Judge0Routes(gw)
    for path in ("/submissions", "/submissions/"):
        router.add_api_route(path, routes.create, methods=["POST"], status_code=201)
    for path in ("/submissions/batch", "/submissions/batch/"):
        router.add_api_route(path, routes.create_batch, methods=["POST"], status_code=201)
        router.add_api_route(path, routes.show_batch, methods=["GET"])
    for path in ("/submissions/{token}", "/submissions/{token}/"):
        router.add_api_route(path, routes.show, methods=["GET"])
        router.add_api_route(path, routes.delete, methods=["DELETE"])


def _fusion_key(req: Judge0Request) -> tuple[Any, ...] | None:
    """Items equal in all but stdin/expected output share one compile (None: never fused)."""
    if req.number_of_runs > 1 or req.callback_url is not None:
        return None
    return (
        req.language.id,
        req.source_code,
        tuple(sorted(req.numbers.items())),
        tuple(sorted(req.flags.items())),
        req.command_line_arguments,
    )


def fuse(
    valid: Sequence[tuple[int, Judge0Request]], tenant: str
) -> tuple[list[Token], list[dict[str, Any]]]:
    """Tokens (one per item, in order) and the fewest submission events that answer them:
    items equal but for their input become one submission with test cases."""
    groups: dict[Any, list[tuple[int, Judge0Request]]] = {}
    for index, req in valid:
        key = _fusion_key(req)
        groups.setdefault(key if key is not None else ("alone", index), []).append((index, req))
    now = datetime.now(UTC)
    tokens: list[Token] = []
    events: list[dict[str, Any]] = []
    for members in groups.values():
        submission_id = str(uuid.uuid4())
        fused = len(members) > 1
        member_tokens = [submission_id if not fused else str(uuid.uuid4()) for _ in members]
        for position, ((index, req), token_id) in enumerate(
            zip(members, member_tokens, strict=True)
        ):
            tokens.append(
                Token(
                    token=token_id,
                    tenant=tenant,
                    submission_id=submission_id,
                    case_index=position if fused else None,
                    api="judge0",
                    created_at=now,
                    request={**req.echo(), "batch_index": index},
                )
            )
        first = members[0][1]
        event = submission_event(first, submission_id, _metadata(submission_id, tenant, first))
        if fused:
            for name in ("stdin", "stdin_b64", "expected_output"):
                event.pop(name, None)
            event["test_cases"] = [
                _case(req, position) for position, (_, req) in enumerate(members)
            ]
            event["metadata"]["judge0"]["tokens"] = member_tokens
        events.append(event)
    tokens.sort(key=lambda t: int(t.request["batch_index"]))
    return tokens, events


def _case(req: Judge0Request, position: int) -> dict[str, Any]:
    single = submission_event(req, "case", {})
    case: dict[str, Any] = {"id": str(position + 1)}
    for key in ("stdin", "stdin_b64", "expected_output"):
        if key in single:
            case[key] = single[key]
    return case
