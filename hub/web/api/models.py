"""Response and request bodies of the REST API: what /openapi.json documents."""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

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
    source: Literal["raw", "1m"] = Field(description="raw readings, or 1-minute rollups")
    start: int
    end: int
    ts: list[int]
    values: list[float]
    downsampled: bool = Field(description="points were dropped to fit max_points")


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
    forwarded_rate: float
    received_rate: float
    dropped_total: int
    kafka_connected: bool


# The fields of `hub.storage.model.AlertRow`, whose `to_json` the alert list and the events
# carry; a single alert is built from the row by `model_validate`.
class AlertOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    device_id: str | None
    gateway_id: str | None
    rule: str
    severity: Severity
    state: Literal["active", "cleared"]
    acknowledged: bool
    ack_by: str | None
    ack_at: int | None
    ack_comment: str | None
    metric: str | None
    value: float | None
    message: str
    raised_at: int
    updated_at: int
    cleared_at: int | None
    cleared_by: str | None
    occurrences: int


class AlertPage(BaseModel):
    items: list[AlertOut]
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
