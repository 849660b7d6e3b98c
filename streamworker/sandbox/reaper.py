"""The orphan reaper: removes streamworker containers that outlived their deadline.

A worker killed with SIGKILL cannot remove its containers; every container carries a
`deadline-at` label, and any worker removes those past it (at start-up and periodically).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime

import aiodocker

from streamworker.sandbox.calls import DELETE_TIMEOUT_S, LIST_TIMEOUT_S, docker_call
from streamworker.sandbox.spec import LABEL_PREFIX

log = logging.getLogger(__name__)
POOL_NAME_PREFIX = "streamworker_pool-"
"""An idle pool container's name: the underscore keeps it apart from every submission's
(`spec.container_name`, always "streamworker-" first), whatever the submission id."""
POOL_ORPHAN_SLACK_S = 60.0
GONE = (404, 409)
"""Not found, or removal already in progress (e.g. by the reaper): either way, going."""
SERVICE_FILTER = {"label": [f"{LABEL_PREFIX}.service=streamworker"]}


def container_name_of(summary: Mapping[str, object], fallback: str = "") -> str:
    """The name in a `containers.list` entry, without Docker's leading slash."""
    names = summary.get("Names")
    first = names[0] if isinstance(names, list) and names else fallback
    return str(first).lstrip("/")


def is_expired(labels: Mapping[str, str], now: datetime) -> bool:
    """True when the container's deadline passed (or its label is unreadable)."""
    raw = labels.get(f"{LABEL_PREFIX}.deadline-at")
    if not raw:
        return True
    try:
        deadline = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return True
    return deadline <= now


def is_orphaned_pool_container(
    name: str,
    created_unix: float,
    now: datetime,
    max_idle_s: float,
    labels: Mapping[str, str] | None = None,
) -> bool:
    """An idle warm container its pool should have recycled long ago: its worker is gone.

    A taken container keeps its pool name only for a use shorter than
    `executor.RENAME_AFTER_S` (then it is renamed after its submission), and is taken
    only while younger than its idle limit, so `idle-until` (the limit plus a minute)
    cannot pass under a use; idle ones match.
    "Long ago" is the owner's own idle limit when the container carries it
    (`idle-until`): on a daemon shared by workers with different pool settings, one
    worker's reaper must not take another's idle containers by its own clock.
    `max_idle_s` (the reaper's) is the fallback for containers without the label.
    """
    if not name.startswith(POOL_NAME_PREFIX):
        return False
    raw = (labels or {}).get(f"{LABEL_PREFIX}.idle-until")
    if raw:
        try:
            return datetime.fromisoformat(raw.replace("Z", "+00:00")) <= now
        except ValueError:
            pass  # unreadable: judged by the reaper's own limit below
    return now.timestamp() - created_unix > max_idle_s + POOL_ORPHAN_SLACK_S


async def reap_expired(
    docker: aiodocker.Docker, now: datetime, pool_max_idle_s: float = 300.0
) -> list[str]:
    """Remove every expired streamworker container; returns the names removed.

    A daemon that does not answer ends the round with `DockerUnavailable`."""
    removed: list[str] = []
    containers = await docker_call(
        docker.containers.list(all=True, filters=json.dumps(SERVICE_FILTER)), LIST_TIMEOUT_S, "list"
    )
    for container in containers:
        labels = container._container.get("Labels") or {}
        name = container_name_of(container._container, container.id)
        created = float(container._container.get("Created") or 0)
        if not (
            is_expired(labels, now)
            or is_orphaned_pool_container(name, created, now, pool_max_idle_s, labels)
        ):
            continue
        try:
            await docker_call(container.delete(force=True, v=True), DELETE_TIMEOUT_S, "delete")
            removed.append(name)
        except aiodocker.DockerError as exc:
            if exc.status not in GONE:
                log.warning("reaper could not remove %s: %s", name, exc.message)
    if removed:
        log.info("reaper removed %d expired container(s): %s", len(removed), removed)
    return removed


async def remove_submission_containers(docker: aiodocker.Docker, submission_id: str) -> int:
    """Remove every container of an earlier attempt of this submission (a retry's cleanup).

    Raises `DockerUnavailable` (retriable) when the daemon does not answer in time."""
    filters = {"label": [f"{LABEL_PREFIX}.submission-id={submission_id}"]}
    count = 0
    listing = docker.containers.list(all=True, filters=json.dumps(filters))
    for container in await docker_call(listing, LIST_TIMEOUT_S, "list"):
        try:
            await docker_call(container.delete(force=True, v=True), DELETE_TIMEOUT_S, "delete")
            count += 1
        except aiodocker.DockerError as exc:
            if exc.status not in GONE:
                raise
    if count:
        log.info("removed %d leftover container(s) of %s", count, submission_id)
    return count
