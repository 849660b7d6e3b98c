"""Reading records whose header keys are not UTF-8, instead of stalling on them.

Kafka header keys are bytes on the wire; aiokafka decodes them as strict UTF-8 while it
iterates a fetched batch (in its C extension and in Python alike). A stranger who
produces one record with a header key like b"\\xff" makes that decode raise on every
fetch: the partition never moves again, for everybody. No hook or option of aiokafka
changes that, so the consumer's `MemoryRecords` is wrapped (`install`): batches are
read by aiokafka's fast reader as usual, and only a batch whose reading raised
`UnicodeDecodeError` is read again by aiokafka's pure-Python reader over a buffer that
decodes with replacement. Records already handed out are skipped by the fetcher itself
(it drops offsets below its position), so nothing is delivered twice.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from typing import Any

from aiokafka.consumer import fetcher
from aiokafka.errors import CorruptRecordException
from aiokafka.record.default_records import _DefaultRecordBatchPy
from aiokafka.record.memory_records import MemoryRecords

log = logging.getLogger(__name__)


class _LenientSlice(bytearray):
    """A slice whose `decode` replaces what is not UTF-8 (only header keys are decoded)."""

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return bytearray.decode(self, encoding, "replace")


class _LenientBuffer(bytearray):
    def __getitem__(self, index: Any) -> Any:
        item = bytearray.__getitem__(self, index)
        return _LenientSlice(item) if isinstance(item, bytearray) else item


class LenientBatch(_DefaultRecordBatchPy):  # type: ignore[misc]  # aiokafka is untyped
    """aiokafka's Python batch reader over a buffer that decodes header keys leniently."""

    def __init__(self, buffer: bytes | bytearray | memoryview) -> None:
        super().__init__(buffer)
        self._buffer: bytearray = _LenientBuffer(self._buffer)

    def _maybe_uncompress(self) -> None:
        super()._maybe_uncompress()
        if not isinstance(self._buffer, _LenientBuffer):
            self._buffer = _LenientBuffer(self._buffer)


BATCH_PREFIX = struct.Struct(">qi")
"""Every record batch starts with its base offset (int64) and its length (int32)."""


def lenient_records(raw: bytes, base_offset: int) -> Iterator[Any]:
    """The records of the batch at `base_offset` in `raw`, header keys decoded leniently."""
    view = memoryview(raw)
    pos = 0
    while pos + BATCH_PREFIX.size <= len(view):
        offset, length = BATCH_PREFIX.unpack_from(view, pos)
        end = pos + BATCH_PREFIX.size + length
        if offset == base_offset and end <= len(view):
            yield from LenientBatch(view[pos:end])
            return
        pos = end


class _Batch:
    """A fetched batch that falls back to the lenient reader when reading it fails."""

    def __init__(self, batch: Any, raw: bytes) -> None:
        self._batch = batch
        self._raw = raw

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batch, name)

    def __next__(self) -> Any:  # control batches are read with next()
        return next(self._batch)

    def __iter__(self) -> Iterator[Any]:
        try:
            yield from self._batch
        except (UnicodeDecodeError, CorruptRecordException) as exc:
            # aiokafka's Python reader wraps the decode error in CorruptRecordException.
            if not isinstance(exc, UnicodeDecodeError) and "UnicodeDecodeError" not in str(exc):
                raise
            log.warning(
                "a record at or after offset %d has a header key that is not UTF-8; "
                "reading its batch leniently",
                self._batch.base_offset,
            )
            yield from lenient_records(self._raw, self._batch.base_offset)


class LenientMemoryRecords:
    """aiokafka's `MemoryRecords`, whose batches survive non-UTF-8 header keys."""

    def __init__(self, raw: bytes) -> None:
        self._raw = raw
        self._records = MemoryRecords(raw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._records, name)

    def next_batch(self, *args: Any, **kwargs: Any) -> Any:
        batch = self._records.next_batch(*args, **kwargs)
        return None if batch is None else _Batch(batch, self._raw)


def install() -> None:
    """Make aiokafka's fetcher read batches through `LenientMemoryRecords` (idempotent)."""
    fetcher.MemoryRecords = LenientMemoryRecords
