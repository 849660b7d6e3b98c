"""The container spec, byte for byte: every hardening setting, and the post-create check."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from streamworker.languages.registry import load_registry
from streamworker.sandbox.helper import HELPER_PATH
from streamworker.sandbox.spec import (
    LABEL_PREFIX,
    MEMORY_HEADROOM_MB,
    NOFILE_LIMIT,
    OOM_SCORE_ADJ,
    SANDBOX_PATH,
    SANDBOX_UID,
    WORKDIR,
    ContainerPolicy,
    attached_config,
    container_config,
    container_labels,
    container_name,
    limit_violations,
    sandbox_env,
)

POLICY = ContainerPolicy(memory_mb=256, processes=64, workspace_mb=128)
LABELS = container_labels("sub-1", "w1", "2024-01-01T00:00:00Z", "2024-01-01T00:01:00Z", "python")


def config(policy: ContainerPolicy = POLICY, env: dict[str, str] | None = None) -> dict[str, Any]:
    return container_config("rt-python:1", policy, LABELS, sandbox_env(env or {}))


def faithful_inspect(requested: dict[str, Any]) -> dict[str, Any]:
    """What `docker inspect` shows when the daemon kept everything."""
    return {
        "Config": {"User": requested["User"], "Env": requested["Env"]},
        "HostConfig": copy.deepcopy(requested["HostConfig"]),
    }


class TestContainerConfig:
    def test_image_and_idle_helper(self) -> None:
        cfg = config()
        assert cfg["Image"] == "rt-python:1"
        assert cfg["Cmd"] == [HELPER_PATH, "idle"]
        assert cfg["Entrypoint"] == []
        assert cfg["WorkingDir"] == WORKDIR == "/workspace"
        assert cfg["Labels"] == LABELS

    def test_non_root_user(self) -> None:
        assert SANDBOX_UID != 0
        assert config()["User"] == f"{SANDBOX_UID}:{SANDBOX_UID}"

    def test_no_network(self) -> None:
        cfg = config()
        assert cfg["NetworkDisabled"] is True
        assert cfg["HostConfig"]["NetworkMode"] == "none"
        assert cfg["HostConfig"]["PublishAllPorts"] is False
        assert "PortBindings" not in cfg["HostConfig"]
        assert "ExposedPorts" not in cfg

    def test_no_privileges(self) -> None:
        host = config()["HostConfig"]
        assert host["CapDrop"] == ["ALL"]
        assert "CapAdd" not in host
        assert host["SecurityOpt"] == ["no-new-privileges"]
        assert host["Privileged"] is False
        assert host["IpcMode"] == "private"
        assert "Binds" not in host and "Mounts" not in host
        assert "Devices" not in host
        assert host.get("PidMode") in (None, "")

    def test_read_only_root_and_tmpfs(self) -> None:
        host = config(ContainerPolicy(memory_mb=256, processes=64, workspace_mb=100, tmp_mb=50))[
            "HostConfig"
        ]
        assert host["ReadonlyRootfs"] is True
        assert set(host["Tmpfs"]) == {WORKDIR, "/tmp"}
        for path, opts in host["Tmpfs"].items():
            options = opts.split(",")
            assert "nosuid" in options, path
            assert "nodev" in options, path
            assert any(o.startswith("size=") for o in options), path
        assert "size=100m" in host["Tmpfs"][WORKDIR].split(",")
        assert f"uid={SANDBOX_UID}" in host["Tmpfs"][WORKDIR].split(",")
        assert "size=50m" in host["Tmpfs"]["/tmp"].split(",")

    def test_memory_without_swap(self) -> None:
        host = config()["HostConfig"]
        expected = (POLICY.memory_mb + MEMORY_HEADROOM_MB) * 1024 * 1024
        assert host["Memory"] == expected
        assert host["MemorySwap"] == host["Memory"]
        assert host.get("OomKillDisable") in (None, False)

    def test_a_host_wide_oom_takes_a_sandbox_first(self) -> None:
        # Kafka, PostgreSQL and the worker keep the default 0; a sandbox goes before them.
        assert config()["HostConfig"]["OomScoreAdj"] == OOM_SCORE_ADJ == 500

    def test_pids_and_cpus(self) -> None:
        host = config(ContainerPolicy(memory_mb=64, processes=10, workspace_mb=8, cpus=0.5))[
            "HostConfig"
        ]
        assert 10 <= host["PidsLimit"] <= 16
        assert host["NanoCpus"] == 500_000_000

    def test_ulimits(self) -> None:
        policy = ContainerPolicy(memory_mb=64, processes=10, workspace_mb=8, file_size_kb=100)
        ulimits = {u["Name"]: u for u in config(policy)["HostConfig"]["Ulimits"]}
        assert ulimits["core"] == {"Name": "core", "Soft": 0, "Hard": 0}
        assert ulimits["fsize"] == {"Name": "fsize", "Soft": 102400, "Hard": 102400}
        assert ulimits["nofile"] == {"Name": "nofile", "Soft": NOFILE_LIMIT, "Hard": NOFILE_LIMIT}

    def test_init_and_lifecycle(self) -> None:
        cfg = config()
        host = cfg["HostConfig"]
        assert host["Init"] is True
        assert host["AutoRemove"] is False  # the worker removes it, after reading figures
        assert host["RestartPolicy"] == {"Name": "no"}
        assert host["LogConfig"]["Type"] == "none"
        assert cfg["StopSignal"] == "SIGKILL"
        assert cfg["Tty"] is False
        assert cfg["OpenStdin"] is False

    def test_env_is_only_the_sandbox_env(self) -> None:
        assert config()["Env"] == sorted(
            ["HOME=/tmp", "LANG=C.UTF-8", f"PATH={SANDBOX_PATH}", "TMPDIR=/tmp"]
        )

    def test_worker_environment_never_leaks(self, monkeypatch: pytest.MonkeyPatch) -> None:
        secret = "s3cr3t-t0ken-do-not-leak"
        monkeypatch.setenv("STREAMWORKER_DATABASE_URL", f"postgresql://u:{secret}@db/x")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
        monkeypatch.setenv("DOCKER_HOST", "tcp://10.0.0.1:2376")
        monkeypatch.setenv("PATH", f"/home/{secret}/bin:/usr/bin")
        go = load_registry()["go"]
        cfg = container_config("rt-go", POLICY, LABELS, sandbox_env(go.env))
        dumped = json.dumps(cfg)
        assert secret not in dumped
        assert "10.0.0.1" not in dumped
        names = {item.split("=", 1)[0] for item in cfg["Env"]}
        assert names == {"PATH", "HOME", "LANG", "TMPDIR", *go.env}
        assert not any(n.startswith(("STREAMWORKER_", "DOCKER_", "AWS_")) for n in names)

    def test_env_is_sorted_and_deterministic(self) -> None:
        env = {"ZED": "1", "ALPHA": "2"}
        cfg = config(env=env)
        assert cfg["Env"] == sorted(cfg["Env"])
        assert config(env=env) == cfg

    def test_config_is_json_serialisable(self) -> None:
        assert json.loads(json.dumps(config())) == config()


class TestAttachedConfig:
    def test_serving_helper_is_pid_1_with_stdin_open_across_runs(self) -> None:
        cfg = attached_config(config())
        assert cfg["Cmd"] == [HELPER_PATH, "serve"]
        assert cfg["OpenStdin"] is True and cfg["StdinOnce"] is True and cfg["Tty"] is False
        # No init: it would hold the attached stdio, open to the program via /proc/1/fd.
        assert cfg["HostConfig"]["Init"] is False

    def test_everything_else_is_the_cold_config(self) -> None:
        cold = config()
        cfg = attached_config(cold)
        assert cold["HostConfig"]["Init"] is True and cold["Cmd"] == [HELPER_PATH, "idle"]
        assert {k: v for k, v in cfg["HostConfig"].items() if k != "Init"} == {
            k: v for k, v in cold["HostConfig"].items() if k != "Init"
        }
        same = {"Image", "User", "WorkingDir", "Env", "Labels", "NetworkDisabled", "StopSignal"}
        assert {k: cfg[k] for k in same} == {k: cold[k] for k in same}

    def test_the_kept_settings_are_checked_like_cold_ones(self) -> None:
        cfg = attached_config(config())
        assert limit_violations(cfg, faithful_inspect(cfg)) == []
        inspected = faithful_inspect(cfg)
        inspected["HostConfig"]["Init"] = True
        assert any("Init" in p for p in limit_violations(cfg, inspected))


def test_sandbox_env() -> None:
    assert sandbox_env({}) == {
        "PATH": SANDBOX_PATH,
        "HOME": "/tmp",
        "LANG": "C.UTF-8",
        "TMPDIR": "/tmp",
    }
    assert sandbox_env({"GOCACHE": "/tmp/go"})["GOCACHE"] == "/tmp/go"


def test_labels() -> None:
    labels = dict(LABELS)
    assert labels == {
        f"{LABEL_PREFIX}.service": "streamworker",
        f"{LABEL_PREFIX}.submission-id": "sub-1",
        f"{LABEL_PREFIX}.worker-id": "w1",
        f"{LABEL_PREFIX}.created-at": "2024-01-01T00:00:00Z",
        f"{LABEL_PREFIX}.deadline-at": "2024-01-01T00:01:00Z",
        f"{LABEL_PREFIX}.language": "python",
    }


def test_pool_labels_name_the_pool_instead_of_a_submission() -> None:
    labels = container_labels(None, "w1", "2024-01-01T00:00:00Z", "2024-01-01T00:01:00Z", "c")
    assert labels == {
        f"{LABEL_PREFIX}.service": "streamworker",
        f"{LABEL_PREFIX}.pool": "c",
        f"{LABEL_PREFIX}.worker-id": "w1",
        f"{LABEL_PREFIX}.created-at": "2024-01-01T00:00:00Z",
        f"{LABEL_PREFIX}.deadline-at": "2024-01-01T00:01:00Z",
        f"{LABEL_PREFIX}.language": "c",
    }


# --------------------------------------------------------------------------- limit_violations


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(inspected: dict[str, Any]) -> None:
        inspected["HostConfig"][key] = value

    return mutate


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    def mutate(inspected: dict[str, Any]) -> None:
        inspected["HostConfig"].pop(key, None)

    return mutate


def _user(user: str) -> Callable[[dict[str, Any]], None]:
    def mutate(inspected: dict[str, Any]) -> None:
        inspected["Config"]["User"] = user

    return mutate


def _ulimit(name: str, soft: int | None) -> Callable[[dict[str, Any]], None]:
    def mutate(inspected: dict[str, Any]) -> None:
        ulimits = inspected["HostConfig"]["Ulimits"]
        kept = [u for u in ulimits if u["Name"] != name]
        if soft is not None:
            kept.append({"Name": name, "Soft": soft, "Hard": soft})
        inspected["HostConfig"]["Ulimits"] = kept

    return mutate


VIOLATIONS: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("memory dropped", _set("Memory", 0), "Memory"),
    ("swap unlimited", _set("MemorySwap", -1), "MemorySwap"),
    ("pids dropped", _set("PidsLimit", 0), "PidsLimit"),
    ("pids missing", _drop("PidsLimit"), "PidsLimit"),
    ("rootfs writable", _set("ReadonlyRootfs", False), "ReadonlyRootfs"),
    ("cpus dropped", _set("NanoCpus", 0), "NanoCpus"),
    ("oom score dropped", _set("OomScoreAdj", 0), "OomScoreAdj"),
    ("oom score missing", _drop("OomScoreAdj"), "OomScoreAdj"),
    ("no init", _set("Init", None), "Init"),
    ("network bridge", _set("NetworkMode", "bridge"), "NetworkMode"),
    ("network host", _set("NetworkMode", "host"), "NetworkMode"),
    ("caps kept", _set("CapDrop", None), "capabilities"),
    ("caps added", _set("CapAdd", ["SYS_ADMIN"]), "capabilities"),
    ("nnp missing", _set("SecurityOpt", []), "no-new-privileges"),
    ("privileged", _set("Privileged", True), "Privileged"),
    ("tmpfs missing", _set("Tmpfs", {}), "Tmpfs"),
    ("tmpfs null", _set("Tmpfs", None), "Tmpfs"),
    ("ulimits dropped", _set("Ulimits", None), "Ulimit"),
    ("core ulimit missing", _ulimit("core", None), "Ulimit core"),
    ("fsize ulimit changed", _ulimit("fsize", 1 << 40), "Ulimit fsize"),
    ("nofile ulimit changed", _ulimit("nofile", 1 << 20), "Ulimit nofile"),
    ("user empty", _user(""), "root"),
    ("user root", _user("root"), "root"),
    ("user zero", _user("0"), "root"),
    ("user zero group", _user("0:65534"), "root"),
    ("user root group", _user("root:root"), "root"),
]


def test_faithful_inspect_has_no_violations() -> None:
    requested = config()
    assert limit_violations(requested, faithful_inspect(requested)) == []


def test_extra_daemon_defaults_are_not_violations() -> None:
    requested = config()
    inspected = faithful_inspect(requested)
    inspected["HostConfig"].update({"CpuShares": 0, "Dns": [], "CapAdd": None})
    assert limit_violations(requested, inspected) == []


@pytest.mark.parametrize(
    ("mutate", "needle"), [v[1:] for v in VIOLATIONS], ids=[v[0] for v in VIOLATIONS]
)
def test_each_dropped_setting_is_reported(
    mutate: Callable[[dict[str, Any]], None], needle: str
) -> None:
    requested = config()
    inspected = faithful_inspect(requested)
    mutate(inspected)
    problems = limit_violations(requested, inspected)
    assert problems, "nothing reported"
    assert any(needle in problem for problem in problems), problems


def test_one_changed_scalar_is_one_problem() -> None:
    requested = config()
    inspected = faithful_inspect(requested)
    inspected["HostConfig"]["Memory"] = 0
    assert len(limit_violations(requested, inspected)) == 1


def test_oom_kill_disable_is_not_requested() -> None:
    # cgroup v2 daemons discard it (inspect shows null even for false), so asking for it
    # would make every container fail the post-create check.
    assert "OomKillDisable" not in config()["HostConfig"]


@pytest.mark.parametrize("shown", [None, False])
def test_cgroup_v2_null_oom_kill_disable_is_not_a_violation(shown: bool | None) -> None:
    requested = config()
    inspected = faithful_inspect(requested)
    inspected["HostConfig"]["OomKillDisable"] = shown
    assert limit_violations(requested, inspected) == []


def test_empty_inspect_reports_everything() -> None:
    problems = limit_violations(config(), {})
    text = "\n".join(problems)
    for needle in ("Memory", "PidsLimit", "ReadonlyRootfs", "NetworkMode", "capabilities"):
        assert needle in text
    assert "root" in text
    assert len(problems) >= 12


def test_requested_config_is_not_mutated() -> None:
    requested = config()
    before = copy.deepcopy(requested)
    limit_violations(requested, {})
    assert requested == before


# ----------------------------------------------------------------------------- container_name

DOCKER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


@pytest.mark.parametrize("sid", ["sub-1", "tenant:42:sub", "a.b_c-d", "A" * 128, "...", "::", "0"])
def test_container_name_is_docker_safe_and_deterministic(sid: str) -> None:
    name = container_name(sid, 1)
    assert DOCKER_NAME.match(name), name
    assert name == container_name(sid, 1)
    assert name.startswith("streamworker-")


def digest(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()[:10]


def test_container_name_differs_per_attempt() -> None:
    assert container_name("sub-1", 1) != container_name("sub-1", 2)
    assert container_name("sub-1", 1) == f"streamworker-sub-1-{digest('sub-1')}-a1"
    assert container_name("sub-1", 2) == f"streamworker-sub-1-{digest('sub-1')}-a2"


def test_container_name_format() -> None:
    name = container_name("tenant:42/x", 3)
    assert re.fullmatch(r"streamworker-tenant-42-x-[0-9a-f]{10}-a3", name), name
    assert name == f"streamworker-tenant-42-x-{digest('tenant:42/x')}-a3"


def test_container_name_keeps_at_most_100_id_characters() -> None:
    sid = "A" * 128
    assert container_name(sid, 1) == f"streamworker-{'A' * 100}-{digest(sid)}-a1"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("x:1", "x-1"),
        ("t:a:b", "t-a-b"),
        ("s:1", "s-1"),
        ("A" * 100 + "x", "A" * 100 + "y"),  # same first 100 characters
    ],
)
def test_container_name_is_injective(a: str, b: str) -> None:
    assert container_name(a, 1) != container_name(b, 1)
