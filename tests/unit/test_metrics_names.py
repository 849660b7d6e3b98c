"""Metric names follow Prometheus conventions; the Faust sensor maps hooks to metrics.

Every metric on streamworker's registry is checked, so a metric added later is held to
the same rules: the `streamworker_` prefix, snake_case, base units (`_seconds`,
`_bytes`), `_total` only on counters (prometheus_client adds it), histograms in a base
unit. The rendered page is also given to `promtool check metrics` when it is installed
(`dev/packaging/install-tools.sh prometheus`).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from faust.types import TP, Message
from prometheus_client.parser import text_string_to_metric_families

from streamworker import metrics
from streamworker.worker import faust_sensor
from streamworker.worker.faust_sensor import PrometheusSensor
from tests.conftest import REPO, need

SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")
# Units Prometheus wants converted to their base unit (promlint's list, and ours).
NON_BASE_UNITS = (
    "ms",
    "msec",
    "millis",
    "milliseconds",
    "microseconds",
    "nanoseconds",
    "minutes",
    "hours",
    "days",
    "kb",
    "kib",
    "kilobytes",
    "mb",
    "mib",
    "megabytes",
    "gb",
    "gigabytes",
    "percent",
)
RESERVED_SUFFIXES = ("_total", "_count", "_sum", "_bucket", "_created", "_info")


def families() -> list[tuple[str, str, str, list[str]]]:
    """(name, type, help, label names) of every metric registered by streamworker."""
    found = []
    collector: Any
    for collector in list(metrics.REGISTRY._collector_to_names):
        for family in collector.describe():
            labels = list(getattr(collector, "_labelnames", ()))
            found.append((family.name, family.type, family.documentation, labels))
    return found


def test_the_sensor_registers_on_streamworkers_registry() -> None:
    names = {name for name, *_ in families()}
    assert "streamworker_kafka_messages_received" in names
    assert "streamworker_queue_wait_seconds" in names
    assert "streamworker_submissions" in names


@pytest.mark.parametrize("family", families(), ids=lambda f: f[0])
def test_metric_follows_prometheus_conventions(family: tuple[str, str, str, list[str]]) -> None:
    name, kind, help_text, labels = family
    assert name.startswith("streamworker_"), "every metric is prefixed with streamworker_"
    assert SNAKE.match(name), "metric names are snake_case"
    assert help_text.strip(), "every metric has a help text"
    words = name.split("_")
    for unit in NON_BASE_UNITS:
        assert unit not in words, f"{name}: use a base unit instead of {unit!r}"
    # prometheus_client appends _total to counters; a name already ending so is doubled.
    assert not name.endswith(RESERVED_SUFFIXES), f"{name}: reserved suffix"
    if kind in ("histogram", "summary"):
        assert name.endswith(("_seconds", "_bytes")), f"{name}: histograms carry a base unit"
    if any(w in words for w in ("duration", "latency", "wait", "age")):
        assert name.endswith("_seconds"), f"{name}: a time is measured in seconds"
    if kind == "gauge" and "bytes" in words:
        assert name.endswith("_bytes"), f"{name}: the unit goes last"
    for label in labels:
        assert SNAKE.match(label) and label not in ("le", "quantile"), f"{name}: label {label}"


def test_metric_names_are_unique() -> None:
    names = [name for name, *_ in families()]
    assert len(names) == len(set(names))


def test_rendered_page_parses_and_counters_end_in_total() -> None:
    page = metrics.render().decode()
    parsed = list(text_string_to_metric_families(page))
    assert parsed
    for line in page.splitlines():
        if line.startswith("# TYPE ") and line.endswith(" counter"):
            assert line.split()[2].endswith("_total"), line


def _promtool() -> str | None:
    local = REPO / ".state" / "bin" / "promtool"
    return str(local) if local.exists() else shutil.which("promtool")


def test_promtool_accepts_every_metric_with_samples(tmp_path: Path) -> None:
    promtool = _promtool()
    need("promtool (dev/packaging/install-tools.sh prometheus)", promtool is not None)
    assert promtool is not None
    # Give every labelled metric one child, so that each family renders samples.
    collector: Any
    for collector in list(metrics.REGISTRY._collector_to_names):
        labelnames = getattr(collector, "_labelnames", ())
        if labelnames:
            collector.labels(*(["lint"] * len(labelnames)))
    page = metrics.render()
    proc = subprocess.run(
        [promtool, "check", "metrics"], input=page, capture_output=True, check=False
    )
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    assert not proc.stdout.strip() and not proc.stderr.strip(), proc.stdout + proc.stderr


# --- the Faust sensor ------------------------------------------------------------------


def value(name: str, **labels: str) -> float:
    sample = metrics.REGISTRY.get_sample_value(name, labels)
    return 0.0 if sample is None else sample


def message(topic: str, offset: int, age_s: float = 0.0) -> Message:
    return Message(
        topic=topic,
        partition=0,
        offset=offset,
        timestamp=time.time() - age_s,
        timestamp_type=0,
        headers=[],
        key=b"key",
        value=b"0123456789",
        checksum=None,
    )


def test_sensor_counts_records_in_and_out_and_times_them() -> None:
    sensor = PrometheusSensor(queue_topics={"sensor.subs"})
    tp = TP("sensor.subs", 0)
    count = "streamworker_kafka_message_processing_seconds_count"
    before_wait = value("streamworker_queue_wait_seconds_count")
    before_wait_sum = value("streamworker_queue_wait_seconds_sum")
    sensor.on_message_in(tp, 7, message("sensor.subs", 7, age_s=3.0))
    assert value("streamworker_kafka_messages_received_total", topic="sensor.subs") == 1
    assert value("streamworker_kafka_received_bytes_total", topic="sensor.subs") == 13
    assert value("streamworker_queue_wait_seconds_count") == before_wait + 1
    assert value("streamworker_queue_wait_seconds_sum") - before_wait_sum >= 3.0
    sensor.on_message_out(tp, 7, message("sensor.subs", 7))
    assert value("streamworker_kafka_messages_acked_total", topic="sensor.subs") == 1
    assert value(count, topic="sensor.subs") == 1
    # An offset never received (or forgotten at a rebalance) is counted, not timed.
    sensor.on_message_out(tp, 8, message("sensor.subs", 8))
    assert value("streamworker_kafka_messages_acked_total", topic="sensor.subs") == 2
    assert value(count, topic="sensor.subs") == 1


def test_sensor_queue_wait_only_for_queue_topics_and_never_negative() -> None:
    sensor = PrometheusSensor(queue_topics={"sensor.q"})
    before = value("streamworker_queue_wait_seconds_count")
    before_sum = value("streamworker_queue_wait_seconds_sum")
    sensor.on_message_in(TP("sensor.other", 0), 1, message("sensor.other", 1, age_s=5.0))
    assert value("streamworker_queue_wait_seconds_count") == before
    sensor.on_message_in(TP("sensor.q", 0), 1, message("sensor.q", 1, age_s=-60.0))
    assert value("streamworker_queue_wait_seconds_count") == before + 1
    assert value("streamworker_queue_wait_seconds_sum") == before_sum  # clamped at 0


def test_sensor_forgets_the_oldest_unacknowledged_records(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(faust_sensor, "MAX_TRACKED", 3)
    sensor = PrometheusSensor()
    tp = TP("sensor.bounded", 0)
    for offset in range(5):
        sensor.on_message_in(tp, offset, message("sensor.bounded", offset))
    assert len(sensor._received_at) == 3
    assert ("sensor.bounded", 0, 0) not in sensor._received_at


def test_sensor_sends_errors_and_commits() -> None:
    sensor = PrometheusSensor()
    producer = object()
    send_count = value("streamworker_kafka_send_duration_seconds_count")
    state = sensor.on_send_initiated(producer, "sensor.out", None, 3, 10)  # type: ignore[arg-type]
    assert value("streamworker_kafka_messages_sent_total", topic="sensor.out") == 1
    assert value("streamworker_kafka_sent_bytes_total", topic="sensor.out") == 13
    sensor.on_send_completed(producer, state, None)  # type: ignore[arg-type]
    assert value("streamworker_kafka_send_duration_seconds_count") == send_count + 1
    failed = sensor.on_send_initiated(producer, "sensor.out", None, 0, 1)  # type: ignore[arg-type]
    sensor.on_send_error(producer, RuntimeError("broker gone"), failed)  # type: ignore[arg-type]
    assert value("streamworker_kafka_send_errors_total", topic="sensor.out") == 1

    commits = value("streamworker_kafka_commits_total")
    commit_count = value("streamworker_kafka_commit_duration_seconds_count")
    started = sensor.on_commit_initiated(None)  # type: ignore[arg-type]
    sensor.on_commit_completed(None, started)  # type: ignore[arg-type]
    assert value("streamworker_kafka_commits_total") == commits + 1
    assert value("streamworker_kafka_commit_duration_seconds_count") == commit_count + 1


def test_sensor_tracks_rebalances() -> None:
    sensor = PrometheusSensor()
    sensor.on_message_in(TP("sensor.rb", 0), 1, message("sensor.rb", 1))
    rebalances = value("streamworker_kafka_rebalances_total")
    durations = value("streamworker_kafka_rebalance_duration_seconds_count")
    state = sensor.on_rebalance_start(None)  # type: ignore[arg-type]
    assert value("streamworker_kafka_rebalances_total") == rebalances + 1
    assert value("streamworker_kafka_rebalancing") == 1
    assert not sensor._received_at, "partitions may have moved: their timings are dropped"
    sensor.on_rebalance_end(None, state)  # type: ignore[arg-type]
    assert value("streamworker_kafka_rebalancing") == 0
    assert value("streamworker_kafka_rebalance_duration_seconds_count") == durations + 1


def test_sensor_is_a_faust_sensor() -> None:
    import faust

    assert isinstance(PrometheusSensor(), faust.Sensor)
