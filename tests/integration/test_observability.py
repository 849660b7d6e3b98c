"""What users import to watch streamworker: the Grafana dashboard and the alert rules.

Both live in the chart (`dashboards/streamworker.json`, `rules/streamworker.rules.yml`)
and are shipped from there as a ConfigMap for Grafana's sidecar and a PrometheusRule.
A query naming a metric the worker does not export draws an empty panel or an alert that
never fires, silently: every name is checked against the worker's registry, with the
suffixes prometheus_client adds. promtool (`dev/packaging/install-tools.sh prometheus`)
checks the rules and runs their unit tests; a missing tool skips locally, fails in CI.
"""

from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

import streamworker.worker.faust_sensor  # noqa: F401  # registers the Kafka metrics
from streamworker import metrics
from tests.conftest import need
from tests.integration.test_packaging import (
    CHART,
    GATEWAY,
    MODES,
    WORKER,
    by_kind,
    named,
    one,
    render,
    run,
    tool,
)

pytestmark = [pytest.mark.integration, pytest.mark.no_runtime_images]

DASHBOARD = CHART / "dashboards" / "streamworker.json"
RULES = CHART / "rules" / "streamworker.rules.yml"
RULE_TESTS = CHART / "rules" / "streamworker.rules.test.yml"
# Not the worker's, but what Prometheus records about every scrape.
SCRAPE_METRICS = {"up"}
# The series each type exposes; `_created` is off (metrics.disable_created_metrics).
TYPE_SUFFIXES: dict[str, tuple[str, ...]] = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count"),
    "info": ("_info",),
}


# --- the names the worker exports -------------------------------------------------------


def exported_names() -> set[str]:
    """Every series name the worker's registry can expose, from its families' types."""
    names: set[str] = set()
    collector: Any
    for collector in list(metrics.REGISTRY._collector_to_names):
        for family in collector.describe():
            names.update(family.name + suffix for suffix in TYPE_SUFFIXES[family.type])
    return names


def test_exported_names_cover_the_rendered_page() -> None:
    """The suffix table matches prometheus_client: nothing on the page is missed."""
    page = metrics.render().decode()
    sampled = {
        line.split("{")[0].split(" ")[0]
        for line in page.splitlines()
        if line and not line.startswith("#")
    }
    assert sampled, "unlabelled metrics always render"
    assert sampled <= exported_names()
    assert "streamworker_submissions_total" in exported_names()
    assert "streamworker_submissions" not in exported_names()


# --- metric names in PromQL ---------------------------------------------------------------

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w$.])[a-zA-Z_:][a-zA-Z0-9_:]*")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, labels or keywords)."""
    text = _STRINGS.sub('""', expr)
    for pattern in (_MATCHERS, _RANGES, _GROUPING):
        text = pattern.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function or an aggregation
        if match.group() not in _KEYWORDS:
            names.add(match.group())
    return names


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('up{job="streamworker"} == 0', {"up"}),
        (
            'sum by (job, le) (rate(a_bucket{x="b c", y=~"$job"}[$__rate_interval]))',
            {"a_bucket"},
        ),
        (
            "rate(a_sum[5m] offset 10m) / on (job) group_left (x) b_count > 0.5",
            {"a_sum", "b_count"},
        ),
        (
            "histogram_quantile(0.95, sum(rate(h_bucket[5m])) without (pod)) and bool c",
            {"h_bucket", "c"},
        ),
        ('label_replace(g, "dst", "$1", "src", "(.*)")', {"g"}),
    ],
)
def test_metric_names_reads_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


# --- the alert rules -------------------------------------------------------------------------


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


@pytest.fixture(scope="module")
def helm() -> str:
    binary = tool("helm")
    need("helm (dev/packaging/install-tools.sh helm)", binary is not None)
    assert binary is not None
    return binary


@pytest.fixture(scope="module")
def promtool() -> str:
    binary = tool("promtool")
    need("promtool (dev/packaging/install-tools.sh prometheus)", binary is not None)
    assert binary is not None
    return binary


def test_rules_cover_the_failures_operators_page_on() -> None:
    names = {rule["alert"] for rule in alerts()}
    assert names >= {
        "StreamworkerWorkerDown",
        "StreamworkerDockerUnhealthy",
        "StreamworkerConsumerLagGrowing",
        "StreamworkerAuditLagging",
        "StreamworkerAuditQuarantined",
        "StreamworkerInternalErrors",
        "StreamworkerDeadLettersGrowing",
    }
    for rule in alerts():
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    internal = next(r for r in alerts() if r["alert"] == "StreamworkerInternalErrors")
    assert 'status="internal_error"' in internal["expr"]


@pytest.mark.parametrize("rule", rules(), ids=lambda r: r.get("alert", r.get("record")))
def test_rule_selects_only_exported_metrics(rule: dict[str, Any]) -> None:
    used = metric_names(rule["expr"])
    assert used, "an alert on no metric"
    assert used <= exported_names() | SCRAPE_METRICS, used - exported_names()


def test_promtool_checks_the_rules(promtool: str) -> None:
    checked = run([promtool, "check", "rules", str(RULES)])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules())} rules found" in checked.stdout


def test_promtool_unit_tests_fire_every_alert(promtool: str) -> None:
    """Each alert has a case where it fires and the file has cases where nothing does."""
    cases = [
        case
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test["alert_rule_test"]
    ]
    fired = {case["alertname"] for case in cases if case["exp_alerts"]}
    assert fired == {rule["alert"] for rule in alerts()}
    assert any(not case["exp_alerts"] for case in cases)
    tested = run([promtool, "test", "rules", str(RULE_TESTS)])
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


