"""Fitting a result event under the Kafka message limit. Pure; no I/O.

A result that the broker refuses is no answer at all, and sending it again fails the
same way. So before a result is published it is cut to fit: only the kept stdout and
stderr of its runs (and of the compile step) shrink, largest first, down to a common
level; the verdict, the figures and the original byte counts never change, and every
cut output is flagged `*_truncated`.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterator

from streamworker.contract import ResultEvent, RunResult

STREAMS = ("stdout", "stderr")
MAX_ROUNDS = 8
"""Each round cuts to a computed level; escapes make sizes approximate, so a few rounds."""
KAFKA_DEFAULT_MESSAGE_BYTES = 1_000_000
"""The smallest of Kafka's defaults (producer `max_request_size`; the broker allows 1 MiB)."""
RECORD_MARGIN_BYTES = 8192
"""Room for the record's key, headers and batch overhead beside the value."""


@dataclasses.dataclass(frozen=True)
class MessageBudget:
    """The largest values the worker may send, read from Kafka at start-up."""

    result_bytes: int
    dead_letter_bytes: int


def budget_for(result_limit_bytes: int, dlq_limit_bytes: int) -> MessageBudget:
    """Budgets under the smallest message limits (topic/broker/producer) of each topic."""
    return MessageBudget(
        result_bytes=max(1024, result_limit_bytes - RECORD_MARGIN_BYTES),
        dead_letter_bytes=max(1024, dlq_limit_bytes - RECORD_MARGIN_BYTES),
    )


DEFAULT_BUDGET = budget_for(KAFKA_DEFAULT_MESSAGE_BYTES, KAFKA_DEFAULT_MESSAGE_BYTES)


def clip(text: str, max_chars: int) -> str:
    """`text` cut to `max_chars` with an ellipsis and the original length (echoes of
    user input must not grow a message without bound)."""
    if len(text) <= max_chars:
        return text
    return f"{text[:max_chars]}… ({len(text)} characters)"


def json_text_len(text: str) -> int:
    """Bytes `text` takes inside our JSON encoding (`ensure_ascii=False`), quotes excluded.

    Measured by the encoder itself (in C): outputs run to megabytes per result.
    """
    return len(json.dumps(text, ensure_ascii=False).encode("utf-8", "surrogatepass")) - 2


def _prefix_within(text: str, budget: int) -> str:
    """The longest prefix of `text` whose JSON encoding takes at most `budget` bytes
    (a binary search: the encoded length grows with the prefix)."""
    if json_text_len(text) <= budget:
        return text
    low, high = 0, min(len(text), max(0, budget))
    while low < high:
        mid = (low + high + 1) // 2
        if json_text_len(text[:mid]) <= budget:
            low = mid
        else:
            high = mid - 1
    return text[:low]


@dataclasses.dataclass(frozen=True)
class _Slot:
    """One output stream of one run (`index` -1 is the compile step)."""

    index: int
    stream: str
    size: int


def _run_of(result: ResultEvent, index: int) -> RunResult:
    if index < 0:
        assert result.compile is not None
        return result.compile
    return result.runs[index]


def _stream_size(run: RunResult, stream: str) -> int:
    b64 = getattr(run, f"{stream}_b64")
    return json_text_len(getattr(run, stream)) + (len(b64) if b64 else 0)


def _slots(result: ResultEvent) -> Iterator[_Slot]:
    indices = ([-1] if result.compile is not None else []) + list(range(len(result.runs)))
    for index in indices:
        run = _run_of(result, index)
        for stream in STREAMS:
            size = _stream_size(run, stream)
            if size:
                yield _Slot(index, stream, size)


def water_level(sizes: list[int], excess: int) -> int:
    """The largest cap C such that cutting every size above C down to C frees at least
    `excess` bytes (0 when even emptying everything is not enough)."""
    ordered = sorted(sizes, reverse=True)
    total = 0
    for k, size in enumerate(ordered, start=1):
        total += size
        following = ordered[k] if k < len(ordered) else 0
        if total - k * following >= excess:
            return max(0, (total - excess) // k)
    return 0


def _cut_stream(run: RunResult, stream: str, budget: int) -> RunResult:
    """`run` with one stream's kept output cut to about `budget` encoded bytes."""
    text: str = getattr(run, stream)
    b64: str | None = getattr(run, f"{stream}_b64")
    if b64 is None:
        kept = _prefix_within(text, budget)
        changes: dict[str, object] = {stream: kept}
    else:
        # Not UTF-8: the bytes are what counts; text (~1-3 bytes a byte) and base64
        # (4 per 3) both follow the byte prefix. Aim at a quarter of the budget each way.
        raw = base64.b64decode(b64)
        keep = max(0, budget // 4)
        part = raw[:keep]
        changes = {
            stream: part.decode("utf-8", "replace"),
            f"{stream}_b64": base64.b64encode(part).decode("ascii"),
        }
    changes[f"{stream}_truncated"] = True
    return dataclasses.replace(run, **changes)  # type: ignore[arg-type]


def _apply(result: ResultEvent, cuts: dict[tuple[int, str], int]) -> ResultEvent:
    runs = list(result.runs)
    compiled = result.compile
    for (index, stream), budget in cuts.items():
        if index < 0:
            assert compiled is not None
            compiled = _cut_stream(compiled, stream, budget)
        else:
            runs[index] = _cut_stream(runs[index], stream, budget)
    return dataclasses.replace(result, runs=tuple(runs), compile=compiled)


def fit_result(result: ResultEvent, max_bytes: int) -> ResultEvent:
    """`result` unchanged when its encoding fits in `max_bytes`, else with outputs cut.

    May still not fit when the parts that are never cut exceed the limit (the caller
    decides what then); it never raises.
    """
    for _ in range(MAX_ROUNDS):
        excess = len(result.encode()) - max_bytes
        if excess <= 0:
            return result
        slots = list(_slots(result))
        if not slots:
            return result
        level = water_level([s.size for s in slots], excess)
        cuts = {(s.index, s.stream): level for s in slots if s.size > level}
        if not cuts:  # the level equals every size: take one more byte from the largest
            top = max(slots, key=lambda s: s.size)
            cuts = {(top.index, top.stream): top.size - 1}
        result = _apply(result, cuts)
    return result
