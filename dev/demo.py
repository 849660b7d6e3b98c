"""`make demo`: send sample submissions through Kafka with a plain producer, print results
and the SQL history. Expects the stack from `make up` and the images of `LANGUAGES`
(`python dev/demo.py --languages` names them, so `make demo` builds only those)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import tomllib
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streamworker import kafka_security
from streamworker.audit.store import AuditStore
from streamworker.client import assign_at_end
from streamworker.kafka_security import aiokafka_kwargs
from streamworker.settings_file import load_layered_settings

CONFORMANCE = Path(__file__).resolve().parent.parent / "streamworker/languages/conformance"
LANGUAGES = ("python", "javascript", "c", "cpp", "java", "go", "rust", "ruby", "bash")


def sample(language: str, case_name: str) -> dict[str, Any]:
    with (CONFORMANCE / f"{language}.toml").open("rb") as fh:
        cases = {c["name"]: c for c in tomllib.load(fh)["case"]}
    case = cases[case_name]
    event: dict[str, Any] = {
        "submission_id": f"demo-{language}-{case_name}-{uuid.uuid4().hex[:6]}",
        "language": language,
        "source": case["source"],
        "stdin": case.get("stdin", ""),
        "metadata": {"demo": True, "case": case_name},
    }
    if "expected_output" in case:
        event["expected_output"] = case["expected_output"]
    return event


def samples() -> list[dict[str, Any]]:
    events = [sample(lang, "hello") for lang in LANGUAGES]
    events.append(sample("python", "echo"))
    events.append(sample("c", "compile_error"))
    events.append(
        {
            "submission_id": f"demo-judge-{uuid.uuid4().hex[:6]}",
            "language": "python",
            "source": "a, b = map(int, input().split())\nprint(a + b)\n",
            "test_cases": [
                {"id": "small", "stdin": "1 2\n", "expected_output": "3\n"},
                {"id": "large", "stdin": "1000000 2000000\n", "expected_output": "3000000\n"},
                {"id": "wrong", "stdin": "2 2\n", "expected_output": "5\n"},
            ],
            "metadata": {"demo": True, "case": "test_cases"},
        }
    )
    return events


async def main() -> int:
    settings, _ = load_layered_settings()
    events = samples()
    consumer = AIOKafkaConsumer(
        **aiokafka_kwargs(settings), isolation_level="read_committed", enable_auto_commit=False
    )
    await kafka_security.start(settings, consumer)
    await assign_at_end(consumer, settings.topics.results)
    producer = AIOKafkaProducer(**aiokafka_kwargs(settings), acks="all")
    await kafka_security.start(settings, producer)
    began = time.monotonic()
    for event in events:
        await producer.send_and_wait(
            settings.topics.submissions,
            json.dumps(event).encode(),
            key=event["submission_id"].encode(),
        )
    await producer.stop()
    print(f"sent {len(events)} submissions to {settings.topics.submissions}\n")
    wanted = {e["submission_id"] for e in events}
    results: dict[str, dict[str, Any]] = {}
    try:
        async with asyncio.timeout(300):
            async for record in consumer:
                result = json.loads(record.value or b"{}")
                if result.get("submission_id") in wanted:
                    results[result["submission_id"]] = result
                    runs = result["runs"]
                    first = runs[0] if runs else (result["compile"] or {})
                    out = (first.get("stdout") or first.get("stderr") or "").strip()
                    print(
                        f"{time.monotonic() - began:6.2f}s  {result['language']:<10} "
                        f"{result['status']:<18} {out.splitlines()[0][:50] if out else ''}"
                    )
                    if len(results) == len(wanted):
                        break
    except TimeoutError:
        print(f"timed out: {len(wanted) - len(results)} results missing", file=sys.stderr)
    finally:
        await consumer.stop()

    await asyncio.sleep(1.0)  # the audit writer trails publication by design
    store = await AuditStore.open(settings.resolved_database_url())
    try:
        rows = await store.list_executions(limit=len(events))
    finally:
        await store.close()
    print(
        "\nSQL: SELECT submission_id, language, status, judge0_status_id, cpu_time_s, "
        "memory_kb, attempts FROM executions ORDER BY received_at DESC"
    )
    for row in rows:
        print(
            f"  {row['submission_id']:<40} {row['language'] or '-':<10} "
            f"{row['status'] or '(running)':<18} {row['judge0_status_id']!s:<4} "
            f"{row['cpu_time_s']!s:<10} {row['memory_kb']!s:<8} {row['attempts']}"
        )
    return 0 if len(results) == len(wanted) else 1


if __name__ == "__main__":
    if sys.argv[1:] == ["--languages"]:
        print(" ".join(LANGUAGES))
        sys.exit(0)
    sys.exit(asyncio.run(main()))
