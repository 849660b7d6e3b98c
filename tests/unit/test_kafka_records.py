"""A record whose header key is not UTF-8 is read (key replaced), not a partition stall."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy

from streamworker.worker.kafka_records import LenientMemoryRecords

GZIP = 1


class NotUtf8Key(str):
    """A header key that aiokafka's builder writes as raw non-UTF-8 bytes."""

    def encode(self, *args: Any, **kwargs: Any) -> bytes:
        return b"\xff\xfe"


def batch(base_offset: int, compression: int, bad_at: int | None) -> bytes:
    builder = _DefaultRecordBatchBuilderPy(2, compression, 0, -1, -1, -1, 1 << 20)
    for delta in range(3):
        headers: list[tuple[str, bytes | None]] = [("ok", b"1")]
        if delta == bad_at:
            headers = [(NotUtf8Key("k"), b"v")]
        builder.append(delta, 1000, b"key", f"v{base_offset + delta}".encode(), headers)
    raw = bytearray(builder.build())
    raw[0:8] = base_offset.to_bytes(8, "big", signed=True)
    return bytes(raw)


def read_all(raw: bytes) -> list[tuple[int, bytes, list[Any]]]:
    records = LenientMemoryRecords(raw)
    out = []
    while records.has_next():
        for record in records.next_batch():
            out.append((record.offset, record.value, list(record.headers)))
    return out


@pytest.mark.parametrize("compression", [0, GZIP])
def test_every_record_comes_through_with_the_bad_key_replaced(compression: int) -> None:
    raw = batch(0, compression, None) + batch(3, compression, 1) + batch(6, compression, None)
    records = read_all(raw)
    assert [offset for offset, _, _ in records[:3]] == [0, 1, 2]
    # The fetcher drops offsets it has already handed out; a re-read batch starts over.
    seen = {offset: (value, headers) for offset, value, headers in records}
    assert sorted(seen) == list(range(9))
    assert seen[4] == (b"v4", [("\ufffd\ufffd", b"v")])
    assert seen[7] == (b"v7", [("ok", b"1")])


def test_good_batches_are_read_by_aiokafka_alone() -> None:
    records = read_all(batch(0, 0, None))
    assert [(o, v) for o, v, _ in records] == [(0, b"v0"), (1, b"v1"), (2, b"v2")]
