"""Normalised readings for tests, with every field defaulted but the ones a test is about."""

from __future__ import annotations

from protocol import NormalisedReading


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
