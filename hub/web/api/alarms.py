"""The API's alarm routes (docs/alarms.md): shelve and unshelve an alert, bulk acknowledge or
shelve, and maintenance windows (anyone reads, admins write). Registered by
`hub.web.api.routes` before its catch-all."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from hub.alarms.service import MAX_BULK, ShelfRequest
from hub.alarms.shelving import MAX_REASON_CHARS
from hub.alarms.windows import MaintenanceWindow, parse_spec
from hub.web.api.deps import (
    API,
    MAX_ALERT_ID,
    MAX_TEXT,
    MAX_TS,
    Operator,
    Services,
    Viewer,
    checked_text,
    client_address,
    require_principal,
)
from hub.web.api.errors import ApiError, ApiRoute, error_responses, invalid, not_found
from hub.web.api.models import NO_NUL, AlertOut
from hub.web.model import AlertFilter, AlertStatus, Principal, Severity, can_administer
from hub.web.services import MAX_COMMENT_CHARS

__all__ = ["router"]

router = APIRouter(route_class=ApiRoute)

AlertId = Annotated[int, Path(ge=1, le=MAX_ALERT_ID)]
WindowId = Annotated[int, Path(ge=1, le=MAX_ALERT_ID)]


async def require_window_admin(
    principal: Annotated[Principal, Depends(require_principal)],
) -> Principal:
    if not can_administer(principal.role):
        raise ApiError(
            403,
            "forbidden",
            f"role {principal.role!r} may not change maintenance windows; admin only",
        )
    return principal


WindowAdmin = Annotated[Principal, Depends(require_window_admin)]


def _no_nul(field: str, value: str | None) -> None:
    if value is not None and "\x00" in value:
        raise invalid(f"body field {field!r} must not contain NUL characters")


# -- shelving ------------------------------------------------------------------------------------


class ShelveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(
        max_length=MAX_REASON_CHARS,
        description="why (required); shown with the alert while it is shelved",
        json_schema_extra=dict(NO_NUL),
    )
    hours: float | None = Field(
        default=None, gt=0, description="shelve for this long (at most HUB_SHELVE_MAX_HOURS)"
    )
    until: int | None = Field(
        default=None, ge=0, le=MAX_TS, description="or until this time, epoch ms"
    )


@router.post(
    f"{API}/alerts/{{alert_id}}/shelve",
    operation_id="shelveAlert",
    response_model=AlertOut,
    responses=error_responses(401, 403, 404, 422),
    tags=["alerts"],
    summary="Shelve an alert for a time, with a reason (operator or admin): it still changes "
    "state but notifies nobody until shelved_until",
)
async def shelve_alert(
    request: Request, principal: Operator, services: Services, alert_id: AlertId, body: ShelveBody
) -> BaseModel:
    _no_nul("reason", body.reason)
    ask = ShelfRequest(body.reason, body.hours, body.until)
    try:
        row = await services.alarms.shelve(alert_id, principal, ask, client=client_address(request))
    except ValueError as exc:
        raise invalid(f"body field {exc}") from exc
    if row is None:
        raise not_found(f"no alert {alert_id}")
    return AlertOut.model_validate(row)


@router.post(
    f"{API}/alerts/{{alert_id}}/unshelve",
    operation_id="unshelveAlert",
    response_model=AlertOut,
    responses=error_responses(401, 403, 404, 422),
    tags=["alerts"],
    summary="End an alert's shelf now (operator or admin)",
)
async def unshelve_alert(
    request: Request, principal: Operator, services: Services, alert_id: AlertId
) -> BaseModel:
    row = await services.alarms.unshelve(alert_id, principal, client=client_address(request))
    if row is None:
        raise not_found(f"no alert {alert_id}")
    return AlertOut.model_validate(row)


# -- bulk ----------------------------------------------------------------------------------------


class BulkFilter(BaseModel):
    """The alerts page's filter: at most MAX_BULK alerts may match."""

    model_config = ConfigDict(extra="forbid")

    status: AlertStatus = "active"
    severity: Severity | None = None
    device_id: str | None = Field(default=None, max_length=MAX_TEXT, json_schema_extra=dict(NO_NUL))


class BulkBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["acknowledge", "shelve"]
    ids: list[Annotated[int, Field(ge=1, le=MAX_ALERT_ID)]] | None = Field(
        default=None, max_length=MAX_BULK, description="these alerts, or..."
    )
    filter: BulkFilter | None = Field(default=None, description="...those the filter selects")
    comment: str | None = Field(
        default=None,
        max_length=max(MAX_COMMENT_CHARS, MAX_REASON_CHARS),
        description="the acknowledgement's comment, or the shelf's reason (required to shelve)",
        json_schema_extra=dict(NO_NUL),
    )
    hours: float | None = Field(default=None, gt=0, description="shelve: for this long")
    until: int | None = Field(default=None, ge=0, le=MAX_TS, description="shelve: until, epoch ms")


class BulkSkipped(BaseModel):
    id: int
    reason: str


class BulkOut(BaseModel):
    action: Literal["acknowledge", "shelve"]
    applied: list[int] = Field(description="alert ids the action was applied to")
    skipped: list[BulkSkipped] = Field(description="alert ids left as they were, and why")


@router.post(
    f"{API}/alerts/bulk",
    operation_id="bulkAlerts",
    response_model=BulkOut,
    responses=error_responses(401, 403, 422),
    tags=["alerts"],
    summary=f"Acknowledge or shelve many alerts (ids, or a filter matching at most {MAX_BULK}) "
    "with one comment (operator or admin); audited per alert",
)
async def bulk_alerts(
    request: Request, principal: Operator, services: Services, body: BulkBody
) -> dict[str, Any]:
    _no_nul("comment", body.comment)
    where = None
    if body.filter is not None:
        where = AlertFilter(
            status=body.filter.status,
            severity=body.filter.severity,
            device_id=checked_text("filter.device_id", body.filter.device_id),
        )
    shelf = ShelfRequest(body.comment, body.hours, body.until)
    if body.action == "acknowledge" and (body.hours is not None or body.until is not None):
        raise invalid("body field 'hours'/'until': only for action shelve")
    try:
        result = await services.alarms.bulk(
            body.action,
            principal,
            ids=body.ids,
            where=where,
            comment=body.comment,
            shelf=shelf,
            client=client_address(request),
        )
    except ValueError as exc:
        message = str(exc).replace("reason is required", "comment is required")
        raise invalid(f"body field {message}") from exc
    return result.to_json()


# -- maintenance windows -------------------------------------------------------------------------


class ScheduleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["once", "weekly"]
    start: int | str = Field(description="once: epoch ms; weekly: local time 'HH:MM'")
    end: int | None = Field(default=None, description="once: epoch ms, exclusive")
    weekdays: list[int] | None = Field(default=None, description="weekly: 0 = Monday .. 6")
    duration_minutes: int | None = Field(default=None, description="weekly: 1..10080")
    timezone: str | None = Field(default=None, description="weekly: IANA name")


class ScopeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sites: list[str] = []
    gateways: list[str] = []
    device_types: list[str] = []
    devices: list[str] = []


class WindowBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    suppress: Literal["notifications", "alerts"] = Field(
        default="notifications",
        description="notifications: nobody is notified; alerts: no new alert is raised either",
    )
    schedule: ScheduleIn
    scope: ScopeIn = Field(description="a device is covered if any of its own is listed")
    comment: str | None = None


class WindowOut(BaseModel):
    id: int
    name: str
    suppress: Literal["notifications", "alerts"]
    schedule: dict[str, Any]
    scope: dict[str, list[str]]
    comment: str | None
    created_by: str
    created_at: int
    updated_by: str
    updated_at: int
    active: bool = Field(description="active now")
    active_until: int | None = Field(description="end of the current occurrence, epoch ms")


