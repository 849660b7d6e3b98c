"""Why a run has no helper report, as a type (the verdict never reads message text)."""

from __future__ import annotations

import enum


class FailureKind(enum.Enum):
    """How a run ended without the helper's report; `verdict.run_status` maps each."""

    WORKER_TIMEOUT = "worker_timeout"
    """No answer within the wall limit plus grace: the worker killed the container."""
    OUTPUT_FLOOD = "output_flood"
    """More bytes than the helper may relay: the worker killed the container."""
    HELPER_ERROR = "helper_error"
    """The helper refused the request (e.g. a file it could not write): our side."""
    OOM_KILLED = "oom_killed"
    """The container's cgroup ran out of memory and the OOM killer took the helper."""

    @property
    def ends_container(self) -> bool:
        """True when no later run can use the container (it was killed or died)."""
        return self is not FailureKind.HELPER_ERROR
