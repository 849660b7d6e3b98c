"""Marks written by this process are handed back per revoked partition, once."""

from streamworker.worker.marks import OwnMarks


def test_take_returns_only_the_revoked_partitions_keys() -> None:
    marks = OwnMarks()
    marks.add(0, b"a")
    marks.add(0, b"b")
    marks.add(1, b"c")
    assert marks.take([0]) == {b"a", b"b"}
    assert len(marks) == 1
    assert marks.take([0]) == set()
    assert marks.take([1, 2]) == {b"c"}
    assert len(marks) == 0
