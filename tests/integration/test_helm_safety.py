"""The chart's safe defaults: what the operator must choose, and what it never opens.

There is no default Docker mode, socket group, database URL or password: a missing one
stops `helm template` with a message naming the value. The NetworkPolicy names its peers
for every rule (an empty `to` or `from` would mean anyone), and Kafka credentials reach
the worker from Secrets only. Helpers and the value sets come from test_packaging.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import need
from tests.integration.test_packaging import (
    CALLBACK_SECRET,
    CHART,
    DATABASE,
    DOCKER_GID,
    GATEWAY,
    MODES,
    SOCKET,
    TENANTS,
    WORKER,
    by_kind,
    container,
    env_of,
    gateway_pod,
    named,
    render,
    run,
    set_args,
    tool,
    worker_pod,
)

pytestmark = [pytest.mark.integration, pytest.mark.no_runtime_images]

KAFKA_TLS_DIR = "/etc/streamworker/kafka-tls"
SASL = [
    "kafka.security.protocol=SASL_SSL",
    "kafka.security.sasl.mechanism=SCRAM-SHA-512",
    "kafka.security.sasl.username=worker",
    "kafka.security.sasl.password=pw",
]


@pytest.fixture(scope="module")
def helm() -> str:
    binary = tool("helm")
    need("helm (dev/packaging/install-tools.sh helm)", binary is not None)
    assert binary is not None
    return binary


def refused(helm: str, values: list[str]) -> str:
    """`helm template`'s error for these values (it must fail)."""
    out = run([helm, "template", "sw", str(CHART), *set_args(values)])
    assert out.returncode != 0, "rendered, but a required value is missing"
    return out.stderr


# --- required values --------------------------------------------------------------------


def test_default_values_do_not_render(helm: str) -> None:
    """`helm install` with nothing set stops and names something to choose."""
    message = refused(helm, [])
    assert "docker.mode is required" in message or "database.url is required" in message


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([DATABASE], "docker.mode is required: socket"),
        ([DATABASE], "dind (a privileged Docker-in-Docker sidecar) or remoteTls"),
        (["docker.mode=dind"], "database.url is required (the chart ships no default password)"),
        (["docker.mode=dind", "migrations.enabled=false"], "database.url is required"),
        ([DATABASE, "docker.mode=socket"], "docker.socket.groupId is required in socket mode"),
        ([DATABASE, "docker.mode=socket"], "stat -c %g /var/run/docker.sock"),
        (
            [DATABASE, "docker.mode=socket", "docker.socket.groupId=0"],
            "docker.socket.allowRootGroup=true",
        ),
        (
            [DATABASE, "docker.mode=socket", "docker.socket.groupId=docker"],
            'docker.socket.groupId must be a numeric group id (got "docker")',
        ),
        (
            [*MODES["dind"], "kafka.security.protocol=TLS"],
            "kafka.security.protocol must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
        ),
        (
            [*MODES["dind"], *SASL[:1], *SASL[2:]],
            "kafka.security.sasl.mechanism must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
        ),
        (
            [*MODES["dind"], *SASL, "kafka.security.sasl.mechanism=GSSAPI"],
            'with protocol SASL_SSL (got "GSSAPI")',
        ),
        (
            [*MODES["dind"], *SASL[:2], *SASL[3:]],
            "kafka.security.sasl.username is required with protocol SASL_SSL",
        ),
        ([*MODES["dind"], *SASL[:3]], "or kafka.security.sasl.password is required"),
        (
            [*MODES["dind"], "kafka.security.sasl.username=worker"],
            "kafka.security.sasl.* is set but kafka.security.protocol is PLAINTEXT",
        ),
        (
            [*MODES["dind"], "kafka.security.ssl.existingSecret=kafka-tls"],
            "kafka.security.protocol is PLAINTEXT: use SSL or SASL_SSL",
        ),
        (
            [*MODES["dind"], "kafka.security.protocol=SSL", "kafka.security.ssl.certFile=t.crt"],
            "are files of kafka.security.ssl.existingSecret",
        ),
        (
            [
                *MODES["dind"],
                "kafka.security.protocol=SSL",
                "kafka.security.ssl.existingSecret=kafka-tls",
                "kafka.security.ssl.keyFile=t.key",
            ],
            "kafka.security.ssl.certFile and kafka.security.ssl.keyFile go together",
        ),
        (
            [*MODES["dind"], "config.STREAMWORKER_KAFKA_SASL_PASSWORD=pw"],
            "would put a secret in a ConfigMap",
        ),
        (
            [*MODES["dind"], "config.STREAMWORKER_DATABASE_URL=postgresql://u:p@h/d"],
            "would put a secret in a ConfigMap",
        ),
    ],
)
def test_a_missing_or_wrong_value_stops_with_its_name(
    helm: str, values: list[str], message: str
) -> None:
    assert message in refused(helm, values)


