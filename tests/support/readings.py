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
) -> NormalisedReading:
    return NormalisedReading(
        site=site,
        device_id=device_id,
        type=type,
        ts=ts,
        seq=seq,
        metrics=metrics,
        gateway_id=gateway_id,
        received_ts=ts,
    )