def _spec(body: WindowBody) -> Any:
    data = body.model_dump(exclude_none=True)
    data["schedule"] = body.schedule.model_dump(exclude_none=True)
    try:
        return parse_spec(data)
    except ValueError as exc:
        raise invalid(f"body field {exc}") from exc


def _out(window: MaintenanceWindow, now_ms: int) -> dict[str, Any]:
    return window.to_json(now_ms)


@router.get(
    f"{API}/maintenance-windows",
    operation_id="listMaintenanceWindows",
    response_model=list[WindowOut],
    responses=error_responses(401, 422),
    tags=["maintenance windows"],
    summary="Maintenance windows by name; active=true: only those active now (for device_id: "
    "those covering it)",
)
async def list_windows(
    principal: Viewer,
    services: Services,
    active: Annotated[bool, Query()] = False,
    device_id: Annotated[str | None, Query(max_length=MAX_TEXT, json_schema_extra=NO_NUL)] = None,
) -> list[dict[str, Any]]:
    device_id = checked_text("device_id", device_id)
    now = services.alarms.now_ms()
    if active or device_id is not None:
        windows = await services.alarms.active_windows(device_id)
    else:
        windows = await services.alarms.windows()
    return [_out(w, now) for w in windows]


@router.get(
    f"{API}/maintenance-windows/{{window_id}}",
    operation_id="getMaintenanceWindow",
    response_model=WindowOut,
    responses=error_responses(401, 404, 422),
    tags=["maintenance windows"],
    summary="One maintenance window",
)
async def get_window(principal: Viewer, services: Services, window_id: WindowId) -> dict[str, Any]:
    window = await services.alarms.store.window(window_id)
    if window is None:
        raise not_found(f"no maintenance window {window_id}")
    return _out(window, services.alarms.now_ms())


@router.post(
    f"{API}/maintenance-windows",
    operation_id="createMaintenanceWindow",
    response_model=WindowOut,
    status_code=201,
    responses=error_responses(401, 403, 422),
    tags=["maintenance windows"],
    summary="Create a maintenance window (admin)",
)
async def create_window(
    request: Request, principal: WindowAdmin, services: Services, body: WindowBody
) -> dict[str, Any]:
    spec = _spec(body)
    try:
        window = await services.alarms.create_window(
            spec, principal, client=client_address(request)
        )
    except ValueError as exc:  # the name is taken
        raise invalid(f"body field {exc}") from exc
    return _out(window, services.alarms.now_ms())


@router.put(
    f"{API}/maintenance-windows/{{window_id}}",
    operation_id="updateMaintenanceWindow",
    response_model=WindowOut,
    responses=error_responses(401, 403, 404, 422),
    tags=["maintenance windows"],
    summary="Replace a maintenance window (admin)",
)
async def update_window(
    request: Request,
    principal: WindowAdmin,
    services: Services,
    window_id: WindowId,
    body: WindowBody,
) -> dict[str, Any]:
    spec = _spec(body)
    try:
        window = await services.alarms.update_window(
            window_id, spec, principal, client=client_address(request)
        )
    except ValueError as exc:
        raise invalid(f"body field {exc}") from exc
    if window is None:
        raise not_found(f"no maintenance window {window_id}")
    return _out(window, services.alarms.now_ms())


@router.delete(
    f"{API}/maintenance-windows/{{window_id}}",
    operation_id="deleteMaintenanceWindow",
    response_model=WindowOut,
    responses=error_responses(401, 403, 404, 422),
    tags=["maintenance windows"],
    summary="Delete a maintenance window (admin); returns it as it was",
)
async def delete_window(
    request: Request, principal: WindowAdmin, services: Services, window_id: WindowId
) -> dict[str, Any]:
    window = await services.alarms.delete_window(
        window_id, principal, client=client_address(request)
    )
    if window is None:
        raise not_found(f"no maintenance window {window_id}")
    return _out(window, services.alarms.now_ms())
