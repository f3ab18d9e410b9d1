"""Normalised readings for tests, with every field defaulted but the ones a test is about."""

from __future__ import annotations

from protocol import EdgeMetrics, NormalisedReading


def make_reading(
    device_id: str,
    ts: int,
    metrics: dict[str, float | bool],
    *,
    seq: int | None = None,
    site: str = "site-1",
    gateway_id: str = "gw-1",
    type: str | None = None,
    validate: bool = True,
) -> NormalisedReading:
    """``validate=False`` skips the model's checks: a device id that breaks the MQTT contract,
    as if it had reached the database some other way (the dashboard must still show it safely)."""
    build = NormalisedReading if validate else NormalisedReading.model_construct
    return build(
        site=site,
        device_id=device_id,
        type=type,
        ts=ts,
        seq=seq,
        metrics=metrics,
        gateway_id=gateway_id,
        received_ts=ts,
    )


def make_edge_metrics(gateway_id: str, ts: int, site: str = "s1") -> EdgeMetrics:
    """A healthy gateway's heartbeat (`iot.edge-metrics`) at `ts`."""
    return EdgeMetrics(
        gateway_id=gateway_id,
        site=site,
        ts=ts,
        uptime_s=1.0,
        buffer_depth=0,
        buffer_bytes=0,
        buffer_max_bytes=100,
        buffer_oldest_age_s=None,
        received_total=0,
        forwarded_total=0,
        dropped_total=0,
        dead_lettered_total=0,
        received_rate=0.0,
        forwarded_rate=0.0,
        kafka_connected=True,
    )
