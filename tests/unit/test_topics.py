"""Partition counts are only judged once Kafka's metadata for new topics has settled."""

from streamworker.worker.topics import settled_counts


def test_counts_when_every_topic_is_described() -> None:
    described = [
        {"topic": "s", "error_code": 0, "partitions": [{}, {}]},
        {"topic": "r", "error_code": 0, "partitions": [{}, {}, {}]},
    ]
    assert settled_counts(described) == {"s": 2, "r": 3}


def test_fresh_topic_without_partitions_is_not_settled() -> None:
    described = [
        {"topic": "s", "error_code": 0, "partitions": [{}]},
        {"topic": "r", "error_code": 0, "partitions": []},
    ]
    assert settled_counts(described) is None


def test_topic_with_error_code_is_not_settled() -> None:
    described = [{"topic": "s", "error_code": 5, "partitions": [{}]}]
    assert settled_counts(described) is None
