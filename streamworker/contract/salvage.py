"""Best-effort reading of events that failed validation (never raises).

A refusal still names its submission and echoes its metadata when those parts are
readable, so the producer can match the answer to what it sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from streamworker import jsonbound
from streamworker.budgets import BUDGETS, DecodeBudgets
from streamworker.contract.fields import SUBMISSION_ID_RE, metadata_problem


def salvage_object(data: bytes, budgets: DecodeBudgets, numbers: Mapping[str, Any]) -> Any:
    """The event's JSON value with anything nested below `max_depth` cut to null.

    Salvage runs on events that already failed, so it must be bounded like decoding yet
    still read the shallow fields of an event that failed for being too deep.
    """
    if len(data) > budgets.max_event_bytes:
        return None
    shallow = jsonbound.elide_deeper(
        data.decode("utf-8"), keep_depth=budgets.max_depth, max_tokens=budgets.max_json_tokens
    )
    return json.loads(shallow, **numbers)


def salvage_submission_id(data: bytes, budgets: DecodeBudgets = BUDGETS) -> str | None:
    """Best effort: the submission id of an event that failed validation, if readable.

    Never raises: it runs on arbitrary bytes, and a failure here must not turn one bad
    event into a stalled partition.
    """
    try:
        obj = salvage_object(data, budgets, jsonbound.LENIENT_NUMBERS)
        sid = obj.get("submission_id") if isinstance(obj, dict) else None
        if isinstance(sid, str) and SUBMISSION_ID_RE.fullmatch(sid):
            return sid
    except Exception:  # whatever the bytes provoke, the answer is "unreadable"
        return None
    return None


def salvage_metadata(data: bytes, budgets: DecodeBudgets = BUDGETS) -> dict[str, Any]:
    """Best effort: the metadata of an invalid event, echoed only when it is valid itself.

    Never raises, like `salvage_submission_id`.
    """
    try:
        numbers = jsonbound.number_hooks(budgets.max_number_chars)
        obj = salvage_object(data, budgets, numbers)
        meta = obj.get("metadata") if isinstance(obj, dict) else None
        if isinstance(meta, dict) and metadata_problem(meta, budgets) is None:
            json.dumps(meta, ensure_ascii=False).encode("utf-8")  # no lone surrogates
            return meta
    except Exception:  # as above: garbage in, nothing echoed
        return {}
    return {}
