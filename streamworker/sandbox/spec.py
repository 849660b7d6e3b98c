"""The container spec: policy in, exact Docker create payload out. Pure; no I/O.

Every hardening decision lives here so it can be unit-tested byte for byte, and so
`limit_violations` can check after create that the daemon kept each one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streamworker.sandbox.helper import HELPER_PATH

SANDBOX_UID = 65534
WORKDIR = "/workspace"
SANDBOX_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LABEL_PREFIX = "org.streamworker"
NOFILE_LIMIT = 256
SHM_BYTES = 8 * 1024 * 1024
MEMORY_HEADROOM_MB = 16
"""The helper lives in the container's cgroup too; it gets a little extra."""
PIDS_HEADROOM = 4
"""The serving helper (PID 1), its runner and two spare are not the program's processes
(in an idle container driven by exec: init, the idle helper, the run helper, a spare)."""
OOM_SCORE_ADJ = 500
"""Raised OOM score: a host-wide OOM takes a sandbox before Kafka, PostgreSQL or the
worker (a program may raise its own score further, never lower it without
CAP_SYS_RESOURCE)."""


@dataclass(frozen=True)
class ContainerPolicy:
    """Resource caps fixed at create time for one submission's container."""

    memory_mb: int
    processes: int
    workspace_mb: int
    tmp_mb: int = 64
    cpus: float = 1.0
    file_size_kb: int = 65536


def container_name(submission_id: str, attempt: int) -> str:
    """Deterministic per submission attempt, so a retry finds and removes a leftover.

    The hash keeps ids that differ only in characters Docker names can't hold
    (`x:1` and `x-1`) from ever sharing a name.
    """
    return f"{container_name_stem(submission_id)}-a{attempt}"


def container_name_stem(submission_id: str) -> str:
    """What every attempt's container name of a submission starts with."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "-", submission_id)[:100]
    digest = hashlib.sha256(submission_id.encode()).hexdigest()[:10]
    return f"streamworker-{safe}-{digest}"


def container_labels(
    submission_id: str | None, worker_id: str, created_at: str, deadline_at: str, language: str
) -> dict[str, str]:
    """What the reaper and a retry find a container by. `submission_id` None: a warm
    pool's container, labelled with its pool (its name tells whose it becomes)."""
    owner = f"{LABEL_PREFIX}.pool" if submission_id is None else f"{LABEL_PREFIX}.submission-id"
    return {
        f"{LABEL_PREFIX}.service": "streamworker",
        owner: language if submission_id is None else submission_id,
        f"{LABEL_PREFIX}.worker-id": worker_id,
        f"{LABEL_PREFIX}.created-at": created_at,
        f"{LABEL_PREFIX}.deadline-at": deadline_at,
        f"{LABEL_PREFIX}.language": language,
    }


def sandbox_env(language_env: Mapping[str, str]) -> dict[str, str]:
    """The only environment the program sees: nothing of the worker's."""
    env = {"PATH": SANDBOX_PATH, "HOME": "/tmp", "LANG": "C.UTF-8", "TMPDIR": "/tmp"}
    env.update(language_env)
    return env


