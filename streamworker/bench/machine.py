"""Where and how the benchmark ran: recorded with every result, since ratios travel but
absolute numbers only mean something next to the machine they came from."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiodocker


def cgroup_version(root: Path = Path("/sys/fs/cgroup")) -> int:
    """2 on the unified hierarchy (it has `cgroup.controllers` at its root), else 1."""
    return 2 if (root / "cgroup.controllers").exists() else 1


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def memory_total_mib(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        return None
    return None


async def machine_info(docker: aiodocker.Docker) -> dict[str, Any]:
    """Cores, kernel, memory, Docker and cgroup versions, and how busy the host already is."""
    version = await docker.version()
    info = await docker.system.info()
    running = await docker.containers.list()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "memory_mib": memory_total_mib(),
        "docker_version": version.get("Version"),
        "docker_api_version": version.get("ApiVersion"),
        "storage_driver": info.get("Driver"),
        "cgroup_version": info.get("CgroupVersion") or str(cgroup_version()),
        "cgroup_driver": info.get("CgroupDriver"),
        "load_average_at_start": load_average(),
        "containers_running_at_start": len(running),
    }
