"""The pure parts of the read model: reading Redis entries and shaping rollups into points."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from hub.storage.read_model import parse_gateway
from hub.storage.redis_values import decode_latest
from hub.storage.series import rollup_points

GATEWAY: dict[str, Any] = {
    "v": 1,
    "gateway_id": "gw-1",
    "site": "site-1",
    "ts": 1000,
    "uptime_s": 5.0,
    "buffer_depth": 3,
    "buffer_bytes": 300,
    "buffer_max_bytes": 1000,
    "buffer_oldest_age_s": None,
    "received_total": 10,
    "forwarded_total": 7,
    "dropped_total": 0,
    "dead_lettered_total": 0,
    "received_rate": 1.5,
    "forwarded_rate": 1.0,
    "kafka_connected": True,
    "received_ts": 100_000,
}


def parse_latest(
    fields: Mapping[bytes, bytes] | Mapping[str, str],
) -> tuple[dict[str, float | bool], int | None]:
    """What a device's row takes from its latest-values hash."""
    values = decode_latest(fields)
    return values.metrics, values.ts


def test_latest_hash_is_parsed_and_private_fields_skipped() -> None:
    fields = {
        b"spindle_temp_c": b"61.2",
        b"running": b"true",
        b"count": b"3",
        b"_ts": b"1764268800123",
        b"_site": b"site-1",
        b"_type": b"cnc_spindle",
        b"garbled": b"{nope",
        b"text": b'"a string"',
    }
    latest, ts = parse_latest(fields)
    assert latest == {"spindle_temp_c": 61.2, "running": True, "count": 3.0}
    assert isinstance(latest["count"], float)
    assert ts == 1764268800123
    assert parse_latest({}) == ({}, None)
    assert parse_latest({"ts": "5"}) == ({"ts": 5.0}, None)  # a metric may be called ts


def test_gateway_state_follows_the_hubs_clock() -> None:
    text = json.dumps(GATEWAY)
    online = parse_gateway(text, now_ms=100_000 + 30_000, offline_after_ms=30_000)
    assert online is not None
    assert online.state == "online"
    assert (online.buffer_depth, online.forwarded_rate, online.kafka_connected) == (3, 1.0, True)
    offline = parse_gateway(text, now_ms=100_000 + 30_001, offline_after_ms=30_000)
    assert offline is not None
    assert offline.state == "offline"


def test_unreadable_gateway_entries_are_none() -> None:
    assert parse_gateway("nope", 0, 1) is None
    assert parse_gateway(json.dumps({**GATEWAY, "buffer_depth": "many"}), 0, 1) is None
    missing = {k: v for k, v in GATEWAY.items() if k != "received_ts"}
    assert parse_gateway(json.dumps(missing), 0, 1) is None


def test_rollups_become_min_max_pairs() -> None:
    rows = [
        {"ts": 0, "min": 1.0, "max": 5.0},
        {"ts": 60_000, "min": 2.0, "max": 2.0},
    ]
    assert rollup_points(rows) == ([0, 0, 60_000], [1.0, 5.0, 2.0])
