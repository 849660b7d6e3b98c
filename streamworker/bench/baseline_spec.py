"""The baselines' container payloads and `docker run` argv, derived from `container_config`.

Pure. Baselines A and B must pay for exactly the executor's hardening, so both start
from the executor's own create payload and change only what the baseline style needs:
the command (a shell that writes the source from `$SRC`, compiles, then runs) and, for
B, a readable log driver (`logs` cannot read from the `none` driver). `docker_run_argv`
refuses keys it does not know, so a new hardening flag in `spec.py` breaks the benchmark
loudly instead of silently making baseline A cheaper.
"""

from __future__ import annotations

import copy
import shlex
from collections.abc import Mapping
from typing import Any

from streamworker.bench.programs import Program
from streamworker.languages.registry import Language, expand
from streamworker.sandbox.spec import ContainerPolicy, container_config, sandbox_env

SOURCE_ENV = "SRC"
READABLE_LOGS = {"Type": "json-file", "Config": {}}


def shell_script(language: Language, memory_mb: int) -> str:
    """`sh -c` script: write `$SRC` to the source file (root is read-only), compile, exec
    (under `memory_mb`, which sizes a managed runtime's heap as the worker does)."""
    entry = language.source_file
    steps = [f'printf %s "${SOURCE_ENV}" > {shlex.quote(entry)}']
    if language.compile is not None:
        steps.append(shlex.join(expand(language.compile, entry)))
    steps.append("exec " + shlex.join(expand(language.run, entry, language.heap_mb(memory_mb))))
    return " && ".join(steps)


def baseline_config(
    image: str,
    policy: ContainerPolicy,
    labels: Mapping[str, str],
    language: Language,
    program: Program,
    readable_logs: bool,
) -> dict[str, Any]:
    """The executor's create payload, running the program directly instead of the helper."""
    env = sandbox_env(language.env)
    env[SOURCE_ENV] = program.source
    config = copy.deepcopy(container_config(image, policy, labels, env))
    config["Cmd"] = ["sh", "-c", shell_script(language, policy.memory_mb)]
    if readable_logs:
        config["HostConfig"]["LogConfig"] = dict(READABLE_LOGS)
    return config


# Keys that only restate what `docker run` (attached, no -i/-t) does anyway.
_CLI_DEFAULTS = {
    "AttachStdin": False,
    "OpenStdin": False,
    "Tty": False,
    "AttachStdout": None,  # the CLI attaches stdout/stderr to read the output
    "AttachStderr": None,
    "NetworkDisabled": True,  # implied by --network none
}
_HOST_DEFAULTS = {"Privileged": False, "PublishAllPorts": False}


def _top_level(config: Mapping[str, Any]) -> list[str]:
    args: list[str] = []
    for key, value in config.items():
        if key in ("Image", "Cmd", "HostConfig"):
            continue
        if key in _CLI_DEFAULTS:
            if _CLI_DEFAULTS[key] not in (None, value):
                raise ValueError(f"docker run cannot express {key}={value!r}")
        elif key == "Entrypoint":
            args += ["--entrypoint", " ".join(value)]
        elif key == "User":
            args += ["--user", str(value)]
        elif key == "WorkingDir":
            args += ["--workdir", str(value)]
        elif key == "Env":
            for item in value:
                args += ["--env", str(item)]
        elif key == "Labels":
            for name, label in value.items():
                args += ["--label", f"{name}={label}"]
        elif key == "StopSignal":
            args += ["--stop-signal", str(value)]
        else:
            raise ValueError(f"docker_run_argv does not know the create key {key!r}")
    return args


def _host_config(host: Mapping[str, Any]) -> list[str]:
    args: list[str] = []
    for key, value in host.items():
        if key in _HOST_DEFAULTS:
            if value != _HOST_DEFAULTS[key]:
                raise ValueError(f"docker run benchmark refuses HostConfig {key}={value!r}")
        elif key == "NetworkMode":
            args += ["--network", str(value)]
        elif key == "CapDrop":
            args += [a for cap in value for a in ("--cap-drop", cap)]
        elif key == "SecurityOpt":
            args += [a for opt in value for a in ("--security-opt", opt)]
        elif key == "ReadonlyRootfs":
            args += ["--read-only"] if value else []
        elif key == "Tmpfs":
            args += [a for path, opts in value.items() for a in ("--tmpfs", f"{path}:{opts}")]
        elif key in ("Memory", "MemorySwap", "PidsLimit", "ShmSize", "OomScoreAdj"):
            flag = {"Memory": "--memory", "MemorySwap": "--memory-swap"}.get(key)
            flag = flag or {"PidsLimit": "--pids-limit", "ShmSize": "--shm-size"}.get(key)
            args += [flag or "--oom-score-adj", str(value)]
        elif key == "NanoCpus":
            args += ["--cpus", f"{value / 1e9:g}"]
        elif key == "Ulimits":
            args += [a for u in value for a in ("--ulimit", f"{u['Name']}={u['Soft']}:{u['Hard']}")]
        elif key == "Init":
            args += ["--init"] if value else []
        elif key == "IpcMode":
            args += ["--ipc", str(value)]
        elif key == "AutoRemove":
            pass  # baseline A always passes --rm: that is the style it measures
        elif key == "LogConfig":
            args += ["--log-driver", str(value["Type"])]
            args += [
                a for k, v in value.get("Config", {}).items() for a in ("--log-opt", f"{k}={v}")
            ]
        elif key == "RestartPolicy":
            args += ["--restart", str(value["Name"])]
        else:
            raise ValueError(f"docker_run_argv does not know HostConfig key {key!r}")
    return args


def docker_run_argv(docker_cli: str, config: Mapping[str, Any]) -> list[str]:
    """`docker run --rm …` with every setting of a create payload as a CLI flag."""
    return [
        docker_cli,
        "run",
        "--rm",
        *_top_level(config),
        *_host_config(config["HostConfig"]),
        str(config["Image"]),
        *[str(part) for part in config["Cmd"]],
    ]
