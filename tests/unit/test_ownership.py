"""Which devices and gateways a worker owns, from its partition assignment."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner

from hub.ownership import TopicShare, ownership_of, partition_of
from protocol import topics


def test_partition_of_is_kafkas_default_partitioner() -> None:
    partitions = list(range(6))
    for n in range(200):
        key = f"device-{n}"
        assert partition_of(key, 6) == DefaultPartitioner()(key.encode(), partitions, partitions)


def test_ownership_follows_the_assignment_per_topic() -> None:
    keys = [f"cnc-{n:02d}" for n in range(50)]
    mine = {0, 2, 4}
    owner = ownership_of(
        [(topics.TELEMETRY, p) for p in mine] + [(topics.EDGE_METRICS, 1)],
        {topics.TELEMETRY: 6, topics.EDGE_METRICS: 3},
    )
    owned = [k for k in keys if owner.owns_device(k)]
    assert owned == [k for k in keys if partition_of(k, 6) in mine]
    assert 0 < len(owned) < len(keys)
    gateways = [g for g in keys if owner.owns_gateway(g)]
    assert gateways == [k for k in keys if partition_of(k, 3) == 1]


def test_an_unknown_partition_count_owns_everything() -> None:
    assert TopicShare(frozenset(), None).owns("anything")
    assert not TopicShare(frozenset(), 6).owns("anything")
