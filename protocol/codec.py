"""Strict decoding of device messages into the normalised Kafka records, with precise reasons.

Every refusal raises `DecodeError` whose `reason` is one of `REASONS`; the gateway puts the raw
payload on the dead-letter topic with `str(error)` as its `error` header.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final, TypeVar

from pydantic import BaseModel, ConfigDict, StrictInt, ValidationError
from pydantic_core import ErrorDetails, to_json

from protocol.models import (
    MAX_BATCH_BYTES,
    MAX_EPOCH_MS,
    MAX_METRIC_MAGNITUDE,
    MAX_METRICS,
    MAX_PAYLOAD_BYTES,
    METRIC_NAME_PATTERN,
    SCHEMA_VERSION,
    TELEMETRY_VERSIONS,
    DevicePayload,
    DeviceStatus,
    NormalisedReading,
    StatusPayload,
    TelemetryBatch,
)
from protocol.topics import MqttTopic, TopicError, parse_mqtt_topic

M = TypeVar("M", bound=BaseModel)

REASONS: Final = (
    "bad_topic",
    "payload_too_large",
    "invalid_utf8",
    "invalid_json",
    "wrong_shape",
    "non_finite_number",
    "value_out_of_range",
    "bad_metric_name",
    "too_many_metrics",
    "no_metrics",
    "bad_ts",
    "ts_out_of_range",
    "duplicate_seq",
    # Sparkplug B messages (edge_gateway/sparkplug), dead-lettered whole:
    "sparkplug_bad_topic",  # not spBv1.0/{group}/{N|D}{BIRTH|DATA|DEATH}/{node}[/{device}]
    "sparkplug_bad_id",  # group, node or device id outside our identifier pattern
    "sparkplug_bad_payload",  # not a Sparkplug B protobuf payload (corrupt or truncated)
)

DEFAULT_MAX_PAST_MS: Final = 7 * 24 * 3600 * 1000
DEFAULT_MAX_FUTURE_MS: Final = 3600 * 1000
_BOUND_ERRORS: Final = frozenset(
    {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}
)


class DecodeError(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        assert reason in REASONS, reason
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def parse_topic(topic: str) -> MqttTopic:
    try:
        return parse_mqtt_topic(topic)
    except TopicError as exc:
        raise DecodeError("bad_topic", str(exc)) from None


def _classify(exc: ValidationError) -> DecodeError:
    return _classify_errors(exc.errors(include_url=False, include_input=False))


def _classify_batch(exc: ValidationError) -> DecodeError:
    """`_classify` for a version 2 value: an error inside one reading gets that reading's
    reason, as if it had come alone, and says which reading it was."""
    errors = exc.errors(include_url=False, include_input=False)
    loc = errors[0]["loc"]
    if len(loc) < 3 or loc[0] != "readings":
        return _classify_errors(errors)
    same = [{**err, "loc": err["loc"][2:]} for err in errors if err["loc"][:2] == loc[:2]]
    inner = _classify_errors(same)  # type: ignore[arg-type]
    return DecodeError(inner.reason, f"readings.{loc[1]}: {inner.detail}")


def _classify_errors(errors: list[ErrorDetails]) -> DecodeError:
    # A union reports one error per branch, so look for the most specific cause first.
    for err in errors:
        kind, loc = err["type"], err["loc"]
        if kind == "json_invalid":
            return DecodeError("invalid_json", err["msg"])
        if kind == "finite_number":
            return DecodeError("non_finite_number", f"{_where(loc[:2])} is NaN or Infinity")
        if loc[:1] == ("metrics",) and len(loc) >= 2 and kind in _BOUND_ERRORS:
            return DecodeError(
                "value_out_of_range",
                f"metrics.{loc[1]} is beyond the magnitude limit {MAX_METRIC_MAGNITUDE:g}",
            )
        if loc[:1] in (("ts",), ("received_ts",)) and kind in _BOUND_ERRORS:
            return DecodeError(
                "ts_out_of_range", f"{loc[0]} must be epoch ms within 0..{MAX_EPOCH_MS}"
            )
        if loc[:1] == ("metrics",) and "[key]" in loc:
            return DecodeError(
                "bad_metric_name", f"metric name {loc[1]!r} must match {METRIC_NAME_PATTERN}"
            )
        if loc == ("metrics",) and kind == "too_long":
            return DecodeError("too_many_metrics", f"more than {MAX_METRICS} metrics")
        if loc == ("metrics",) and kind == "too_short":
            return DecodeError("no_metrics", "metrics must hold at least one entry")
    first = errors[0]
    loc = first["loc"]
    if loc[:1] == ("metrics",) and len(loc) >= 2:
        return DecodeError("wrong_shape", f"metrics.{loc[1]} must be a finite number or a boolean")
    return DecodeError("wrong_shape", f"{_where(loc)}: {first['msg']}")


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "payload"


def _check_size(payload: bytes, limit: int) -> None:
    if len(payload) > limit:
        raise DecodeError("payload_too_large", f"{len(payload)} bytes, at most {limit} allowed")


def _text(payload: bytes) -> str:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError("invalid_utf8", f"byte {exc.start}: {exc.reason}") from None


def decode_record(model: type[M], payload: bytes) -> M:
    """One wire model from raw bytes (a device payload, or a Kafka record read as untrusted),
    or `DecodeError` with the reason."""
    _check_size(payload, MAX_PAYLOAD_BYTES)
    try:
        return model.model_validate_json(_text(payload))
    except ValidationError as exc:
        raise _classify(exc) from None


class _Versioned(BaseModel):
    model_config = ConfigDict(extra="ignore")

    v: StrictInt = SCHEMA_VERSION


def telemetry_version(text: str) -> int:
    """The `v` of an `iot.telemetry` value (1 when absent), or `DecodeError`."""
    # What the edge writes starts like this: no second parse for it.
    for version in TELEMETRY_VERSIONS:
        if text.startswith(f'{{"v":{version},'):
            return version
    try:
        version = _Versioned.model_validate_json(text).v
    except ValidationError as exc:
        raise _classify(exc) from None
    if version not in TELEMETRY_VERSIONS:
        raise DecodeError(
            "wrong_shape", f"v {version} is not a version this reader knows {TELEMETRY_VERSIONS}"
        )
    return version


def decode_telemetry_value(payload: bytes) -> list[NormalisedReading]:
    """The readings of one `iot.telemetry` value of either version, read as untrusted: a
    version 1 value is one reading (at most 64 KiB), a version 2 value several readings of
    one device (at most 1 MiB); anything else raises `DecodeError` with the reason."""
    _check_size(payload, MAX_BATCH_BYTES)
    text = _text(payload)
    if telemetry_version(text) == 1:
        return [decode_record(NormalisedReading, payload)]
    try:
        return TelemetryBatch.model_validate_json(text).readings
    except ValidationError as exc:
        raise _classify_batch(exc) from None


def encode_telemetry_batch(values: Sequence[bytes]) -> bytes:
    """A version 2 `iot.telemetry` value from version 1 values of one device, oldest first,
    without decoding them: the same bytes as `encode(TelemetryBatch(readings=...))`."""
    return b'{"v":2,"readings":[' + b",".join(values) + b"]}"


def resolve_ts(
    raw: int | str | None,
    received_ts: int,
    *,
    max_past_ms: int = DEFAULT_MAX_PAST_MS,
    max_future_ms: int = DEFAULT_MAX_FUTURE_MS,
) -> int:
    """Epoch ms of a device timestamp, refusing one too far from the gateway's clock."""
    if raw is None:
        return received_ts
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            raise DecodeError("bad_ts", f"ts {raw!r} is not RFC 3339") from None
        if parsed.tzinfo is None:
            raise DecodeError("bad_ts", f"ts {raw!r} has no time zone offset")
        ts = round(parsed.timestamp() * 1000)
        if not 0 <= ts <= MAX_EPOCH_MS:
            # An offset can carry a valid wall time past year 9999 or before 1970 in UTC.
            raise DecodeError("ts_out_of_range", f"ts {raw!r} is outside 1970..9999 in UTC")
    else:
        ts = raw
    skew = ts - received_ts
    if skew < -max_past_ms or skew > max_future_ms:
        hint = " (looks like seconds, expected milliseconds)" if 0 < ts < 10**11 else ""
        raise DecodeError(
            "ts_out_of_range",
            f"ts {ts} is {skew / 1000:+.0f} s from the gateway clock, allowed "
            f"-{max_past_ms // 1000} s..+{max_future_ms // 1000} s{hint}",
        )
    return ts