def test_lint_names_a_missing_docker_mode(helm: str) -> None:
    """`helm lint` turns `fail` into an [INFO] line (it renders leniently): still named."""
    linted = run([helm, "lint", "--strict", str(CHART), *set_args([DATABASE])])
    assert "docker.mode is required" in linted.stdout + linted.stderr


def test_socket_group_from_values_file_string_or_explicit_root(helm: str, tmp_path: Path) -> None:
    """A YAML number, a string and --set all give the number; 0 only when said so."""
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"docker": {"mode": "socket", "socket": {"groupId": 999}}}))
    out = run([helm, "template", "sw", str(CHART), "-f", str(values), "--set", DATABASE])
    assert out.returncode == 0, out.stderr
    docs = [doc for doc in yaml.safe_load_all(out.stdout) if doc]
    assert worker_pod(docs)["securityContext"]["supplementalGroups"] == [999]
    gid = f"docker.socket.groupId={DOCKER_GID}"
    chart = [helm, "template", "sw", str(CHART)]
    out = run([*chart, "--set", DATABASE, "--set", "docker.mode=socket", "--set-string", gid])
    assert out.returncode == 0, out.stderr
    docs = [doc for doc in yaml.safe_load_all(out.stdout) if doc]
    assert worker_pod(docs)["securityContext"]["supplementalGroups"] == [int(DOCKER_GID)]
    root = worker_pod(render(helm, MODES["socket-root-group"]))
    assert root["securityContext"]["supplementalGroups"] == [0]


# --- the NetworkPolicy ------------------------------------------------------------------


def policy_of(docs: list[dict[str, Any]], name: str = WORKER) -> dict[str, Any]:
    spec: dict[str, Any] = named(docs, "NetworkPolicy", name)["spec"]
    return spec


def assert_every_rule_names_its_peers(policy: dict[str, Any]) -> None:
    """An egress rule without `to` (or with `to: []`) allows any destination; the same
    for ingress and `from`: neither may be rendered."""
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    for rule in policy["egress"]:
        assert rule.get("to"), f"egress to anywhere: {rule}"
        assert all(peer for peer in rule["to"]), f"an empty peer: {rule}"
        assert rule.get("ports"), f"egress on every port: {rule}"
    for rule in policy["ingress"]:
        assert rule.get("from"), f"ingress from anywhere: {rule}"
        assert rule.get("ports"), f"ingress on every port: {rule}"


@pytest.mark.parametrize("mode", [m for m in MODES if m != "hpa"])
def test_network_policy_rules_always_name_peers(helm: str, mode: str) -> None:
    out = run([helm, "template", "sw", str(CHART), *set_args(MODES[mode])])
    assert out.returncode == 0, out.stderr
    assert "to: []" not in out.stdout and "from: []" not in out.stdout
    docs = [doc for doc in yaml.safe_load_all(out.stdout) if doc]
    policies = by_kind(docs, "NetworkPolicy")
    gateway = "gateway.enabled=false" not in MODES[mode]
    assert {p["metadata"]["name"] for p in policies} == ({WORKER, GATEWAY} if gateway else {WORKER})
    for policy in policies:
        assert_every_rule_names_its_peers(policy["spec"])


