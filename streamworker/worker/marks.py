"""The answered-marks this process wrote itself, so a rebalance can take them back.

A mark is sent inside its source partition's Kafka transaction and also put straight
into the in-memory `answered` table (so a duplicate right behind it is skipped). Faust
does not commit on a rebalance: a partition that moves to another worker has its open
transaction aborted, mark and result with it. The in-memory copy must then go too, or
if the partition came back its event would be skipped as "answered" and never answered.
(A partition this worker keeps keeps its open transaction, so its marks stay.)
"""

from __future__ import annotations

from collections.abc import Iterable


class OwnMarks:
    """Keys this process marked answered, by source partition."""

    def __init__(self) -> None:
        self._keys: dict[int, set[bytes]] = {}

    def add(self, partition: int, key: bytes) -> None:
        self._keys.setdefault(partition, set()).add(key)

    def take(self, partitions: Iterable[int]) -> set[bytes]:
        """Forget the marks of `partitions` and return their keys (to drop from memory)."""
        keys: set[bytes] = set()
        for partition in set(partitions):
            keys |= self._keys.pop(partition, set())
        return keys

    def __len__(self) -> int:
        return sum(len(keys) for keys in self._keys.values())
