"""JSON parsing within budgets, for text nobody vouches for.

`json.loads` recurses once per nesting level, builds an object for every value and
parses integers in time quadratic in their digits: a hostile event could raise
`RecursionError`, use a lot of memory or stall its partition. So one linear pass over
the text first (string contents are skipped by a possessive regex, so it never
backtracks) counts nesting and tokens, and refuses what is over budget before the
parser runs; hooks refuse over-long number literals while it runs. A failure is always
a `ValueError`; a `BudgetExceeded` one reads after the word "value" ("nests deeper …").
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

# A whole string (escapes consumed pairwise), a structural character, or a quote that
# opens a string never closed: the last alternative ends the scan (the text is not
# JSON), which keeps a run of escaped quotes from being rescanned once per quote.
_TOKEN = re.compile(r'"(?:[^"\\]++|\\.)*+"|[\[\]{},]|"', re.DOTALL)


class BudgetExceeded(ValueError):
    """The text is over one of its budgets (too deep, too many tokens)."""


class TooDeep(BudgetExceeded):
    """Nested deeper than the depth budget."""


class TooManyTokens(BudgetExceeded):
    """More strings, brackets and commas than the token budget."""


def _too_many(max_tokens: int) -> TooManyTokens:
    return TooManyTokens(f"has more than {max_tokens} JSON strings, brackets and commas")


def check_shape(text: str, *, max_depth: int, max_tokens: int) -> None:
    """Raise unless `text` nests at most `max_depth` deep and has at most `max_tokens`.

    Stops at the first point where the text is certainly not JSON (a closing bracket
    too many, a string never closed): the parser fails there too, before any deeper
    nesting, so what was scanned is all it will ever see.
    """
    depth = 0
    for tokens, match in enumerate(_TOKEN.finditer(text), 1):
        if tokens > max_tokens:
            raise _too_many(max_tokens)
        start = match.start()
        char = text[start]
        if char in "[{":
            depth += 1
            if depth > max_depth:
                raise TooDeep(f"nests deeper than {max_depth} levels")
        elif char in "]}":
            depth -= 1
            if depth < 0:
                return
        elif char == '"' and match.end() - start == 1:
            return


def elide_deeper(text: str, *, keep_depth: int, max_tokens: int) -> str:
    """`text` with every container opened below `keep_depth` levels replaced by `null`.

    For salvaging the shallow fields of an event that is too deep to decode: the result
    parses without deep recursion, and its shallow part is still checked by the parser.
    Raises `ValueError` when a cut container is never closed.
    """
    pieces: list[str] = []
    last = depth = 0
    for tokens, match in enumerate(_TOKEN.finditer(text), 1):
        if tokens > max_tokens:
            raise _too_many(max_tokens)
        start = match.start()
        char = text[start]
        if char in "[{":
            depth += 1
            if depth == keep_depth + 1:
                pieces.append(text[last:start])
        elif char in "]}":
            if depth == keep_depth + 1:
                pieces.append("null")
                last = match.end()
            depth -= 1
            if depth < 0:
                break
        elif char == '"' and match.end() - start == 1:
            break
    if depth > keep_depth:
        raise ValueError("value is not JSON: a container is never closed")
    if not pieces:
        return text
    pieces.append(text[last:])
    return "".join(pieces)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def number_hooks(max_chars: int) -> dict[str, Any]:
    """`json.loads` keyword arguments: finite numbers of at most `max_chars` characters."""

    def checked(literal: str) -> str:
        if len(literal) > max_chars:
            raise ValueError(f"number {literal[:20]}… is longer than {max_chars} characters")
        return literal

    def parse_int(literal: str) -> int:
        return int(checked(literal))

    def parse_float(literal: str) -> float:
        value = float(checked(literal))
        if not math.isfinite(value):
            raise ValueError(f"number {literal[:20]} is out of range")
        return value

    return {"parse_int": parse_int, "parse_float": parse_float, "parse_constant": _reject_constant}


def _any_number(literal: str) -> float:
    return 0.0


LENIENT_NUMBERS: dict[str, Any] = {
    "parse_int": _any_number,
    "parse_float": _any_number,
    "parse_constant": _any_number,
}
"""`json.loads` keyword arguments that accept any number (even `NaN`, or 10,000 digits)
in linear time, reading each as 0.0: for salvaging fields that are not numbers. (Not
`str`: a number must never pass for a string, such as a submission id.)"""


def loads(text: str, *, max_depth: int, max_tokens: int, max_number_chars: int) -> Any:
    """`json.loads` after `check_shape`, with finite, length-bounded numbers only."""
    check_shape(text, max_depth=max_depth, max_tokens=max_tokens)
    return json.loads(text, **number_hooks(max_number_chars))


def depth_of(value: object) -> int:
    """How deeply a decoded value nests (a scalar is 0, `{}` and `[]` are 1), iteratively."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest
