"""The store's string escape: lossless, storable anywhere, and invisible for plain text."""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import example, find, given
from hypothesis import strategies as st
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import create_async_engine

from streamworker.audit.escape import (
    ESCAPE,
    escape_json,
    escape_text,
    unescape_json,
    unescape_text,
)
from streamworker.audit.models import SafeJSON, SafeString, SafeText
from streamworker.audit.quarantine import record_from_json, record_json
from streamworker.audit.records import AuditKind, AuditRecord, fact_event_id

# The dialects the store runs on (engines connect lazily: nothing is contacted).
PG = create_async_engine("postgresql+asyncpg://u@localhost/db").dialect
SQLITE = create_async_engine("sqlite+aiosqlite://").dialect

# Every code point, surrogates included, with the troublemakers made frequent.
ANY_CHAR = st.one_of(
    st.characters(exclude_categories=()),
    st.sampled_from(["\x00", ESCAPE, "0", "u", "d", "8", "\ud800", "\udfff", "\ud83d", "\ude00"]),
)
ANY_TEXT = st.text(ANY_CHAR)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=20,
)


def storable(text: str) -> bool:
    """What PostgreSQL's text and jsonb accept: valid UTF-8 without NUL."""
    text.encode("utf-8")  # raises on any surrogate
    return "\x00" not in text


def test_surrogates_are_generated() -> None:
    # Guards the property tests below: the open alphabet must reach the surrogates too.
    found = find(st.characters(exclude_categories=()), lambda c: "\ud800" <= c <= "\udfff")
    assert "\ud800" <= found <= "\udfff"


@given(ANY_TEXT)
@example("\x00")
@example(ESCAPE + "0")
@example(ESCAPE)
@example("\ud83d\ude00")
@example(ESCAPE + "ud800")
def test_text_round_trips_and_is_storable(text: str) -> None:
    escaped = escape_text(text)
    assert storable(escaped)
    assert unescape_text(escaped) == text


@given(st.text(st.characters(exclude_categories=["Cs"], exclude_characters=["\x00", ESCAPE])))
def test_text_without_nul_or_escape_is_unchanged(text: str) -> None:
    assert escape_text(text) == text
    assert unescape_text(text) == text


@given(ANY_TEXT, ANY_TEXT)
def test_escaping_is_injective(a: str, b: str) -> None:
    if a != b:
        assert escape_text(a) != escape_text(b)


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("a\x00b", "a␀0b"),
        ("␀", "␀␀"),
        ("␀0", "␀␀0"),
        ("\ud800x", "␀ud800x"),
        ("\ud83d\ude00", "␀ud83d␀ude00"),  # two code points, not the emoji they would pair to
        ("😀 é ␁", "😀 é ␁"),
    ],
)
def test_the_documented_scheme(raw: str, stored: str) -> None:
    assert escape_text(raw) == stored
    assert unescape_text(stored) == raw


@pytest.mark.parametrize("foreign", ["␀", "␀x", "a␀", "␀u12", "␀ud7ff", "␀uD800"])
def test_unescaping_leaves_sequences_it_never_writes_alone(foreign: str) -> None:
    assert unescape_text(foreign) == foreign


@given(JSON_VALUES)
def test_json_round_trips_through_a_json_document(value: Any) -> None:
    escaped = escape_json(value)
    text = json.dumps(escaped, ensure_ascii=False)
    assert storable(text)
    assert "\\u0000" not in json.dumps(escaped)  # what jsonb refuses, as SQLAlchemy sends it
    assert unescape_json(json.loads(text)) == value


def test_json_keys_are_escaped() -> None:
    assert escape_json({"k\x00": ["v\x00", 1, None]}) == {"k␀0": ["v␀0", 1, None]}


@given(ANY_TEXT, JSON_VALUES)
def test_column_types_escape_on_bind_and_restore_on_read(text: str, value: Any) -> None:
    for dialect in (PG, SQLITE):
        for column_type in (SafeText(), SafeString(32)):
            bound = column_type.process_bind_param(text, dialect)
            assert bound is not None and storable(bound)
            assert column_type.process_result_value(bound, dialect) == text
        document = SafeJSON()
        stored = document.process_bind_param(value, dialect)
        assert document.process_result_value(stored, dialect) == value
    assert SafeText().process_bind_param(None, SQLITE) is None


def test_json_column_is_jsonb_on_postgresql() -> None:
    assert isinstance(SafeJSON().load_dialect_impl(PG), JSONB)
    assert not isinstance(SafeJSON().load_dialect_impl(SQLITE), JSONB)


@given(ANY_TEXT, ANY_TEXT, JSON_VALUES)
def test_quarantined_record_round_trips(sid: str, worker: str, value: Any) -> None:
    record = AuditRecord(
        event_id="e" + sid,
        submission_id="s" + sid,
        kind=AuditKind.FINISHED,
        attempt=3,
        worker_id=worker,
        occurred_at=datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=2))),
        payload={"stdout": sid, worker: value, "nested": {"nan": float("nan")}},
    )
    text = record_json(record)
    assert storable(text)
    back = record_from_json(text)
    assert math.isnan(back.payload["nested"]["nan"])
    assert back == AuditRecord(
        **{**record.__dict__, "payload": {**record.payload, "nested": back.payload["nested"]}}
    )
    assert back.occurred_at == record.occurred_at.astimezone(UTC)


def test_unreadable_quarantined_record_raises() -> None:
    with pytest.raises((ValueError, KeyError, TypeError)):
        record_from_json('{"event_id": "e"}')
    with pytest.raises(TypeError):
        record_from_json(
            json.dumps(
                {
                    "event_id": "e",
                    "submission_id": "s",
                    "kind": "finished",
                    "attempt": 1,
                    "worker_id": "w",
                    "occurred_at": "2024-01-01T00:00:00+00:00",
                    "payload": [],
                }
            )
        )


@given(st.text(st.characters(exclude_categories=["Cs"])), st.integers(0, 99))
def test_event_ids_are_unchanged_for_valid_text(sid: str, attempt: int) -> None:
    name = f"{sid}\x00{AuditKind.STARTED.value}\x00{attempt}"
    expected = str(uuid.uuid5(uuid.UUID("4f0b7e55-6a4e-4c0e-9a8e-5d3c2b1a0f99"), name))
    assert fact_event_id(sid, AuditKind.STARTED, attempt) == expected


def test_event_ids_of_a_submission_id_with_surrogates() -> None:
    ids = {fact_event_id(sid, AuditKind.RECEIVED, 1) for sid in ("\ud800", "\udc00", "␀ud800")}
    assert len(ids) == 3