def test_network_policy_without_peers_allows_nothing_but_dns(helm: str) -> None:
    """Nothing named: no egress to Kafka or PostgreSQL and no ingress at all, not 'any'."""
    for mode in ("remoteTls", "socket"):
        values = [DATABASE, "docker.mode=" + mode, "docker.remoteTls.existingSecret=t"]
        docs = render(helm, [*values, *SOCKET[1:]])
        for name in (WORKER, GATEWAY):
            policy = policy_of(docs, name)
            assert_every_rule_names_its_peers(policy)
            assert policy["ingress"] == []
            ports = {(p["port"], p["protocol"]) for rule in policy["egress"] for p in rule["ports"]}
            assert ports == {(53, "TCP"), (53, "UDP")}, (mode, name)
    closed = render(helm, [DATABASE, *SOCKET, "networkPolicy.egress.dns.to=null"])
    for name in (WORKER, GATEWAY):
        policy = policy_of(closed, name)
        assert policy["egress"] == [] and policy["ingress"] == [], name


def test_network_policy_egress_goes_to_the_named_peers_only(helm: str) -> None:
    policy = policy_of(
        render(helm, [*MODES["remoteTls-secret"], "networkPolicy.egress.kafka.ports={9093,9094}"])
    )
    assert_every_rule_names_its_peers(policy)
    by_port = {p["port"]: rule["to"] for rule in policy["egress"] for p in rule["ports"]}
    assert by_port[9093] == by_port[9094] == [{"ipBlock": {"cidr": "10.20.0.0/24"}}]
    assert by_port[5432] == [{"podSelector": {"matchLabels": {"app": "postgres"}}}]
    assert by_port[2376] == [{"ipBlock": {"cidr": "10.30.0.5/32"}}]
    assert by_port[53][0]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
    }
    assert 9092 not in by_port
    # The Docker daemon's rule exists in remoteTls mode only.
    socket = policy_of(
        render(
            helm,
            [
                *MODES["socket"],
                "networkPolicy.egress.docker.to[0].ipBlock.cidr=10.30.0.5/32",
            ],
        )
    )
    assert 2376 not in {p["port"] for rule in socket["egress"] for p in rule["ports"]}


def test_metrics_and_health_only_from_the_named_peers(helm: str) -> None:
    docs = render(helm, MODES["socket"])
    (rule,) = policy_of(docs)["ingress"]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]
    assert rule["ports"] == [{"port": 6066, "protocol": "TCP"}]
    service_port = named(docs, "Service", WORKER)["spec"]["ports"][0]
    assert service_port["targetPort"] == "http"
    ports = container(worker_pod(docs), "worker")["ports"]
    assert [p["containerPort"] for p in ports] == [6066], "one port: /health and /metrics"


# --- Kafka security -----------------------------------------------------------------------


def config_of(docs: list[dict[str, Any]]) -> dict[str, str]:
    data: dict[str, str] = next(
        c for c in by_kind(docs, "ConfigMap") if c["metadata"]["name"] == "sw-streamworker"
    )["data"]
    return data


def test_kafka_plaintext_by_default_sets_nothing_else(helm: str) -> None:
    docs = render(helm, MODES["socket"])
    kafka = {k: v for k, v in config_of(docs).items() if k.startswith("STREAMWORKER_KAFKA_")}
    assert kafka == {
        "STREAMWORKER_KAFKA_BOOTSTRAP": "kafka:9092",
        "STREAMWORKER_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
    }
    pod = worker_pod(docs)
    assert "STREAMWORKER_KAFKA_SASL_PASSWORD" not in env_of(container(pod, "worker"))
    assert not [v for v in pod["volumes"] if v["name"] == "kafka-tls"]


