"""`DeliveryPort` on Faust: the transactional producer, the consumer, the answered table.

Kafka's exception types stop here: a record Kafka refused becomes `OutputRejected`, a
transaction that can take no more output `TransactionBroken`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import faust
from aiokafka.errors import IllegalOperation, KafkaError, MessageSizeTooLargeError
from faust.exceptions import ProducerSendError
from faust.transport.consumer import Consumer
from faust.types import TableT, TopicT

from streamworker.errors import OutputRejected, TransactionBroken
from streamworker.worker.delivery import Output, Record

AckToken = tuple[Any, faust.EventT[bytes]]
"""The agent's manual-ack stream and one of its events (`Stream.ack` is not on StreamT)."""


def transaction_id(app: faust.App, source_topic: str, partition: int) -> str:
    """The id of the Kafka transaction Faust keeps open for one source partition."""
    group = app.assignor.group_for_topic(source_topic)
    return f"{app.conf.id}-{group}-{partition}"


class FaustPort:
    """Sends, commits and acks through one Faust app (implements `DeliveryPort`)."""

    def __init__(
        self,
        app: faust.App,
        source_topic: str,
        topics: Mapping[Output, TopicT],
        answered: TableT[Any, Any],
    ) -> None:
        self._app = app
        self._source_topic = source_topic
        self._topics = topics
        self._answered = answered

    @property
    def rebalancing(self) -> bool:
        return bool(self._app.rebalancing)

    def transaction_id(self, partition: int) -> str:
        return transaction_id(self._app, self._source_topic, partition)

    async def send_in_transaction(
        self, output: Output, record: Record, partition: int, transactional_id: str
    ) -> None:
        """Send inside the source partition's Kafka transaction.

        Faust's transaction manager only finds a transaction for topics its consumer
        reads (the source and the table changelog); a result sent through `topic.send`
        would go through the plain producer and become visible, or be lost, apart from
        the offset commit. So outputs name the source partition's transaction explicitly:
        that transaction commits them together with the consumer offset and the mark.
        """
        name = self._topics[output].get_topic_name()
        headers = list(record.headers) or None
        try:
            await self._app.producer.send(
                name, record.key, record.value, partition, None, headers,
                transactional_id=transactional_id,
            )  # fmt: skip
        except MessageSizeTooLargeError as exc:
            # Refused by the producer before it joined the transaction: that record's
            # problem alone, not a broken transaction.
            raise OutputRejected(f"{name}: {exc!r}") from exc
        except (KafkaError, IllegalOperation, ProducerSendError) as exc:
            # Not in a transaction any more, fenced, or its sender died: this output and
            # the transaction's earlier ones cannot commit.
            raise TransactionBroken(f"the transaction of partition {partition}: {exc!r}") from exc

    async def send_plain(self, output: Output, record: Record, partition: int) -> None:
        headers = list(record.headers) or None
        await self._topics[output].send(
            key=record.key, value=record.value, headers=headers, partition=partition
        )

    async def commit(self) -> None:
        consumer = cast(Consumer, self._app.consumer)
        # Faust's commit() returns without committing when another commit (its interval
        # commit) is running: that one took its offsets before our acks, which would then
        # wait for the next interval. Wait it out, then commit ours.
        waited = True
        while waited:  # another commit may start while we wait for one
            waited = await consumer.maybe_wait_for_commit_to_finish()
        await consumer.commit()

    async def ack(self, token: AckToken) -> None:
        stream, event = token
        await stream.ack(event)

    def answered_get(self, key: bytes) -> bytes | None:
        value: bytes | None = self._answered.get(key)
        return value

    def answered_set(self, key: bytes, value: bytes) -> None:
        # Straight into memory: the changelog record went out in the transaction already
        # (a plain `answered[key] = …` would buffer another write outside it).
        self._answered.data[key] = value

    def answered_pop(self, key: bytes) -> None:
        self._answered.data.pop(key, None)
