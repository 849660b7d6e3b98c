"""Resume a rebalanced worker's stream partitions only after they are seeked.

Faust's `Recovery.on_recovery_completed` (faust-streaming 0.15) resumes the stream
partitions, then seeks them to their committed offsets, then resumes flow control, which
clears every agent queue. The fetcher is already running by then (recovery resumed the
flow for the changelogs), so events fetched while the seek is in flight are either
queued and then cleared, or dropped because their offsets are already marked read. They
are never fetched again, and since offsets commit only in order, that partition stops
for good: the scale-out test's surviving worker went silent with a kept partition's
events unanswered (tasks dump: agents idle, commits idle, committed offset stuck).

The order here closes that window: seek while the stream partitions are still paused
(nothing of theirs can be fetched or delivered), clear the queues, then resume them.
(Faust's table-less path, `_resume_streams`, has the same order; a streamworker app
always has its `answered` table, so it never takes that path.)

Once recovered, the active changelog partitions are also paused in aiokafka itself.
Faust only drops them from the partitions it asks for, so aiokafka kept fetching them:
each committed result's `answered` mark came back as a changelog record nobody consumed,
and aiokafka's fixed 100 ms prefetch backoff then held every fetch from that broker,
the next submission included (found in the sequential bench: 1 in 3 submissions
~105 ms late, 0 once paused). A rebalance builds a fresh aiokafka assignment, unpaused,
so the next recovery can read them again; standby partitions stay unpaused (Faust keeps
reading those).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any, cast

from aiokafka import TopicPartition
from faust.tables import TableManager
from faust.tables.recovery import Recovery
from faust.types import TP


def changelogs_to_pause(
    assignment: Iterable[TP], is_changelog: Callable[[TP], bool], standbys: Iterable[TP]
) -> set[TopicPartition]:
    """The assigned changelog partitions Faust no longer reads once recovered."""
    keep = set(standbys)
    return {
        TopicPartition(tp.topic, tp.partition)
        for tp in assignment
        if is_changelog(tp) and tp not in keep
    }


async def pause_in_client(consumer: Any, partitions: set[TopicPartition]) -> None:
    """Pause `partitions` in the aiokafka consumer that Faust runs in its own thread
    (Faust's `pause_partitions` only changes what Faust asks that consumer for)."""
    if not partitions:
        return
    thread = consumer._thread

    async def pause() -> None:
        thread._ensure_consumer().pause(*partitions)

    await thread.call_thread(pause)


# A subclass because Faust has no hook into the order of `on_recovery_completed`: the
# whole method is replaced (kept close to Faust's own so upgrades can be compared).
class SeekThenResumeRecovery(Recovery):
    """`Recovery` whose completion seeks stream partitions before resuming them."""

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        app, consumer = self.app, self.app.consumer
        self.log.info("Restore complete!")
        await app.on_rebalance_complete.send()
        self._set_recovery_ended()
        tables = [
            asyncio.ensure_future(
                table.on_recovery_completed(
                    self.actives_for_table[table], self.standbys_for_table[table]
                )
            )
            for table in self.tables.values()
        ]
        if tables:
            await asyncio.wait(tables)
        if app.consumer_generation_id != generation_id:
            # Another rebalance began; its own recovery resumes the streams.
            self.log.warning(
                "Recovery rebalancing again: generation %s, recovered for %s",
                app.consumer_generation_id,
                generation_id,
            )
            return
        assignment = consumer.assignment()
        streams = {tp for tp in assignment if not self._is_changelog_tp(tp)}
        if assignment:
            self.log.info("Seek stream partitions to committed offsets (still paused).")
            await self._wait(consumer.perform_seek(), timeout=app.conf.broker_request_timeout)
        self.completed.set()
        # Clears the agent queues: nothing of the paused stream partitions is in them.
        app.flow_control.resume()
        consumer.resume_flow()
        consumer.resume_partitions(streams)
        await cast(Any, app)._fetcher.maybe_start()  # the App, not AppT, has it
        self.tables.on_actives_ready()
        if not app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        app.on_rebalance_end()
        idle = changelogs_to_pause(assignment, self._is_changelog_tp, self.standby_tps)
        await pause_in_client(consumer, idle)
        self.log.info("Worker ready (%d recovered changelog partitions paused)", len(idle))


# `App(TableManager=...)` is Faust's hook for the table manager, but the recovery it
# builds is not configurable: a subclass is the only way to hand it ours.
class SeekThenResumeTableManager(TableManager):
    """Faust's table manager with `SeekThenResumeRecovery` (`App(TableManager=...)`)."""

    @property
    def recovery(self) -> Any:
        if self._recovery is None:
            self._recovery = SeekThenResumeRecovery(
                self.app, self, beacon=self.beacon, loop=self.loop
            )
        return self._recovery
