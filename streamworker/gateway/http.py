"""Small HTTP helpers shared by the gateway's routes: bounded bodies, Judge0's query
booleans, early answers, and who the caller is."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from streamworker.gateway.tenants import Tenant


class HttpError(Exception):
    """An answer decided early (status, JSON body or none); the app renders it once."""

    def __init__(
        self, status: int, body: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body
        self.headers = headers or {}

    def response(self) -> Response:
        if self.body is None:
            return Response(status_code=self.status, headers=self.headers)
        return JSONResponse(self.body, status_code=self.status, headers=self.headers)


@dataclass(frozen=True)
class Caller:
    tenant: str
    limits: Tenant


async def json_body(request: Request, max_bytes: int) -> Any:
    """The body parsed as JSON, refused past `max_bytes` before it is all read."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise HttpError(413, {"error": f"request body is over {max_bytes} bytes"})
    size, chunks = 0, []
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise HttpError(413, {"error": f"request body is over {max_bytes} bytes"})
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise HttpError(400, {"error": f"request body is not valid JSON: {exc}"}) from exc


def flag(request: Request, name: str, default: bool = False) -> bool:
    """Rails' query booleans: `true`/`1`/`yes` and friends."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    return raw.strip().lower() in ("true", "1", "yes", "on", "t")