def test_kafka_sasl_ssl_with_existing_secrets_and_a_client_certificate(helm: str) -> None:
    docs = render(helm, MODES["everything"])
    config = config_of(docs)
    assert config["STREAMWORKER_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert config["STREAMWORKER_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-256"
    assert config["STREAMWORKER_KAFKA_SASL_USERNAME"] == "worker"
    assert config["STREAMWORKER_KAFKA_SSL_CAFILE"] == f"{KAFKA_TLS_DIR}/ca.crt"
    assert config["STREAMWORKER_KAFKA_SSL_CERTFILE"] == f"{KAFKA_TLS_DIR}/tls.crt"
    assert config["STREAMWORKER_KAFKA_SSL_KEYFILE"] == f"{KAFKA_TLS_DIR}/tls.key"
    assert "STREAMWORKER_KAFKA_SASL_PASSWORD" not in config
    pod = worker_pod(docs)
    worker = container(pod, "worker")
    password = env_of(worker)["STREAMWORKER_KAFKA_SASL_PASSWORD"]
    assert password == {"secretKeyRef": {"name": "kafka-creds", "key": "pw"}}
    volume = next(v for v in pod["volumes"] if v["name"] == "kafka-tls")
    assert volume["secret"]["secretName"] == "kafka-tls"
    mount = next(m for m in worker["volumeMounts"] if m["name"] == "kafka-tls")
    assert mount == {"name": "kafka-tls", "mountPath": KAFKA_TLS_DIR, "readOnly": True}
    assert not [s for s in by_kind(docs, "Secret") if "sasl-password" in s.get("stringData", {})]


def test_kafka_inline_password_goes_to_a_secret_never_a_config_map(helm: str) -> None:
    docs = render(helm, MODES["kafka-sasl-inline"])
    config = config_of(docs)
    assert config["STREAMWORKER_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
    assert config["STREAMWORKER_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert not [k for k in config if k.startswith("STREAMWORKER_KAFKA_SSL_")]
    for config_map in by_kind(docs, "ConfigMap"):
        assert "kafka-s3cret" not in yaml.safe_dump(config_map)
    secret = next(
        s for s in by_kind(docs, "Secret") if s["metadata"]["name"] == "sw-streamworker-kafka"
    )
    assert secret["stringData"] == {"sasl-password": "kafka-s3cret"}
    password = env_of(container(worker_pod(docs), "worker"))["STREAMWORKER_KAFKA_SASL_PASSWORD"]
    assert password == {"secretKeyRef": {"name": "sw-streamworker-kafka", "key": "sasl-password"}}


def test_kafka_ssl_without_a_secret_trusts_the_system_cas(helm: str) -> None:
    config = config_of(render(helm, [*MODES["dind"], "kafka.security.protocol=SSL"]))
    assert config["STREAMWORKER_KAFKA_SECURITY_PROTOCOL"] == "SSL"
    assert not [
        k for k in config if k.startswith(("STREAMWORKER_KAFKA_SSL_", "STREAMWORKER_KAFKA_SASL_"))
    ]


# --- the gateway --------------------------------------------------------------------------

GATEWAY_MODES = [m for m in MODES if "gateway.enabled=false" not in MODES[m]]
CALLBACK_VARIABLE = "STREAMWORKER_GATEWAY_CALLBACK_SECRET"
CALLBACK_CIDRS = "gateway.networkPolicy.egress.callbacks.cidrs"


@pytest.mark.parametrize("mode", GATEWAY_MODES)
def test_gateway_never_gets_docker_or_privileges(helm: str, mode: str) -> None:
    """Whatever the worker's Docker mode: no socket, no hostPath, no Docker certificates,
    no DinD sidecar, nothing privileged, and the worker's locked-down contexts."""
    docs = render(helm, MODES[mode])
    pod = gateway_pod(docs)
    assert [c["name"] for c in pod["containers"]] == ["gateway"]
    assert "initContainers" not in pod
    assert pod["automountServiceAccountToken"] is False
    worker_ctx = worker_pod(docs)["securityContext"]
    assert "supplementalGroups" not in pod["securityContext"], "not the socket's group"
    assert pod["securityContext"] == {
        k: v for k, v in worker_ctx.items() if k != "supplementalGroups"
    }
    ctx = pod["securityContext"]
    assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] == 10001
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    gateway = container(pod, "gateway")
    sec = gateway["securityContext"]
    assert sec == container(worker_pod(docs), "worker")["securityContext"]
    assert sec["readOnlyRootFilesystem"] is True and sec["allowPrivilegeEscalation"] is False
    assert sec["capabilities"]["drop"] == ["ALL"] and not sec.get("privileged")
    assert not any("hostPath" in v for v in pod["volumes"])
    assert {v["name"] for v in pod["volumes"]} <= {"tmp", "kafka-tls"}
    assert {m["mountPath"] for m in gateway["volumeMounts"]} <= {
        "/tmp",
        "/etc/streamworker/kafka-tls",
    }
    assert not [k for k in env_of(gateway) if k.startswith("DOCKER_")]
    assert "docker" not in yaml.safe_dump(pod).lower()


@pytest.mark.parametrize("mode", GATEWAY_MODES)
def test_gateway_secrets_only_from_secrets(helm: str, mode: str) -> None:
    docs = render(helm, MODES[mode])
    gateway = container(gateway_pod(docs), "gateway")
    secret_settings = {
        "STREAMWORKER_DATABASE_URL",
        "STREAMWORKER_KAFKA_SASL_PASSWORD",
        "STREAMWORKER_GATEWAY_TENANTS",
        "STREAMWORKER_GATEWAY_ADMIN_TOKENS",
        "STREAMWORKER_GATEWAY_CALLBACK_SECRET",
    }
    for entry in gateway["env"]:  # the list itself: a duplicate name must not hide
        if entry["name"] in secret_settings:
            assert set(entry) == {"name", "valueFrom"}, entry
            assert set(entry["valueFrom"]) == {"secretKeyRef"}, entry
    names = [entry["name"] for entry in gateway["env"]]
    assert len(names) == len(set(names)), names
    assert "STREAMWORKER_DATABASE_URL" in env_of(gateway)
    for config_map in by_kind(docs, "ConfigMap"):
        assert not secret_settings & set(config_map["data"]), config_map["metadata"]["name"]
        text = yaml.safe_dump(config_map)
        for secret in ("s3cret", TENANTS.split(":")[1].split(",")[0], CALLBACK_SECRET):
            assert secret not in text, config_map["metadata"]["name"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            [*MODES["dind"], f"gateway.config.{CALLBACK_VARIABLE}={CALLBACK_SECRET}"],
            "gateway.config.STREAMWORKER_GATEWAY_CALLBACK_SECRET would put a secret in a ConfigMap",
        ),
        (
            [*MODES["dind"], "gateway.config.STREAMWORKER_GATEWAY_TENANTS=a:b"],
            "gateway.config.STREAMWORKER_GATEWAY_TENANTS would put a secret in a ConfigMap",
        ),
        (
            [*MODES["dind"], "gateway.config.STREAMWORKER_GATEWAY_ADMIN_TOKENS=t"],
            "would put a secret in a ConfigMap: use gateway.auth.*",
        ),
        (
            [*MODES["dind"], "gateway.config.STREAMWORKER_DATABASE_URL=postgresql://u:p@h/d"],
            "would put a secret in a ConfigMap",
        ),
        (
            [*MODES["dind"], f"config.STREAMWORKER_GATEWAY_CALLBACK_SECRET={CALLBACK_SECRET}"],
            "config.STREAMWORKER_GATEWAY_CALLBACK_SECRET would put a secret in a ConfigMap",
        ),
        (
            [*MODES["dind"], "config.STREAMWORKER_GATEWAY_TENANTS=a:b"],
            "would put a secret in a ConfigMap",
        ),
        ([*MODES["dind"], "gateway.config.OTHER=1"], "gateway.config keys are STREAMWORKER_"),
        (
            [*MODES["dind"], "gateway.config.STREAMWORKER_GATEWAY_HOST=127.0.0.1"],
            "is set by the chart",
        ),
        (
            [*MODES["dind"], "gateway.auth.existingSecret=gw", "gateway.auth.tenants=a:b"],
            "give existingSecret or the inline tenants/adminTokens/callbackSecret, not both",
        ),
        (
            [*MODES["dind"], "gateway.ingress.enabled=true"],
            "gateway.ingress.hosts is required with gateway.ingress.enabled",
        ),
        (
            [*MODES["dind"], f"{CALLBACK_CIDRS}[0].except[0]=10.0.0.0/8"],
            "each entry is a CIDR or an ipBlock",
        ),
    ],
)
def test_gateway_refuses_secrets_in_config_maps_and_bad_values(
    helm: str, values: list[str], message: str
) -> None:
    assert message in refused(helm, values)


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels, matchExpressions with In/NotIn) against pod labels."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expr in selector.get("matchExpressions", []):
        value = labels.get(expr["key"])
        if expr["operator"] == "In" and value not in expr["values"]:
            return False
        if expr["operator"] == "NotIn" and value in expr["values"]:
            return False
    return True