def decode_telemetry(
    topic: MqttTopic,
    payload: bytes,
    *,
    received_ts: int,
    gateway_id: str,
    max_past_ms: int = DEFAULT_MAX_PAST_MS,
    max_future_ms: int = DEFAULT_MAX_FUTURE_MS,
) -> NormalisedReading:
    body, ts = _telemetry_body(topic, payload, received_ts, max_past_ms, max_future_ms)
    # Every field is validated already (payload above, topic by its parser): skip a second pass.
    return NormalisedReading.model_construct(
        site=topic.site,
        device_id=topic.device_id,
        type=body.type,
        ts=ts,
        seq=body.seq,
        metrics=body.metrics,
        gateway_id=gateway_id,
        received_ts=received_ts,
    )


def telemetry_record(
    topic: MqttTopic,
    payload: bytes,
    *,
    received_ts: int,
    gateway_id: str,
    max_past_ms: int = DEFAULT_MAX_PAST_MS,
    max_future_ms: int = DEFAULT_MAX_FUTURE_MS,
) -> tuple[int | None, bytes]:
    """The reading's `seq` and its `iot.telemetry` version 1 value: the same validation and
    errors as `decode_telemetry`, the same bytes as `encode` of its result, without building
    the model (the gateway's hot path: model_construct was half the routing cost)."""
    body, ts = _telemetry_body(topic, payload, received_ts, max_past_ms, max_future_ms)
    # NormalisedReading's fields in order, through pydantic's own serializer (floats as
    # `model_dump_json` writes them).
    value = to_json(
        {
            "v": SCHEMA_VERSION,
            "site": topic.site,
            "device_id": topic.device_id,
            "type": body.type,
            "ts": ts,
            "seq": body.seq,
            "metrics": body.metrics,
            "gateway_id": gateway_id,
            "received_ts": received_ts,
        }
    )
    return body.seq, value


def _telemetry_body(
    topic: MqttTopic, payload: bytes, received_ts: int, max_past_ms: int, max_future_ms: int
) -> tuple[DevicePayload, int]:
    body = decode_record(DevicePayload, payload)
    ts = resolve_ts(body.ts, received_ts, max_past_ms=max_past_ms, max_future_ms=max_future_ms)
    return body, ts


def decode_status(
    topic: MqttTopic,
    payload: bytes,
    *,
    received_ts: int,
    gateway_id: str,
    max_future_ms: int = DEFAULT_MAX_FUTURE_MS,
) -> DeviceStatus:
    body = decode_record(StatusPayload, payload)
    # Retained status messages can be old by design, so any past time is taken. A future one
    # is held to the telemetry bound: the hub ignores statuses older than the newest applied,
    # so one from year 9999 would freeze the device's state for good.
    ts = resolve_ts(body.ts, received_ts, max_past_ms=received_ts, max_future_ms=max_future_ms)
    return DeviceStatus(
        site=topic.site,
        device_id=topic.device_id,
        state=body.state,
        ts=ts,
        gateway_id=gateway_id,
    )


def encode(model: BaseModel) -> bytes:
    """Compact JSON bytes of a wire model."""
    return model.model_dump_json().encode()
