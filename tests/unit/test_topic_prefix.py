"""One topic prefix for a deployment's Kafka topics: made in one place, checked at start."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from edge_gateway.routing import MessageRouter
from edge_gateway.settings import EdgeSettings
from hub.ownership import ownership_of
from hub.settings import HubSettings
from protocol import topics


def test_every_contract_topic_is_derived_through_one_prefix() -> None:
    names = topics.KafkaTopics("bench.")
    assert names.all() == tuple(f"bench.{name}" for name in topics.KAFKA_TOPICS)
    assert (names.telemetry, names.telemetry_dlq, names.device_status) == (
        "bench.iot.telemetry",
        "bench.iot.telemetry.dlq",
        "bench.iot.device-status",
    )
    assert (names.edge_metrics, names.alerts) == ("bench.iot.edge-metrics", "bench.iot.alerts")
    assert topics.UNPREFIXED.all() == topics.KAFKA_TOPICS
    assert topics.topic_name(topics.TELEMETRY, "") == topics.TELEMETRY


@pytest.mark.parametrize("prefix", ["a b.", "bench/", "x" * 101, "ü."])
def test_a_prefix_kafka_cannot_name_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="topic prefix"):
        topics.KafkaTopics(prefix)
    with pytest.raises(ValidationError):
        EdgeSettings(kafka_topic_prefix=prefix)
    with pytest.raises(ValidationError):
        HubSettings(kafka_topic_prefix=prefix)


def test_edge_and_hub_settings_name_the_same_topics() -> None:
    edge = EdgeSettings(kafka_topic_prefix="plant7.")
    hub = HubSettings(kafka_topic_prefix="plant7.")
    assert hub.topics == topics.KafkaTopics(edge.kafka_topic_prefix)
    assert hub.dlq_topic == "plant7.iot.hub.dlq"
    assert ("EDGE_KAFKA_TOPIC_PREFIX", "plant7.") in edge.describe()
    assert ("HUB_KAFKA_TOPIC_PREFIX", "plant7.") in hub.describe()
    assert HubSettings().dlq_topic == "iot.hub.dlq"


def test_the_router_puts_records_on_prefixed_topics() -> None:
    router = MessageRouter(
        "gw-1",
        max_past_ms=86_400_000,
        max_future_ms=3_600_000,
        kafka_topics=topics.KafkaTopics("t."),
    )
    good = router.route("plant/s1/d1/telemetry", b'{"metrics": {"x": 1.0}}', 1_000)
    status = router.route("plant/s1/d1/status", b'{"state": "online"}', 1_000)
    bad = router.route("plant/s1/d1/telemetry", b"not json", 1_000)
    assert [r.record.topic for r in (good, status, bad)] == [
        "t.iot.telemetry",
        "t.iot.device-status",
        "t.iot.telemetry.dlq",
    ]


def test_ownership_follows_the_prefixed_topics() -> None:
    names = topics.KafkaTopics("t.")
    owned = ownership_of(
        [(names.telemetry, 0), (names.edge_metrics, 1), (topics.TELEMETRY, 1)],
        {names.telemetry: 2, names.edge_metrics: 2},
        names,
    )
    assert owned.devices.mine == frozenset({0})
    assert owned.gateways.mine == frozenset({1})
