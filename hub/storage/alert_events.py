"""The `iot.alerts` event: an alert's lifecycle event (raised, acknowledged, cleared, ...) with
the alert row as it now stands, published by the worker to Kafka and to the live channel, and by
the web app to the live channel after an operator's action. One builder and one encoder, so
both publish the same bytes."""

from __future__ import annotations

import json
from typing import Any, Final

from hub.storage.model import AlertRow

EVENT_VERSION: Final = 1


def alert_event(kind: str, row: AlertRow) -> dict[str, Any]:
    """The `iot.alerts` value: the lifecycle event and the alert row as it now stands."""
    return {"v": EVENT_VERSION, "event": kind, **row.to_json()}


def encode_event(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":"), allow_nan=False).encode()


def event_key(row: AlertRow) -> bytes | None:
    owner = row.device_id if row.device_id is not None else row.gateway_id
    return None if owner is None else owner.encode()
