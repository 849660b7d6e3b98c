"""The audit store's one reversible string escape, so every string is stored losslessly.

PostgreSQL refuses NUL in `text` and `\\u0000` in `jsonb`, and no backend can store a
lone UTF-16 surrogate (it has no UTF-8 form; a JSON pair of them would even be merged
into one character on the way back). Programs print NUL, submissions carry it in their
metadata, so before a string reaches the database (text columns and every string inside
JSON, keys included) three things are rewritten, with U+2400 SYMBOL FOR NULL (`␀`) as
the escape character:

    NUL (U+0000)              →  ␀0
    ␀ (U+2400) itself         →  ␀␀
    a surrogate U+D800..DFFF  →  ␀u + 4 lowercase hex digits (e.g. ␀ud800)

Everything else is stored as is, so SQL users see ordinary text; a string holding none
of the three is unchanged. Reading reverses it; a `␀` not followed by `0`, `␀` or a
surrogate's `u` code (never written by `escape_text`) is left alone. docs/audit.md
describes the scheme for SQL users.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

ESCAPE = "\u2400"
_NEEDS_ESCAPE = re.compile("[\x00\u2400\ud800-\udfff]")
_ESCAPED = re.compile("\u2400(?:(0)|(\u2400)|u(d[89a-f][0-9a-f]{2}))")


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\x00":
        return ESCAPE + "0"
    if char == ESCAPE:
        return ESCAPE + ESCAPE
    return f"{ESCAPE}u{ord(char):04x}"


def _unescape_sequence(match: re.Match[str]) -> str:
    nul, escape, surrogate = match.groups()
    if nul is not None:
        return "\x00"
    if escape is not None:
        return ESCAPE
    return chr(int(surrogate, 16))


def escape_text(text: str) -> str:
    """`text` as stored: without NUL or surrogates, `␀` doubled (see the module doc)."""
    if _NEEDS_ESCAPE.search(text) is None:
        return text
    return _NEEDS_ESCAPE.sub(_escape_char, text)


def unescape_text(text: str) -> str:
    """The inverse of `escape_text`."""
    if ESCAPE not in text:
        return text
    return _ESCAPED.sub(_unescape_sequence, text)


def escape_json(value: Any) -> Any:
    """A copy of the JSON-like `value` with every string (keys included) escaped."""
    if isinstance(value, str):
        return escape_text(value)
    if isinstance(value, Mapping):
        return {
            escape_text(k) if isinstance(k, str) else k: escape_json(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [escape_json(item) for item in value]
    return value


def unescape_json(value: Any) -> Any:
    """The inverse of `escape_json` (tuples come back as lists, as from any JSON column)."""
    if isinstance(value, str):
        return unescape_text(value)
    if isinstance(value, Mapping):
        return {
            unescape_text(k) if isinstance(k, str) else k: unescape_json(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [unescape_json(item) for item in value]
    return value
