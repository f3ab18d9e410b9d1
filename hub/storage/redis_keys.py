"""The names of everything the hub keeps in Redis, and the one JSON form of its values.

Pure: no I/O. Each value has one encoder and one decoder, next to its type:
`hub.storage.redis_values` for the keys, `hub.storage.live_messages` for the pub/sub channels.
The worker writes (`hub.storage.live.LiveStore`), the web app reads
(`hub.storage.read_model`, and the channels through `hub.storage.live_feed`).

* `iot:latest:{device_id}` hash: one field per metric, the value as JSON (`61.2`, `true`), plus
  `_ts` (epoch ms of the newest reading applied), `_site` and `_type`. The underscore keeps them
  apart from metric names, which start with a letter (a metric may well be called `ts`).
  (`LatestValues`)
* `iot:last_seen` sorted set: member device_id, score the newest reading's `ts` (epoch ms); only
  ever moves forward (`ZADD GT`), so a replayed Kafka range cannot move it back.
* `iot:device_state` hash: field device_id, value JSON
  `{"state": "online", "ts": ..., "site": ..., "gateway_id": ...}`. (`DevicePresence`)
* `iot:gateways` hash: field gateway_id, value the gateway's latest `iot.edge-metrics` record
  as JSON plus `received_ts` (epoch ms, the hub's clock). Every worker reads it each second:
  it is how a worker learns of heartbeats that another worker of the group received.
  (`GatewayHealth`)
* `iot:live:readings` channel: one message per batch (at most `hub.storage.live.PUBLISH_CHUNK`
  readings), compact JSON
  `{"v": 1, "readings": [{"site", "device_id", "type", "ts", "seq", "metrics"}, ...]}`.
  Per batch rather than per reading: the dashboard appends points in batches anyway, and
  thousands of PUBLISH calls per batch would cost more than the whole pipeline. (`LiveReading`)
* `iot:live:alerts` channel: alert lifecycle events, the `iot.alerts` Kafka value as it is
  (`hub.storage.alert_events.alert_event`).

The login throttle's keys (`iot:login-throttle:*`) belong to the web app alone
(`hub.storage.throttle_store`).
"""

from __future__ import annotations

import json
from typing import Final

LATEST_KEY_PREFIX: Final = "iot:latest:"
LAST_SEEN_KEY: Final = "iot:last_seen"
DEVICE_STATE_KEY: Final = "iot:device_state"
GATEWAYS_KEY: Final = "iot:gateways"
READINGS_CHANNEL: Final = "iot:live:readings"
ALERTS_CHANNEL: Final = "iot:live:alerts"


def latest_key(device_id: str) -> str:
    return f"{LATEST_KEY_PREFIX}{device_id}"


def compact_json(value: object) -> str:
    """Compact, and never NaN or Infinity (which JSON does not have): every value written."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def text(value: bytes | str) -> str:
    """A Redis reply as text, whether the client decodes responses or not."""
    return value.decode() if isinstance(value, bytes) else value