def container_config(
    image: str,
    policy: ContainerPolicy,
    labels: Mapping[str, str],
    env: Mapping[str, str],
) -> dict[str, Any]:
    """The `POST /containers/create` body for a hardened, idle sandbox container.

    Every submission's container is `attached_config` of this (served by `sw-run
    serve`); the idle form is what the benchmarks' exec floor and image checks run."""
    memory_bytes = (policy.memory_mb + MEMORY_HEADROOM_MB) * 1024 * 1024
    fsize = policy.file_size_kb * 1024
    return {
        "Image": image,
        "Cmd": [HELPER_PATH, "idle"],
        "Entrypoint": [],
        "User": f"{SANDBOX_UID}:{SANDBOX_UID}",
        "WorkingDir": WORKDIR,
        "Env": [f"{k}={v}" for k, v in sorted(env.items())],
        "Labels": dict(labels),
        "NetworkDisabled": True,
        "AttachStdin": False,
        "AttachStdout": False,
        "AttachStderr": False,
        "OpenStdin": False,
        "Tty": False,
        "StopSignal": "SIGKILL",
        "HostConfig": {
            "NetworkMode": "none",
            "CapDrop": ["ALL"],
            "SecurityOpt": ["no-new-privileges"],
            "ReadonlyRootfs": True,
            "Tmpfs": {
                WORKDIR: f"rw,exec,nosuid,nodev,size={policy.workspace_mb}m,"
                f"uid={SANDBOX_UID},gid={SANDBOX_UID},mode=0700",
                "/tmp": f"rw,exec,nosuid,nodev,size={policy.tmp_mb}m,mode=1777",
            },
            "Memory": memory_bytes,
            "MemorySwap": memory_bytes,
            "PidsLimit": policy.processes + PIDS_HEADROOM,
            "NanoCpus": int(policy.cpus * 1e9),
            "OomScoreAdj": OOM_SCORE_ADJ,
            "Ulimits": [
                {"Name": "core", "Soft": 0, "Hard": 0},
                {"Name": "fsize", "Soft": fsize, "Hard": fsize},
                {"Name": "nofile", "Soft": NOFILE_LIMIT, "Hard": NOFILE_LIMIT},
            ],
            "Init": True,
            "IpcMode": "private",
            "ShmSize": SHM_BYTES,
            "Privileged": False,
            "PublishAllPorts": False,
            "AutoRemove": False,
            "LogConfig": {"Type": "none", "Config": {}},
            "RestartPolicy": {"Name": "no"},
        },
    }


def attached_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """`config` for a container served by `sw-run serve` over an attach stream.

    Stdin stays open across runs (requests one after another) while the worker's attach
    lasts; `StdinOnce` closes it when that connection goes, so the helper reads EOF and
    exits when its worker dies (a `kill -9` leaves no container serving nobody).
    There is no init: the helper is PID 1, so nothing else holds the container's stdio
    (an init's fds would be open to a same-uid program through /proc/1/fd, letting it
    write into the stream) and nothing inside the container can signal the helper away.
    It reaps every orphan itself.
    """
    attached = dict(config)
    attached.update(
        {
            "Cmd": [HELPER_PATH, "serve"],
            "AttachStdin": True,
            "AttachStdout": True,
            "AttachStderr": True,
            "OpenStdin": True,
            "StdinOnce": True,
            "Tty": False,
        }
    )
    attached["HostConfig"] = {**config["HostConfig"], "Init": False}
    return attached


def limit_violations(requested: Mapping[str, Any], inspected: Mapping[str, Any]) -> list[str]:
    """Which requested hardening settings the daemon did not keep (empty when all kept).

    aiodocker drops create-time `Warnings`, so we compare the inspected HostConfig.
    """
    want = requested["HostConfig"]
    have = inspected.get("HostConfig", {})
    problems = []
    for key, wanted in want.items():
        # Every scalar limit or switch we asked for must come back unchanged.
        if isinstance(wanted, bool | int) and have.get(key) != wanted:
            problems.append(f"{key}: wanted {wanted!r}, daemon has {have.get(key)!r}")
    if have.get("NetworkMode") != "none":
        problems.append(f"NetworkMode: daemon has {have.get('NetworkMode')!r}")
    if "ALL" not in (have.get("CapDrop") or []) or have.get("CapAdd"):
        problems.append(f"capabilities: CapDrop={have.get('CapDrop')}, CapAdd={have.get('CapAdd')}")
    if "no-new-privileges" not in (have.get("SecurityOpt") or []):
        problems.append("SecurityOpt: no-new-privileges missing")
    if have.get("Privileged"):
        problems.append("Privileged is set")
    if set((have.get("Tmpfs") or {}).keys()) != set(want["Tmpfs"].keys()):
        problems.append(f"Tmpfs: daemon has {have.get('Tmpfs')!r}")
    have_ulimits = {u["Name"]: u for u in have.get("Ulimits") or []}
    for ulimit in want["Ulimits"]:
        if have_ulimits.get(ulimit["Name"]) != ulimit:
            problems.append(f"Ulimit {ulimit['Name']} missing or changed")
    user = inspected.get("Config", {}).get("User", "")
    if user in ("", "0", "root") or user.startswith(("0:", "root:")):
        problems.append(f"User: container would run as root ({user!r})")
    return problems
