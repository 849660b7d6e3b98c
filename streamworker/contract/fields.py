"""Field-level checks shared by decoding and salvage.

Each check raises one `InvalidEvent` naming the field, and every message quotes user
values cut short: a refusal must not grow with the event that provoked it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from pathlib import PurePosixPath
from typing import Any

from streamworker import jsonbound
from streamworker.budgets import DecodeBudgets
from streamworker.errors import InvalidEvent

SUBMISSION_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def expect(cond: bool, fld: str, message: str, sid: str | None) -> None:
    if not cond:
        raise InvalidEvent(message, field=fld, submission_id=sid)


def cut(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, with an ellipsis when something was cut."""
    return text if len(text) <= limit else text[:limit] + "…"


def echo(value: object, limit: int) -> str:
    """A user value quoted in a message, cut: a message must not grow with the event."""
    if isinstance(value, str):
        return repr(cut(value, limit))
    if value is None or isinstance(value, bool | int | float):
        return cut(repr(value), limit)
    return "an object" if isinstance(value, dict) else "a list"


def over(size: int, limit: int, unit: str = "bytes") -> str:
    return f"is {size} {unit}, above the maximum {limit}"


def utf8(text: str, limit: int, fld: str, sid: str | None) -> bytes:
    """`text` as UTF-8, refused when longer than `limit` bytes."""
    data = text.encode("utf-8")
    expect(len(data) <= limit, fld, over(len(data), limit), sid)
    return data


def relative_path(raw: object, fld: str, sid: str | None, budgets: DecodeBudgets) -> str:
    expect(isinstance(raw, str) and raw != "", fld, "must be a non-empty string", sid)
    assert isinstance(raw, str)
    utf8(raw, budgets.max_path_bytes, fld, sid)
    expect("\x00" not in raw and "\\" not in raw, fld, "must not contain NUL or '\\'", sid)
    path = PurePosixPath(raw)
    expect(not path.is_absolute(), fld, "must be a relative path", sid)
    expect(".." not in path.parts, fld, "must not contain '..'", sid)
    normalised = str(path)
    expect(normalised not in ("", "."), fld, "must name a file", sid)
    return normalised


def b64(raw: object, limit: int, fld: str, sid: str | None) -> bytes:
    """Strict base64 (no whitespace) of at most `limit` bytes, length checked first."""
    expect(isinstance(raw, str), fld, "must be a base64 string", sid)
    assert isinstance(raw, str)
    expect(len(raw) <= 4 * -(-limit // 3), fld, f"decodes to more than {limit} bytes", sid)
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidEvent("is not valid base64", field=fld, submission_id=sid) from exc
    expect(len(data) <= limit, fld, f"decodes to {len(data)} bytes, above the maximum {limit}", sid)
    return data


def metadata_problem(meta: dict[str, Any], budgets: DecodeBudgets) -> str | None:
    """Why `meta` may not be echoed, or None. Shared by decoding and salvage, so invalid
    events echo exactly the metadata a valid one could have carried."""
    depth = jsonbound.depth_of(meta)
    if depth > budgets.max_metadata_depth:
        return f"nests {depth} levels deep, above the maximum {budgets.max_metadata_depth}"
    size = len(json.dumps(meta))  # ASCII-escaped, so characters are bytes
    if size > budgets.max_metadata_bytes:
        return over(size, budgets.max_metadata_bytes)
    return None
