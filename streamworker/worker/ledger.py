"""Which events broke the worker's Kafka transaction, remembered across restarts.

A broken transaction restarts the worker in place and the event is delivered again. An
event that breaks it every time would loop forever; this small file-backed ledger counts
the restarts each event caused, so that after a bounded number the event is dead-lettered
instead of tried again. Written only when a restart is requested (rare), read at start.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

MAX_ENTRIES = 1000
"""Old entries go first: an offset is never delivered again once acknowledged."""


def event_key(topic: str, partition: int, offset: int) -> str:
    return f"{topic}:{partition}:{offset}"


class RestartLedger:
    """Counts per event (topic, partition, offset), persisted in one JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._counts: dict[str, int] = self._load()

    def _load(self) -> dict[str, int]:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring an unreadable restart ledger %s: %s", self.path, exc)
            return {}
        if not isinstance(raw, dict):
            return {}
        return {str(k): v for k, v in raw.items() if isinstance(v, int) and v > 0}

    def restarts(self, key: str) -> int:
        """How many restarts this event caused so far."""
        return self._counts.get(key, 0)

    def record(self, key: str) -> int:
        """Count one more restart caused by `key` and persist it before the restart."""
        count = self._counts.pop(key, 0) + 1
        self._counts[key] = count  # re-inserted last: the newest entry
        while len(self._counts) > MAX_ENTRIES:
            del self._counts[next(iter(self._counts))]
        self._save()
        return count

    def _save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(self._counts))
            os.replace(tmp, self.path)
        except OSError as exc:  # a full disk must not stop the restart itself
            log.warning("could not write the restart ledger %s: %s", self.path, exc)
