"""Acknowledge events per partition in offset order, whatever order their runs finish in.

Faust commits the first run of consecutive acknowledged offsets, but right after an
assignment it does not know the committed offset and skips its own check, so an event
acknowledged ahead of an earlier one still running lets the commit jump past the earlier
event: lost on a crash, and its result left in a transaction nothing commits. Handing
Faust acknowledgements strictly in offset order keeps every commit below the oldest event
still in flight.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class _Pending:
    """Marks an offset that was delivered but has not finished."""


_PENDING = _Pending()


class InOrderAcks(Generic[T]):
    """Holds finished events until every earlier event of their partition finished."""

    def __init__(self) -> None:
        self._open: dict[int, dict[int, T | _Pending]] = {}

    def begin(self, partition: int, offset: int) -> None:
        """Record a delivered event; call before anything can yield to the event loop."""
        self._open.setdefault(partition, {})[offset] = _PENDING

    def finish(self, partition: int, offset: int, item: T) -> list[T]:
        """Mark an event finished; returns the items now safe to acknowledge, in order."""
        pending = self._open.setdefault(partition, {})
        pending[offset] = item
        ready: list[T] = []
        for head in sorted(pending):
            value = pending[head]
            if isinstance(value, _Pending):
                break
            ready.append(value)
            del pending[head]
        return ready

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop revoked partitions' events: they are delivered again from the commit."""
        for partition in partitions:
            self._open.pop(partition, None)

    def waiting(self, partition: int) -> int:
        """Events of `partition` delivered and not yet released."""
        return len(self._open.get(partition, {}))
