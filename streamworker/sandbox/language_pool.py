"""The warm pool of one language: ready containers, waiters, and the refill loop.

A container costs ~200 ms to create and start; a pooled one is taken in microseconds.
A used one comes back once its helper wiped it (`recycle`), up to
`Settings.pool_max_uses` submissions and the max idle age; until then the pool counts it
as on its way back (`lent`), so a take does not start a create that its return would
make surplus. Each pool refills in the background. Its target size follows the observed
take rate (`pool_sizing`: rate times refill time, plus a spare), a miss raises it at
once, and what misses added is given back one container per idle-shrink period without
a miss, never below the rate-based size; all within [min, max] (min may be 0).
`PoolManager` (in `pool`) owns the pools.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
import uuid
from collections import deque
from datetime import timedelta

import aiodocker

from streamworker import metrics
from streamworker.contract import iso, now_utc
from streamworker.languages.registry import Language
from streamworker.sandbox.calls import INSPECT_TIMEOUT_S, docker_call
from streamworker.sandbox.container import start_served
from streamworker.sandbox.policy import max_time_budget_s, pool_policy
from streamworker.sandbox.pool_sizing import (
    ArrivalRate,
    RefillTime,
    creates_in_flight,
    retirement_age,
    target_size,
)
from streamworker.sandbox.pooled import PooledContainer, remove_later, remove_pooled
from streamworker.sandbox.reaper import POOL_NAME_PREFIX, POOL_ORPHAN_SLACK_S
from streamworker.sandbox.spec import (
    LABEL_PREFIX,
    attached_config,
    container_config,
    container_labels,
    sandbox_env,
)
from streamworker.settings import Settings

log = logging.getLogger(__name__)
IMAGE_CHECK_MIN_S = 1.0
"""The least time between two image inspections of one pool."""


class LanguagePool:
    """The ready containers of one language, refilled by one background task."""

    def __init__(
        self,
        docker: aiodocker.Docker,
        settings: Settings,
        language: Language,
        image: str,
        min_size: int,
        max_size: int,
    ) -> None:
        self.docker = docker
        self.settings = settings
        self.language = language
        self.image = image
        self.min_size = min_size
        self.max_size = max_size
        self.target = min_size
        self.max_idle_s = settings.pool_max_idle_s
        self.policy = pool_policy(language, settings)
        self._ready: deque[PooledContainer] = deque()
        self._waiters: deque[asyncio.Future[PooledContainer | None]] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.arrivals = ArrivalRate()
        self.refill = RefillTime()
        self._quiet_since = time.monotonic()
        """The last miss or shrink step: the target steps down once per idle-shrink period."""
        self._image_id: str | None = None
        self._image_checked = -math.inf
        self._failure: BaseException | None = None
        self.created = 0
        self.lent = 0
        """Taken containers expected back (`may_return`); they count as supply."""
        self.recycling = 0
        """Of those, the ones being wiped now (`recycling_started`): back in milliseconds."""

    @property
    def size(self) -> int:
        return len(self._ready)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(
                self._refill_forever(), name=f"pool-{self.language.id}"
            )

    def take(self) -> PooledContainer | None:
        """A ready container, or None (a miss: the caller runs cold, the pool grows)."""
        now = time.monotonic()
        self.arrivals.arrive(now)
        while self._ready:
            pooled = self._ready.popleft()
            if pooled.fresh(now, self.max_idle_s):
                metrics.POOL_HITS.labels(self.language.id).inc()
                self._lend(pooled)
                self._changed()
                return pooled
            self._discard(pooled)  # too old for its deadline label: recycle
        metrics.POOL_MISSES.labels(self.language.id).inc()
        if self.recycling <= self.waiting or self.settings.pool_wait_s <= 0:
            # A burst outruns the smoothed rate: grow now, by one per miss; not when a
            # container being wiped is free for this take (back long before a create).
            self.target = min(self.max_size, max(self.target, self.rate_based_size(now)) + 1)
            metrics.POOL_TARGET.labels(self.language.id).set(self.target)
            self._quiet_since = now
        self._changed()
        return None

    async def acquire(self, wait_s: float) -> PooledContainer | None:
        """A ready container, else the next one the pool makes if it comes within
        `wait_s`; None means run cold. Waiting instead of creating a second container
        next to the pool's keeps a burst from paying for every container twice."""
        pooled = self.take()
        if pooled is not None or wait_s <= 0 or self._task is None:
            return pooled
        began = time.monotonic()
        fut: asyncio.Future[PooledContainer | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self._changed()
        try:
            async with asyncio.timeout(wait_s):
                pooled = await fut
        except TimeoutError:
            pooled = _claimed(fut)
        except asyncio.CancelledError:
            claimed = _claimed(fut)
            if claimed is not None:
                self.give_up(claimed)
                self._discard(claimed)
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(fut)
        outcome = "served" if pooled is not None else "cold"
        metrics.POOL_WAIT_SECONDS.labels(self.language.id, outcome).observe(
            time.monotonic() - began
        )
        return pooled

    @property
    def waiting(self) -> int:
        return sum(1 for f in self._waiters if not f.done())

    def _hand_over(self, pooled: PooledContainer) -> bool:
        """Give a new container to the longest-waiting run, if any still waits."""
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                self._lend(pooled)
                fut.set_result(pooled)
                return True
        return False

    def may_return(self, pooled: PooledContainer) -> bool:
        """Whether a container may serve another submission after its current one."""
        return (
            pooled.uses < self.settings.pool_max_uses
            and pooled.fresh(time.monotonic(), self.max_idle_s)
            and self._task is not None
            and (self._image_id is None or pooled.image_id == self._image_id)
        )

    def _lend(self, pooled: PooledContainer) -> None:
        pooled.uses += 1
        pooled.lent = self.may_return(pooled)
        self.lent += pooled.lent

    def recycling_started(self, pooled: PooledContainer) -> None:
        """A lent container's use ended cleanly and `recycle` wipes it now."""
        if pooled.lent and not pooled.recycling:
            pooled.recycling = True
            self.recycling += 1

    def give_up(self, pooled: PooledContainer) -> None:
        """A taken container will not come back (its caller removes it): refill for it."""
        if pooled.recycling:
            pooled.recycling = False
            self.recycling -= 1
        if pooled.lent:
            pooled.lent = False
            self.lent -= 1
            self._changed()

    def put_back(self, pooled: PooledContainer) -> bool:
        """A used container, wiped and renamed by `recycle`: ready again (first in line,
        so that one container serves a slow stream of submissions), unless it has served
        its uses, aged, is of a replaced image or the pool is draining. False: the
        caller removes it."""
        self.give_up(pooled)
        if not self.may_return(pooled):
            return False
        metrics.POOL_REUSES.labels(self.language.id).inc()
        if not self._hand_over(pooled):
            self._ready.appendleft(pooled)
        self._changed()
        return True

    def _release_waiters(self) -> None:
        """Nothing more will come (drain): let every waiter run cold now."""
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)

    def _changed(self) -> None:
        metrics.POOL_SIZE.labels(self.language.id).set(len(self._ready))
        self._wake.set()

    def discard_all(self) -> None:
        """The daemon restarted: every ready container died with it. Refilling goes on."""
        while self._ready:
            self._discard(self._ready.popleft())
        self._changed()

    async def drain(self) -> None:
        """Stop refilling and remove every idle container."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._release_waiters()
        while self._ready:
            await remove_pooled(self._ready.popleft())
        self._changed()

    async def _refill_forever(self) -> None:
        """Keep `target` containers ready plus one per waiting run that no container being
        wiped will serve, creating a few at a time as a pipeline: a new create starts as
        soon as one finishes."""
        creating: set[asyncio.Task[None]] = set()

        def finished(task: asyncio.Task[None]) -> None:
            creating.discard(task)
            if not task.cancelled() and task.exception() is not None:
                self._failure = task.exception()
            self._wake.set()

        try:
            while True:
                self._wake.clear()
                due_s = math.inf
                try:
                    if self._failure is not None:
                        failure, self._failure = self._failure, None
                        raise failure
                    await self._check_image()
                    due_s = self._recycle_old()
                    self._resize()
                    supply = len(self._ready) + len(creating) + self.lent
                    # A waiter that a container being wiped will serve needs no create.
                    unserved = max(0, self.waiting - self.recycling)
                    missing = self.target + unserved - supply
                    # Two at a time (up to four while runs wait): enough to keep up with
                    # a burst, not enough to thrash; more only when the observed rate
                    # needs more replacements under way than that (Little's law).
                    parallel = max(2, min(4, self.waiting), self._creates_needed())
                    while missing > 0 and len(creating) < parallel:
                        task = asyncio.create_task(self._add())
                        creating.add(task)
                        task.add_done_callback(finished)
                        missing -= 1
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # Docker down or image missing: retry later
                    log.warning("pool %s refill failed: %s", self.language.id, exc)
                    await asyncio.sleep(2.0)
                    continue
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(self.settings.pool_check_interval_s, due_s)):
                        await self._wake.wait()
        finally:
            for task in list(creating):
                task.cancel()
            await asyncio.gather(*creating, return_exceptions=True)

    async def _add(self) -> None:
        began = time.monotonic()
        pooled = await self._create()
        pooled.max_age_s = retirement_age(self.max_idle_s, random.random())
        elapsed = time.monotonic() - began
        self.refill.observe(elapsed)
        metrics.POOL_REFILL_SECONDS.labels(self.language.id).observe(elapsed)
        if not self._hand_over(pooled):
            self._ready.append(pooled)
        self._changed()

    def _recycle_old(self) -> float:
        """Idle containers past their age limit go (the reaper treats them as orphans a
        minute after the max idle age); the seconds until the next one is due, so that
        an idle pool retires each at its own age, not all at the next periodic check."""
        now = time.monotonic()
        for pooled in [p for p in self._ready if not p.fresh(now, self.max_idle_s)]:
            self._ready.remove(pooled)
            self._discard(pooled)
        return min((p.retires_in(now, self.max_idle_s) for p in self._ready), default=math.inf)

    def rate_based_size(self, now: float) -> int:
        """The size the observed take rate and refill time call for (`pool_sizing`)."""
        rate = self.arrivals.rate(now)
        return target_size(rate, self.refill.seconds, self.min_size, self.max_size)

    def _creates_needed(self) -> int:
        rate = self.arrivals.rate(time.monotonic())
        return min(self.target, creates_in_flight(rate, self.refill.seconds))

    def _resize(self) -> None:
        """Follow the rate-based size: up at once; above it, give back one container per
        idle-shrink period without a miss (an idle pool has none), never below it."""
        now = time.monotonic()
        sized = self.rate_based_size(now)
        if self.target < sized:
            self.target = sized
        elif self.target > sized and now - self._quiet_since > self.settings.pool_idle_shrink_s:
            self.target -= 1
            self._quiet_since = now
        metrics.POOL_TARGET.labels(self.language.id).set(self.target)
        metrics.POOL_ARRIVAL_RATE.labels(self.language.id).set(self.arrivals.rate(now))
        while len(self._ready) > self.target:
            self._discard(self._ready.pop())

    async def _check_image(self) -> None:
        """A rebuilt image means the pool's containers are stale: drain them. (At most
        once a second: the loop wakes on every take.)"""
        if time.monotonic() - self._image_checked < IMAGE_CHECK_MIN_S:
            return
        info = await docker_call(
            self.docker.images.inspect(self.image), INSPECT_TIMEOUT_S, "image inspect"
        )
        self._image_checked = time.monotonic()
        image_id = str(info["Id"])
        if self._image_id is not None and image_id != self._image_id:
            log.info("image %s changed; draining the %s pool", self.image, self.language.id)
        self._image_id = image_id
        # By container, not by event: one created while the tag moved is stale as well.
        stale = [p for p in self._ready if p.image_id != image_id]
        for pooled in stale:
            self._ready.remove(pooled)
            self._discard(pooled)
        if stale:
            self._changed()

    def _discard(self, pooled: PooledContainer) -> None:
        remove_later(pooled)

    async def _create(self) -> PooledContainer:
        created = now_utc()
        budget = self.settings.pool_max_idle_s + max_time_budget_s(self.settings)
        labels = container_labels(
            None,
            self.settings.worker_id,
            iso(created) or "",
            iso(created + timedelta(seconds=budget)) or "",
            self.language.id,
        )
        # Its own idle limit, for every worker's reaper on a shared daemon (`reaper`).
        idle_until = created + timedelta(seconds=self.max_idle_s + POOL_ORPHAN_SLACK_S)
        labels[f"{LABEL_PREFIX}.idle-until"] = iso(idle_until) or ""
        env = sandbox_env(self.language.env)
        config = attached_config(container_config(self.image, self.policy, labels, env))
        served = await start_served(self.docker, config, pool_container_name(self.language.id))
        self.created += 1
        return PooledContainer(
            served.container,
            served.stream,
            served.image_id,
            self.policy,
            time.monotonic(),
            self.language.id,
        )


def pool_container_name(language_id: str) -> str:
    """A fresh name of an idle pool container (the reaper tells them by the prefix)."""
    return f"{POOL_NAME_PREFIX}{language_id}-{uuid.uuid4().hex[:12]}"


def _claimed(fut: asyncio.Future[PooledContainer | None]) -> PooledContainer | None:
    """The container handed to a waiter that stopped waiting at the same moment."""
    if fut.done() and not fut.cancelled():
        return fut.result()
    fut.cancel()
    return None
