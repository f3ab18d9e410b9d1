"""Connector values -> the JSON telemetry message an MQTT device would publish, so they take the
same validation, buffer and forwarder path (edge_gateway/intake.py). Pure."""

from __future__ import annotations

import json

from protocol import topics


def telemetry_message(
    site: str,
    device_id: str,
    device_type: str | None,
    values: dict[str, float | bool],
    ts_ms: int,
) -> tuple[str, bytes]:
    """Topic and payload of one reading. Values beyond the contract's magnitude are left to the
    router, which dead-letters them with its reason, like any device's. No `seq`: a connector
    has no device counter to check for gaps."""
    body: dict[str, object] = {"ts": ts_ms, "metrics": values}
    if device_type is not None:
        body["type"] = device_type
    payload = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
    return topics.telemetry_topic(site, device_id), payload
