"""Acknowledgements leave in offset order per partition, never ahead of a running event."""

from streamworker.worker.acks import InOrderAcks


def test_a_later_event_waits_for_an_earlier_one_still_running() -> None:
    acks: InOrderAcks[str] = InOrderAcks()
    for offset in (10, 11, 12):
        acks.begin(0, offset)
    assert acks.finish(0, 12, "c") == []
    assert acks.finish(0, 11, "b") == []
    assert acks.finish(0, 10, "a") == ["a", "b", "c"]
    assert acks.waiting(0) == 0


def test_partitions_are_independent() -> None:
    acks: InOrderAcks[str] = InOrderAcks()
    acks.begin(0, 5)
    acks.begin(1, 7)
    assert acks.finish(1, 7, "p1") == ["p1"]
    assert acks.waiting(0) == 1


def test_an_event_never_finished_blocks_everything_after_it() -> None:
    acks: InOrderAcks[str] = InOrderAcks()
    acks.begin(0, 1)  # e.g. skipped while draining: must be redelivered
    acks.begin(0, 2)
    assert acks.finish(0, 2, "b") == []
    acks.forget([0])
    assert acks.waiting(0) == 0


def test_gaps_in_offsets_do_not_block() -> None:
    acks: InOrderAcks[str] = InOrderAcks()
    acks.begin(0, 3)
    acks.begin(0, 9)  # offsets 4..8 were transaction markers or compacted away
    assert acks.finish(0, 3, "a") == ["a"]
    assert acks.finish(0, 9, "b") == ["b"]
