"""Which devices and gateways a worker owns: those whose Kafka partitions it is assigned.

Telemetry and statuses are keyed by device id, edge metrics by gateway id, and the edge gateway
produces them with Kafka's default partitioner (murmur2 of the key, the same in Java and in
aiokafka), so the partition of a key is known without waiting for a record. A producer with
another partitioner costs little: a device wrongly taken for someone else's is forgotten at a
rebalance and known again at its next record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from aiokafka.partitioner import murmur2

from protocol import topics


def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for `key` among `partitions`."""
    digest: int = murmur2(key.encode())
    return (digest & 0x7FFFFFFF) % partitions


@dataclass(frozen=True, slots=True)
class TopicShare:
    """The partitions of one topic assigned to this worker, out of how many."""

    mine: frozenset[int]
    total: int | None  # None: unknown, and then every key counts as this worker's

    def owns(self, key: str) -> bool:
        return self.total is None or partition_of(key, self.total) in self.mine


@dataclass(frozen=True, slots=True)
class Ownership:
    devices: TopicShare
    gateways: TopicShare

    def owns_device(self, device_id: str) -> bool:
        return self.devices.owns(device_id)

    def owns_gateway(self, gateway_id: str) -> bool:
        return self.gateways.owns(gateway_id)


def ownership_of(
    assigned: Iterable[tuple[str, int]],
    partition_counts: Mapping[str, int | None],
    names: topics.KafkaTopics | None = None,
) -> Ownership:
    """From the (topic, partition) pairs assigned to this worker and each topic's partition
    count: devices by `iot.telemetry`, gateways by `iot.edge-metrics` (under `names`' prefix)."""
    names = names or topics.KafkaTopics()
    pairs = list(assigned)

    def share(topic: str) -> TopicShare:
        mine = frozenset(p for t, p in pairs if t == topic)
        return TopicShare(mine, partition_counts.get(topic))

    return Ownership(devices=share(names.telemetry), gateways=share(names.edge_metrics))
