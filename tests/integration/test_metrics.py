"""`/metrics` of a real worker: what it counts, `promtool check metrics`, a real scrape.

After one submission through Kafka the page must pass `promtool check metrics` with no
finding at all, and a real Prometheus server (Debian's, from
`dev/packaging/install-tools.sh prometheus`) must scrape it with the target `up`.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO, free_port, need
from tests.integration.kafka_util import event_bytes, produce, results_by_id

pytestmark = [pytest.mark.integration]

PROMETHEUS_WAIT_S = 60.0


def tool(name: str) -> str | None:
    local = REPO / ".state" / "bin" / name
    return str(local) if os.access(local, os.X_OK) else shutil.which(name)


def get(url: str, timeout_s: float = 10) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return bytes(response.read())


def samples(page: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def sample(page: str, name: str, **labels: str) -> float | None:
    return samples(page).get((name, frozenset(labels.items())))


@pytest.fixture
def judged_worker(start_worker: Any, kafka_bootstrap: str) -> Iterator[tuple[Any, str]]:
    """A worker that has judged one Python submission; yields it and its /metrics page."""
    worker = start_worker()
    submission_id = f"metrics-{uuid.uuid4().hex[:12]}"
    event = {
        "submission_id": submission_id,
        "language": "python",
        "source": "print(input()[::-1])",
        "stdin": "olleh",
        "expected_output": "hello",
    }

    async def go() -> dict[str, list[dict[str, Any]]]:
        await produce(kafka_bootstrap, worker.topics["submissions"], [event_bytes(event)])
        return await results_by_id(
            kafka_bootstrap, worker.topics["results"], {submission_id}, timeout_s=120
        )

    results = asyncio.run(go())
    assert submission_id in results, worker.log()
    assert results[submission_id][0]["status"] == "accepted", results[submission_id]
    # Counters are updated when the outcome is recorded; give the agent a moment.
    deadline = time.monotonic() + 15
    page = ""
    while time.monotonic() < deadline:
        page = get(f"{worker.url}/metrics").decode()
        if sample(page, "streamworker_submissions_total", language="python", status="accepted"):
            break
        time.sleep(0.3)
    yield worker, page


def test_metrics_count_the_submission(judged_worker: tuple[Any, str]) -> None:
    worker, page = judged_worker
    assert sample(page, "streamworker_submissions_total", language="python", status="accepted")
    runs = sample(
        page, "streamworker_execution_duration_seconds_count", language="python", stage="run"
    )
    assert runs == 1
    assert sample(page, "streamworker_submission_duration_seconds_count", language="python") == 1
    assert sample(page, "streamworker_runs_in_flight") == 0
    assert sample(page, "streamworker_docker_up") == 1
    for family in text_string_to_metric_families(page):
        assert family.name.startswith("streamworker_"), family.name
    if "# TYPE streamworker_kafka_messages_received_total counter" in page:
        # The Faust sensor is wired (streamworker.worker.faust_sensor.PrometheusSensor).
        topic = worker.topics["submissions"]
        assert sample(page, "streamworker_kafka_messages_received_total", topic=topic) == 1
        assert sample(page, "streamworker_queue_wait_seconds_count") == 1


def test_metrics_pass_promtool_without_findings(
    judged_worker: tuple[Any, str], tmp_path: Path
) -> None:
    promtool = tool("promtool")
    need("promtool (dev/packaging/install-tools.sh prometheus)", promtool is not None)
    assert promtool is not None
    _, page = judged_worker
    (tmp_path / "metrics.txt").write_text(page)
    checked = subprocess.run(
        [promtool, "check", "metrics"],
        input=page.encode(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    findings = (checked.stdout + checked.stderr).decode()
    assert checked.returncode == 0, findings
    assert not findings.strip(), f"promtool findings (page in {tmp_path}):\n{findings}"


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Any]:
    """Factory: a real Prometheus on a free loopback port scraping `target`; stopped after."""
    binary = tool("prometheus")
    need("prometheus (dev/packaging/install-tools.sh prometheus)", binary is not None)
    assert binary is not None
    processes: list[subprocess.Popen[bytes]] = []

    def start(target: str) -> str:
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: streamworker\n"
            f"    static_configs:\n      - targets: ['{target}']\n"
        )
        log = (tmp_path / "prometheus.log").open("wb")
        processes.append(
            subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--storage.tsdb.retention.time=1h",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
            )
        )
        return f"http://127.0.0.1:{port}"

    yield start
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def api(base: str, path: str, **params: str) -> Any:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    body = json.loads(get(f"{base}{path}{query}", timeout_s=5))
    assert body["status"] == "success", body
    return body["data"]


def test_a_real_prometheus_scrapes_the_worker(
    judged_worker: tuple[Any, str], prometheus: Any, tmp_path: Path
) -> None:
    worker, _ = judged_worker
    target = f"127.0.0.1:{worker.http_port}"
    base = prometheus(target)
    deadline = time.monotonic() + PROMETHEUS_WAIT_S
    health, last_error = "", ""
    while time.monotonic() < deadline:
        try:
            targets = api(base, "/api/v1/targets")["activeTargets"]
        except OSError:
            time.sleep(0.5)
            continue
        mine = [t for t in targets if t["labels"].get("instance") == target]
        if mine:
            health, last_error = mine[0]["health"], mine[0].get("lastError", "")
            if health == "up":
                break
        time.sleep(0.5)
    log = (tmp_path / "prometheus.log").read_text(errors="replace")[-3000:]
    assert health == "up", f"target {health or 'missing'}: {last_error}\n{log}"
    # The scraped series are queryable: the submission counted above is in the TSDB.
    deadline = time.monotonic() + 20
    result: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not result:
        result = api(
            base, "/api/v1/query", query='streamworker_submissions_total{language="python"}'
        )["result"]
        time.sleep(0.5)
    assert result and float(result[0]["value"][1]) >= 1, result
    up = api(base, "/api/v1/query", query=f'up{{instance="{target}"}}')["result"]
    assert up and up[0]["value"][1] == "1"
