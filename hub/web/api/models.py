"""Response and request bodies of the REST API: what /openapi.json documents."""

from __future__ import annotations

import dataclasses
from typing import Any, Final, Literal, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, create_model

from hub.storage.model import AlertRow
from hub.web.model import DeviceState, Severity
from hub.web.services import MAX_COMMENT_CHARS

# PostgreSQL text cannot hold NUL. Documented as a pattern, so that clients and fuzzers know;
# enforced by hand (`hub.web.api.deps.checked_text`), with a message that says so plainly.
NO_NUL: Final = {"pattern": r"^[^\x00]*$"}


class ErrorBody(BaseModel):
    """Every 4xx and 503: a stable code and a message for a person, naming what was wrong."""

    error: Literal[
        "unauthorized",
        "forbidden",
        "not_found",
        "method_not_allowed",
        "invalid_request",
        "bad_request",
        "conflict",
        "unavailable",
    ]
    detail: str


class DeviceOut(BaseModel):
    device_id: str
    site: str
    type: str | None
    gateway_id: str
    state: DeviceState
    last_seen: int | None = Field(description="epoch ms of the newest reading")
    metrics: list[str] = Field(description="every metric the device ever reported, sorted")
    latest: dict[str, bool | float] = Field(
        description="latest value per metric (empty if Redis is away)"
    )
    latest_ts: int | None
    active_alerts: int
    worst_severity: Severity | None


class DevicePage(BaseModel):
    items: list[DeviceOut]
    total: int = Field(description="devices matching the filter, over all pages")
    limit: int
    offset: int


class SeriesOut(BaseModel):
    device_id: str
    metric: str
    source: Literal["raw", "1m", "1h", "1d"] = Field(
        description="where the points came from: raw readings, or the 1-minute, hourly or "
        "daily rollups (the finest tier within max(3000, max_points) buckets over the range)"
    )
    start: int
    end: int
    ts: list[int]
    values: list[float]
    downsampled: bool = Field(description="points were dropped to fit max_points")


class ConnectorOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    kind: Literal["opcua", "modbus"]
    connected: bool
    values_rate: float = Field(description="values per second")
    errors: dict[str, int] = Field(description="problems counted by reason (docs/connectors.md)")
    last_error: str | None


# Built from `hub.web.model.GatewayView` by `model_validate` (no docstring: it would change the
# OpenAPI document).
class GatewayOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    gateway_id: str
    site: str
    state: Literal["online", "offline"]
    received_ts: int
    buffer_depth: int
    buffer_bytes: int
    buffer_max_bytes: int
    buffer_oldest_age_s: float | None
    # As of the gateway's last report (`received_ts`); null while its buffer is not growing.
    buffer_runway_s: float | None = Field(
        default=None, description="Seconds until the buffer is full at its current net growth."
    )
    forwarded_rate: float
    received_rate: float
    dropped_total: int
    kafka_connected: bool
    # Null for a gateway without OPC UA or Modbus connectors (or older than them).
    connectors: list[ConnectorOut] | None = Field(
        default=None, description="The gateway's OPC UA and Modbus connectors, as last reported."
    )


def _fields_of(row: type[Any]) -> dict[str, Any]:
    """A dataclass's fields as pydantic field definitions (all required), in order."""
    hints = get_type_hints(row)
    return {f.name: (hints[f.name], ...) for f in dataclasses.fields(row)}


# Derived from `hub.storage.model.AlertRow`, whose `to_json` the alert list and the events carry,
# so the two cannot drift apart; a single alert is built from the row by `model_validate`.
AlertOut: type[BaseModel] = create_model(
    "AlertOut", __config__=ConfigDict(from_attributes=True), **_fields_of(AlertRow)
)


class AlertPage(BaseModel):
    items: list[AlertOut]  # type: ignore[valid-type]  # a model made at import, from AlertRow
    total: int = Field(description="alerts matching the filter, over all pages")
    limit: int
    offset: int


class AuditEntryOut(BaseModel):
    id: int
    at: int = Field(description="epoch ms")
    actor: str = Field(
        description='user name, "token:<name>" for an API token, "cli" for the iot-hub command, '
        'or "?" for a sign-in with a name no user can have'
    )
    action: str = Field(description="auth.login, auth.logout, alert.acknowledge, alert.clear, ...")
    outcome: Literal["success", "failure"]
    client: str | None = Field(description='client address, or "<os user>@<host>" for the CLI')
    target: str | None = Field(description="alert id, user name or token name acted on")
    details: dict[str, Any] = Field(description="what changed; never a password or token")


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    total: int = Field(description="entries matching the filter, over all pages")
    limit: int
    offset: int


class AckBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: str | None = Field(
        default=None, max_length=MAX_COMMENT_CHARS, json_schema_extra=dict(NO_NUL)
    )


class HealthOut(BaseModel):
    status: Literal["ok"]


class ReadyOut(BaseModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, bool]
