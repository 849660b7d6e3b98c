"""The walking skeleton end to end: real Kafka, real Docker, real PostgreSQL and SQLite.

Submissions are produced with a plain aiokafka producer and results read with a plain
read_committed consumer, exactly as an upstream service would.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from streamworker.audit.store import AuditStore
from tests.integration.kafka_util import consume_until, event_bytes, produce, results_by_id

pytestmark = [pytest.mark.integration]

RESULT_SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "result.v1.json"

RESULT_KEYS = {
    "submission_id",
    "schema_version",
    "event_id",
    "status",
    "judge0_status_id",
    "message",
    "language",
    "runtime",
    "compile",
    "runs",
    "metadata",
    "worker_id",
    "attempt",
    "received_at",
    "started_at",
    "finished_at",
}


def http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())


def sid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def wait_execution(url: str, submission_id: str, timeout_s: float = 30.0) -> dict[str, Any]:
    store = await AuditStore.open(url)
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                row = await store.get_execution(submission_id)
                if row is not None and row.get("status"):
                    return row
                await asyncio.sleep(0.3)
    finally:
        await store.close()


@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
async def test_submission_is_answered_on_kafka_and_in_sql(
    start_worker: Any, kafka_bootstrap: str, pg_url: str, tmp_path: Any, database: str
) -> None:
    url = pg_url if database == "postgresql" else f"sqlite+aiosqlite:///{tmp_path}/audit.db"
    worker = start_worker(database_url=url)
    event = {
        "submission_id": sid("e2e"),
        "language": "python",
        "source": "name = input()\nprint(f'hello, {name}')\n",
        "stdin": "kafka\n",
        "expected_output": "hello, kafka\n",
        "metadata": {"tenant": "acme", "problem": 7},
    }
    await produce(kafka_bootstrap, worker.topics["submissions"], [event_bytes(event)])
    found = await results_by_id(kafka_bootstrap, worker.topics["results"], {event["submission_id"]})
    assert event["submission_id"] in found, worker.log()
    [result] = found[event["submission_id"]]
    assert set(result) == RESULT_KEYS
    schema = json.loads(RESULT_SCHEMA.read_text(encoding="utf-8"))
    Draft202012Validator(schema).validate(result)
    assert result["status"] == "accepted", result
    assert result["judge0_status_id"] == 3
    assert result["metadata"] == {"tenant": "acme", "problem": 7}
    assert result["runs"][0]["stdout"] == "hello, kafka\n"
    assert result["runs"][0]["test_case_id"] is None
    assert result["runtime"]["image"].endswith("python:bookworm")
    assert result["finished_at"].endswith("Z")

    row = await wait_execution(url, event["submission_id"])
    assert row["status"] == "accepted"
    assert row["judge0_status_id"] == 3
    assert row["language"] == "python"
    assert row["attempts"] == 1
    assert row["worker_id"] == worker.env["STREAMWORKER_WORKER_ID"]
    meta = row["metadata"] if isinstance(row["metadata"], dict) else json.loads(row["metadata"])
    assert meta == {"tenant": "acme", "problem": 7}
    assert row["wall_time_s"] is not None and row["memory_kb"] > 0


async def test_bad_events_go_to_dlq_and_the_worker_keeps_going(
    start_worker: Any, kafka_bootstrap: str, tmp_path: Any
) -> None:
    worker = start_worker(database_url=f"sqlite+aiosqlite:///{tmp_path}/audit.db")
    missing_field = {"submission_id": sid("nolang"), "source": "print(1)", "metadata": {"k": "v"}}
    good = {"submission_id": sid("good"), "language": "python", "source": "print(42)"}
    await produce(
        kafka_bootstrap,
        worker.topics["submissions"],
        [
            (b"junk-key", b"\xff\xfe not json at all"),
            event_bytes(missing_field),
            event_bytes(good),
        ],
    )
    dead = await consume_until(kafka_bootstrap, worker.topics["dlq"], 2)
    assert len(dead) == 2, worker.log()
    # Keyed differently, the two dead letters may sit on different partitions, which a
    # reader gets in no set order: they are told apart by key, not by position.
    dead.sort(key=lambda record: record.key != b"junk-key")
    assert dead[0].value == b"\xff\xfe not json at all"
    assert dead[0].key == b"junk-key"
    headers = dict(dead[0].headers)
    assert set(headers) == {
        "error",
        "error_type",
        "source_topic",
        "source_partition",
        "source_offset",
    }
    assert headers["source_topic"].decode() == worker.topics["submissions"]
    assert headers["error_type"] == b"InvalidEvent"
    second = dict(dead[1].headers)
    assert b"language" in second["error"]
    assert json.loads(dead[1].value or b"") == missing_field

    found = await results_by_id(
        kafka_bootstrap,
        worker.topics["results"],
        {missing_field["submission_id"], good["submission_id"]},
    )
    [invalid] = found[missing_field["submission_id"]]
    assert invalid["status"] == "invalid_submission"
    assert invalid["judge0_status_id"] == 13
    assert "language" in invalid["message"]
    assert invalid["metadata"] == {"k": "v"}
    assert invalid["runs"] == []
    [ok] = found[good["submission_id"]]
    assert ok["status"] == "accepted"
    assert ok["runs"][0]["stdout"] == "42\n"


async def test_health_is_200_with_the_contract_body(start_worker: Any, tmp_path: Any) -> None:
    worker = start_worker(database_url=f"sqlite+aiosqlite:///{tmp_path}/audit.db")
    status, raw = await asyncio.to_thread(http_get, f"{worker.url}/health")
    assert status == 200
    body = json.loads(raw)
    assert body["status"] == "healthy"
    assert body["docker"] == body["kafka"] == body["database"] == "connected"
    # The contract's keys, plus the additive `audit` (lag / quarantine) field.
    assert set(body) == {"status", "docker", "kafka", "database", "timestamp", "audit"}
    assert body["audit"] == "ok"
    status, raw = await asyncio.to_thread(http_get, f"{worker.url}/metrics")
    text = raw.decode()
    assert "streamworker_runs_in_flight" in text
