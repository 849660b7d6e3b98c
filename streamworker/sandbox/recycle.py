"""A used pooled container made as fit for its next submission as a new one, or removed.

Every process of the run is gone when its last step is answered (the helper, PID 1,
reaps them all). What else a run could leave is state in the container: files in the
work dir, /tmp and /dev/shm, POSIX and System V IPC objects, marks on the work dir, the
helper's snapshot, the limits a compile or a run set, the submission's name (only a use
longer than `executor.RENAME_AFTER_S` takes it). The helper wipes the first ones
(`AttachedSession.wipe`, `--reset 2`), the limits are set back and a renamed container
gets a pool name again. Anything short of that, and it is removed like a single-use
container. All of it runs off the hot path, after the verdict.
"""

from __future__ import annotations

import asyncio
import logging

from streamworker import metrics
from streamworker.sandbox.calls import RENAME_TIMEOUT_S, docker_call
from streamworker.sandbox.container import AttachedSession
from streamworker.sandbox.language_pool import LanguagePool, pool_container_name
from streamworker.sandbox.pooled import PooledContainer, remove_pooled

log = logging.getLogger(__name__)


async def recycle(pool: LanguagePool, pooled: PooledContainer, session: AttachedSession) -> None:
    """Wipe, reset and rename `pooled`, then hand it back to `pool`; raises nothing but
    its own cancellation (after removing the container)."""
    try:
        await session.wipe()
        home = (pooled.policy.memory_mb, pooled.policy.processes)
        if session.limited is not None and session.limited != home:
            await session.restrict(*home)
        if pooled.renamed:  # a long use took the submission's name; short ones keep theirs
            rename = pooled.container.rename(pool_container_name(pool.language.id))
            await docker_call(rename, RENAME_TIMEOUT_S, "rename")
            pooled.renamed = False
    except asyncio.CancelledError:
        pool.give_up(pooled)
        await asyncio.shield(remove_pooled(pooled))
        raise
    except Exception as exc:  # whatever went wrong, the container is not fit: remove it
        metrics.POOL_RECYCLE_FAILURES.labels(pool.language.id).inc()
        log.warning("recycling a %s container failed, removing it: %s", pool.language.id, exc)
        pool.give_up(pooled)
        await remove_pooled(pooled)
        return
    if not pool.put_back(pooled):
        await remove_pooled(pooled)
