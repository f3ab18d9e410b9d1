"""Sparkplug B 3.0 topic namespace: `spBv1.0/{group_id}/{message_type}/{edge_node_id}[/{device_id}]`
and the host's `spBv1.0/STATE/{host_id}`. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

NAMESPACE: Final = "spBv1.0"
FILTER: Final = f"{NAMESPACE}/#"
NODE_TYPES: Final = ("NBIRTH", "NDATA", "NDEATH")
DEVICE_TYPES: Final = ("DBIRTH", "DDATA", "DDEATH")
# What an edge node publishes and the host consumes; NCMD/DCMD/STATE are the host's own.
INBOUND_TYPES: Final = frozenset(NODE_TYPES + DEVICE_TYPES)

MessageType = Literal["NBIRTH", "NDATA", "NDEATH", "DBIRTH", "DDATA", "DDEATH"]


class SparkplugTopicError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class SparkplugTopic:
    group_id: str
    message_type: MessageType
    edge_node_id: str
    device_id: str | None


def is_inbound(topic: str) -> bool:
    """True for an edge node's BIRTH/DATA/DEATH topic (what the host takes into its intake)."""
    parts = topic.split("/", 3)
    return len(parts) >= 4 and parts[0] == NAMESPACE and parts[2] in INBOUND_TYPES


def parse(topic: str) -> SparkplugTopic:
    parts = topic.split("/")
    if len(parts) not in (4, 5) or parts[0] != NAMESPACE:
        raise SparkplugTopicError(
            f"topic {topic!r} is not {NAMESPACE}/{{group}}/{{type}}/{{node}}[/{{device}}]"
        )
    group, kind, node = parts[1], parts[2], parts[3]
    device = parts[4] if len(parts) == 5 else None
    if kind in NODE_TYPES and device is not None:
        raise SparkplugTopicError(f"topic {topic!r}: {kind} takes no device id")
    if kind in DEVICE_TYPES and device is None:
        raise SparkplugTopicError(f"topic {topic!r}: {kind} needs a device id")
    if kind not in INBOUND_TYPES:
        raise SparkplugTopicError(f"topic {topic!r}: message type {kind!r} is not an edge node's")
    if not group or not node or device == "":
        raise SparkplugTopicError(f"topic {topic!r} has an empty id")
    return SparkplugTopic(group, kind, node, device)  # type: ignore[arg-type]  # checked above


def state_topic(host_id: str) -> str:
    return f"{NAMESPACE}/STATE/{host_id}"


def ncmd_topic(group_id: str, edge_node_id: str) -> str:
    return f"{NAMESPACE}/{group_id}/NCMD/{edge_node_id}"
