"""Submissions that an outside client (kcat, i.e. librdkafka) produced compressed, with
each codec Kafka has: every one is read, answered or dead-lettered like a plain one.

aiokafka reads snappy, lz4 and zstd batches only with `cramjam` installed; without it a
stranger's `kcat -z zstd` raised `UnsupportedCodecError` on every fetch of that
partition. The batches here are produced by kcat itself, not by our own client.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest

from tests.conftest import need
from tests.integration.fault_util import hello, ids
from tests.integration.kafka_util import consume_until, event_bytes, produce, results_by_id

pytestmark = [pytest.mark.integration]

CODECS = ("gzip", "snappy", "lz4", "zstd")


def kcat_produce(bootstrap: str, topic: str, codec: str, records: list[tuple[str, bytes]]) -> None:
    """One kcat run, so its records leave in compressed batches: `key<TAB>value` lines."""
    lines = b"".join(key.encode() + b"\t" + value + b"\n" for key, value in records)
    assert all(b"\n" not in value and b"\t" not in key.encode() for key, value in records)
    done = subprocess.run(
        ["kcat", "-P", "-b", bootstrap, "-t", topic, "-z", codec, "-K", "\t"],
        input=lines,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")


async def test_every_codec_is_answered_and_dead_lettered(
    start_worker: Any, kafka_bootstrap: str, tmp_path: Any
) -> None:
    need("kcat (dev/packaging/install-tools.sh clients)", shutil.which("kcat") is not None)
    worker = start_worker(database_url=f"sqlite+aiosqlite:///{tmp_path}/audit.db")
    topic = worker.topics["submissions"]
    good: dict[str, str] = {}
    for codec in CODECS:
        sids = ids(codec, 3)
        good.update(dict.fromkeys(sids, codec))
        records = [(sid, event_bytes(hello(sid))[1]) for sid in sids]
        records.insert(1, (f"junk-{codec}", b"\xff\xfe not json, " + codec.encode()))
        kcat_produce(kafka_bootstrap, topic, codec, records)
    after = ids("plain-after", 1)
    await produce(kafka_bootstrap, topic, [event_bytes(hello(s)) for s in after])

    everyone = set(good) | set(after)
    found = await results_by_id(kafka_bootstrap, worker.topics["results"], everyone, 120)
    counts = {sid: len(results) for sid, results in found.items()}
    assert counts == dict.fromkeys(everyone, 1), worker.log()
    statuses = {sid: results[0]["status"] for sid, results in found.items()}
    assert statuses == dict.fromkeys(everyone, "accepted")

    dead = await consume_until(kafka_bootstrap, worker.topics["dlq"], len(CODECS))
    assert sorted((r.key, r.value) for r in dead) == sorted(
        (f"junk-{c}".encode(), b"\xff\xfe not json, " + c.encode()) for c in CODECS
    ), worker.log()