# --- the dashboard ----------------------------------------------------------------------------


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panel_exprs() -> list[str]:
    return [t["expr"] for panel in dashboard()["panels"] for t in panel["targets"]]


def test_dashboard_has_a_uid_a_datasource_variable_and_queried_panels() -> None:
    board = dashboard()
    assert board["uid"] == "streamworker" and board["title"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = board["panels"]
    assert len(panels) >= 6
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip() and target["refId"], panel["title"]
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_dashboard_shows_each_area() -> None:
    """Throughput, latency, lag, pool, Docker, audit and container churn each have a panel."""
    used = set().union(*(metric_names(expr) for expr in panel_exprs()))
    assert used >= {
        "streamworker_submissions_total",
        "streamworker_submission_duration_seconds_bucket",
        "streamworker_queue_wait_seconds_bucket",
        "streamworker_pool_hits_total",
        "streamworker_pool_misses_total",
        "streamworker_pool_wait_duration_seconds_count",
        "streamworker_docker_up",
        "streamworker_audit_lag_seconds",
        "streamworker_pool_refill_duration_seconds_count",
        "streamworker_container_failures_total",
    }


def test_dashboard_queries_only_exported_metrics() -> None:
    board = dashboard()
    queries = [v["definition"] for v in board["templating"]["list"] if v["type"] == "query"]
    names = {m for q in queries for m in re.findall(r"label_values\((\w+)", q)}
    for expr in panel_exprs():
        used = metric_names(expr)
        assert used, expr
        names |= used
    assert names <= exported_names() | SCRAPE_METRICS, names - exported_names()


def test_dashboard_queries_are_valid_promql(promtool: str, tmp_path: Path) -> None:
    """Grafana's variables replaced, every panel query parses (as a recording rule)."""
    records = [
        {
            "record": f"dashboard:query_{n}",
            "expr": expr.replace("$__rate_interval", "5m").replace("$job", ".*"),
        }
        for n, expr in enumerate(panel_exprs())
    ]
    rule_file = tmp_path / "dashboard.rules.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    checked = run([promtool, "check", "rules", str(rule_file)])
    assert checked.returncode == 0, checked.stdout + checked.stderr


# --- shipped by the chart ---------------------------------------------------------------------


def test_chart_ships_the_dashboard_for_grafanas_sidecar(helm: str) -> None:
    docs = render(helm, MODES["socket"])
    board = next(
        c for c in by_kind(docs, "ConfigMap") if c["metadata"]["name"].endswith("-dashboard")
    )
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(board["data"]["streamworker.json"]) == dashboard()
    custom = render(
        helm,
        [
            *MODES["socket"],
            "metrics.dashboard.labels.grafana_dashboard=null",
            "metrics.dashboard.labels.dashboards=streamworker",
            "metrics.dashboard.annotations.grafana_folder=jobs",
        ],
    )
    board = next(
        c for c in by_kind(custom, "ConfigMap") if c["metadata"]["name"].endswith("-dashboard")
    )
    assert "grafana_dashboard" not in board["metadata"]["labels"]
    assert board["metadata"]["labels"]["dashboards"] == "streamworker"
    assert board["metadata"]["annotations"] == {"grafana_folder": "jobs"}
    off = render(helm, [*MODES["socket"], "metrics.dashboard.enabled=false"])
    assert not [
        c for c in by_kind(off, "ConfigMap") if c["metadata"]["name"].endswith("-dashboard")
    ]


def test_chart_renders_the_rules_as_a_prometheus_rule(helm: str) -> None:
    assert not by_kind(render(helm, MODES["socket"]), "PrometheusRule"), "needs CRDs: opt-in"
    docs = render(
        helm,
        [
            *MODES["socket"],
            "metrics.prometheusRule.enabled=true",
            "metrics.prometheusRule.labels.release=kube-prometheus-stack",
        ],
    )
    rule = one(docs, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert rule["spec"] == yaml.safe_load(RULES.read_text()), "the same file, one source"


def test_service_monitor_names_the_job_the_rules_select(helm: str) -> None:
    docs = render(helm, [*MODES["socket"], "metrics.serviceMonitor.enabled=true"])
    monitor = named(docs, "ServiceMonitor", WORKER)
    label = monitor["spec"]["jobLabel"]
    service = named(docs, "Service", WORKER)
    job = service["metadata"]["labels"][label]
    down = next(r for r in alerts() if r["alert"] == "StreamworkerWorkerDown")
    assert f'job="{job}"' in down["expr"]
    # The gateway is scraped under a job of its own, so a gateway down is no worker down,
    # and without its streamworker_docker_* series (always 0 there: it has no Docker).
    endpoint = named(docs, "ServiceMonitor", GATEWAY)["spec"]["endpoints"][0]
    (relabel,) = [r for r in endpoint["relabelings"] if r.get("targetLabel") == "job"]
    assert relabel["replacement"] != job
    docker = next(r for r in alerts() if "streamworker_docker_up" in r["expr"])
    (drop,) = endpoint["metricRelabelings"]
    assert drop["action"] == "drop" and re.fullmatch(drop["regex"], "streamworker_docker_up")
    assert "streamworker_docker_up" in docker["expr"]


def test_packaged_chart_has_the_files_but_not_the_rule_tests(helm: str, tmp_path: Path) -> None:
    packaged = run([helm, "package", str(CHART), "--destination", str(tmp_path)])
    assert packaged.returncode == 0, packaged.stderr
    (archive,) = tmp_path.glob("streamworker-*.tgz")
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert "streamworker/dashboards/streamworker.json" in names
    assert "streamworker/rules/streamworker.rules.yml" in names
    assert "streamworker/rules/streamworker.rules.test.yml" not in names