def test_each_pod_is_selected_by_its_own_policy_only(helm: str) -> None:
    """Policies add up: were the gateway selected by the worker's policy too, it would get
    the worker's egress (in remoteTls mode the Docker daemon)."""
    docs = render(helm, MODES["remoteTls-secret"])
    worker_policy = policy_of(docs)["podSelector"]
    gateway_policy = policy_of(docs, GATEWAY)["podSelector"]
    pods = {
        "worker": named(docs, "Deployment", WORKER)["spec"]["template"]["metadata"]["labels"],
        "gateway": named(docs, "Deployment", GATEWAY)["spec"]["template"]["metadata"]["labels"],
        "migrate": by_kind(docs, "Job")[0]["spec"]["template"]["metadata"]["labels"],
    }
    assert matches(worker_policy, pods["worker"]) and matches(worker_policy, pods["migrate"])
    assert not matches(worker_policy, pods["gateway"])
    assert matches(gateway_policy, pods["gateway"])
    assert not matches(gateway_policy, pods["worker"])
    assert not matches(gateway_policy, pods["migrate"])


def test_gateway_policy_egress_to_dependencies_and_callback_cidrs_only(helm: str) -> None:
    docs = render(helm, MODES["gateway-full"])
    policy = policy_of(docs, GATEWAY)
    assert_every_rule_names_its_peers(policy)
    by_port = {p["port"]: rule["to"] for rule in policy["egress"] for p in rule["ports"]}
    assert set(by_port) == {53, 9092, 5432, 443, 80}, "no Docker (2376) even in remoteTls"
    assert (
        by_port[443]
        == by_port[80]
        == [
            {"ipBlock": {"cidr": "203.0.113.0/24"}},
            {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}},
        ]
    )
    assert by_port[9092] == [{"ipBlock": {"cidr": "10.20.0.0/24"}}]
    assert by_port[5432] == [{"podSelector": {"matchLabels": {"app": "postgres"}}}]
    (rule,) = policy["ingress"]
    assert rule["ports"] == [{"port": 2358, "protocol": "TCP"}]
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"name": "ingress-nginx"}}},
        {"namespaceSelector": {"matchLabels": {"name": "monitoring"}}},  # the scraper
    ]
    # The worker's policy stays as it was: no callbacks, no port 2358.
    worker = policy_of(docs)
    worker_ports = {p["port"] for rule in worker["egress"] for p in rule["ports"]}
    assert worker_ports == {53, 9092, 5432, 2376}
    assert [p["port"] for p in worker["ingress"][0]["ports"]] == [6066]
    # No callback CIDRs: no callback rule, and the scraper alone may call port 2358.
    plain = policy_of(render(helm, MODES["socket"]), GATEWAY)
    assert {p["port"] for rule in plain["egress"] for p in rule["ports"]} == {53, 9092, 5432}
    assert plain["ingress"][0]["from"] == [
        {"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}
    ]
