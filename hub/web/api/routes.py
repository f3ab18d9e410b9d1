"""The API's routes: devices and their readings, gateways, alerts (list, acknowledge, clear),
the audit log, and the public operations endpoints (`/healthz`, `/readyz`, `/metrics`)."""

from __future__ import annotations

import time
from typing import Annotated, Any, Final

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel

from hub.storage.audit_model import ACTIONS, AuditFilter, Outcome
from hub.web.api import alarms
from hub.web.api.deps import (
    API,
    HOUR_MS,
    MAX_ALERT_ID,
    MAX_TEXT,
    MAX_TS,
    Admin,
    Limit,
    Offset,
    Operator,
    Services,
    TextQuery,
    Viewer,
    checked_text,
    client_address,
    page_json,
)
from hub.web.api.errors import (
    ApiError,
    ApiRoute,
    error_response,
    error_responses,
    invalid,
    links,
    not_found,
)
from hub.web.api.live import live
from hub.web.api.metadata import PlaceQuery
from hub.web.api.metadata import router as metadata_router
from hub.web.api.models import (
    NO_NUL,
    AckBody,
    AlertOut,
    AlertPage,
    AuditPage,
    DeviceOut,
    DevicePage,
    GatewayOut,
    HealthOut,
    ReadyOut,
    SeriesOut,
)
from hub.web.api.notifications import router as notifications_router
from hub.web.api.rules import router as rules_router
from hub.web.container import WebServices
from hub.web.metadata_service import all_devices, at_place
from hub.web.metrics import CONTENT_TYPE
from hub.web.model import (
    AlertFilter,
    AlertStatus,
    DeviceFilter,
    DeviceState,
    DeviceView,
    Severity,
)

router = APIRouter(route_class=ApiRoute)


# -- devices and gateways -----------------------------------------------------------------------


@router.get(
    f"{API}/devices",
    operation_id="listDevices",
    response_model=DevicePage,
    responses={
        **error_responses(401, 422),
        **links(
            FirstDevice=("getDevice", {"device_id": "$response.body#/items/0/device_id"}),
            FirstDeviceReadings=(
                "getReadings",
                {
                    "device_id": "$response.body#/items/0/device_id",
                    "metric": "$response.body#/items/0/metrics/0",
                },
            ),
        ),
    },
    tags=["devices"],
    summary="Devices, filtered and paginated",
)
async def list_devices(
    request: Request,
    response: Response,
    principal: Viewer,
    services: Services,
    site: Annotated[str | None, TextQuery] = None,
    type: Annotated[str | None, TextQuery] = None,
    state: Annotated[DeviceState | None, Query()] = None,
    search: Annotated[
        str | None,
        Query(
            max_length=MAX_TEXT,
            description="substring of the device id, any case",
            json_schema_extra=NO_NUL,
        ),
    ] = None,
    area: PlaceQuery = None,
    line: PlaceQuery = None,
    machine: PlaceQuery = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    place = (
        checked_text("area", area),
        checked_text("line", line),
        checked_text("machine", machine),
    )
    f = DeviceFilter(
        site=checked_text("site", site),
        type=checked_text("type", type),
        state=state,
        search=checked_text("search", search),
        limit=limit,
        offset=offset,
        device_ids=await _devices_at(services, place),
    )
    return await page_json(request, response, services.reads.devices(f))


async def _devices_at(
    services: WebServices, place: tuple[str | None, str | None, str | None]
) -> frozenset[str] | None:
    """The devices at an area/line/machine of the asset hierarchy (their effective metadata);
    None when no level is asked for."""
    if all(level is None for level in place):
        return None
    places = await services.metadata.places(await all_devices(services.reads))
    return frozenset(d for d, at in places.items() if at_place(at[1:], place))


DeviceId = Annotated[str, Path(max_length=MAX_TEXT)]


async def _device(services: WebServices, device_id: str) -> DeviceView:
    """The device, or 404. An id holding NUL cannot be stored, so no such device exists."""
    device = None if "\x00" in device_id else await services.reads.device(device_id)
    if device is None:
        raise not_found(f"no device {device_id!r}")
    return device


@router.get(
    f"{API}/devices/{{device_id}}",
    operation_id="getDevice",
    response_model=DeviceOut,
    responses={
        **error_responses(401, 404, 422),
        **links(
            Readings=(
                "getReadings",
                {"device_id": "$response.body#/device_id", "metric": "$response.body#/metrics/0"},
            )
        ),
    },
    tags=["devices"],
    summary="One device: state, latest values, active alerts",
)
async def get_device(principal: Viewer, services: Services, device_id: DeviceId) -> dict[str, Any]:
    return (await _device(services, device_id)).to_json()


@router.get(
    f"{API}/devices/{{device_id}}/readings",
    operation_id="getReadings",
    response_model=SeriesOut,
    responses=error_responses(401, 404, 422),
    tags=["devices"],
    summary="One metric of a device over a time range, downsampled to max_points",
    description="Readings in [start, end), from the raw table for ranges up to 6 hours and "
    "beyond from the finest rollup tier (1 minute, 1 hour, 1 day) with at most max(3000, "
    "max_points) buckets over the range, each bucket as its min and max; the end of the range "
    "that tier does not hold yet comes from the finer tiers and the raw table. `source` (and "
    "the X-Readings-Source header) names the tier used. Downsampled to about max_points with "
    "every pixel column's min and max kept. start must be before end (422 otherwise); an "
    "unknown device or a metric the device never reported is 404.",
)
async def get_readings(
    principal: Viewer,
    services: Services,
    response: Response,
    device_id: DeviceId,
    metric: Annotated[
        str, Query(min_length=1, max_length=MAX_TEXT, description="one of the device's metrics")
    ],
    start: Annotated[
        int | None, Query(ge=0, le=MAX_TS, description="epoch ms; default: end - 1 hour")
    ] = None,
    end: Annotated[int | None, Query(ge=0, le=MAX_TS, description="epoch ms; default: now")] = None,
    max_points: Annotated[int, Query(ge=2, le=10_000, description="points at most")] = 1000,
) -> dict[str, Any]:
    device = await _device(services, device_id)
    if metric not in device.metrics:
        known = ", ".join(device.metrics) or "none"
        # Not found rather than invalid: the metric is well-formed, this device just has no
        # readings of it.
        raise not_found(
            f"query parameter 'metric': device {device_id!r} has no metric {metric!r} "
            f"(it reports: {known})"
        )
    end_ms = int(time.time() * 1000) if end is None else end
    start_ms = max(0, end_ms - HOUR_MS) if start is None else start
    if start_ms >= end_ms:
        raise invalid(f"query parameter 'start' ({start_ms}) must be before 'end' ({end_ms})")
    try:
        series = await services.reads.series(device_id, metric, start_ms, end_ms, max_points)
    except ValueError as exc:
        raise invalid(str(exc)) from exc
    response.headers["X-Readings-Source"] = series.source
    return series.to_json()


@router.get(
    f"{API}/gateways",
    operation_id="listGateways",
    response_model=list[GatewayOut],
    responses=error_responses(401),
    tags=["gateways"],
    summary="Edge gateways and their latest health report",
)
async def list_gateways(principal: Viewer, services: Services) -> list[GatewayOut]:
    return [GatewayOut.model_validate(g) for g in await services.reads.gateways()]


# -- alerts -------------------------------------------------------------------------------------


@router.get(
    f"{API}/alerts",
    operation_id="listAlerts",
    response_model=AlertPage,
    responses={
        **error_responses(401, 422),
        **links(
            AcknowledgeFirst=("acknowledgeAlert", {"alert_id": "$response.body#/items/0/id"}),
            ClearFirst=("clearAlert", {"alert_id": "$response.body#/items/0/id"}),
        ),
    },
    tags=["alerts"],
    summary="Alerts, newest first, filtered and paginated",
)
async def list_alerts(
    request: Request,
    response: Response,
    principal: Viewer,
    services: Services,
    status: Annotated[AlertStatus, Query()] = "active",
    severity: Annotated[Severity | None, Query()] = None,
    device_id: Annotated[str | None, TextQuery] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    f = AlertFilter(
        status=status,
        severity=severity,
        device_id=checked_text("device_id", device_id),
        limit=limit,
        offset=offset,
    )
    return await page_json(request, response, services.reads.alerts(f))


AlertId = Annotated[int, Path(ge=1, le=MAX_ALERT_ID)]


@router.post(
    f"{API}/alerts/{{alert_id}}/ack",
    operation_id="acknowledgeAlert",
    response_model=AlertOut,
    responses={
        **error_responses(401, 403, 404, 422),
        **links(Clear=("clearAlert", {"alert_id": "$response.body#/id"})),
    },
    tags=["alerts"],
    summary="Acknowledge an alert, with an optional comment (operator or admin)",
)
async def acknowledge_alert(
    request: Request,
    principal: Operator,
    services: Services,
    alert_id: AlertId,
    body: AckBody | None = None,
) -> BaseModel:
    comment = None if body is None else body.comment
    if comment is not None and "\x00" in comment:
        raise invalid("body field 'comment' must not contain NUL characters")
    try:
        row = await services.alerts.acknowledge(
            alert_id, principal, comment, client=client_address(request)
        )
    except ValueError as exc:
        raise invalid(f"body field 'comment': {exc}") from exc
    if row is None:
        raise not_found(f"no alert {alert_id}")
    services.metrics.alert_actions["ack"] += 1  # AlertService logs it (alert, rule, by)
    return AlertOut.model_validate(row)


@router.post(
    f"{API}/alerts/{{alert_id}}/clear",
    operation_id="clearAlert",
    response_model=AlertOut,
    responses=error_responses(401, 403, 404, 422),
    tags=["alerts"],
    summary="Clear an alert by hand (operator or admin)",
)
async def clear_alert(
    request: Request, principal: Operator, services: Services, alert_id: AlertId
) -> BaseModel:
    row = await services.alerts.clear(alert_id, principal, client=client_address(request))
    if row is None:
        raise not_found(f"no alert {alert_id}")
    services.metrics.alert_actions["clear"] += 1  # AlertService logs the clearing
    return AlertOut.model_validate(row)


# -- audit log ----------------------------------------------------------------------------------


@router.get(
    f"{API}/audit",
    operation_id="listAudit",
    response_model=AuditPage,
    responses=error_responses(401, 403, 422),
    tags=["audit"],
    summary="The audit log, newest first, filtered and paginated (admin)",
    description="Sign-ins (both outcomes, with the reason of a failure), sign-outs, alert "
    "acknowledgements and clears, user and token changes, from the dashboard, the API and the "
    "CLI: who, when, from which address, what changed. Never a password or a token. The log "
    "is append-only: no API, page or command changes or deletes an entry.",
)
async def list_audit(
    request: Request,
    response: Response,
    principal: Admin,
    services: Services,
    since: Annotated[int | None, Query(ge=0, le=MAX_TS, description="epoch ms, inclusive")] = None,
    until: Annotated[int | None, Query(ge=0, le=MAX_TS, description="epoch ms, exclusive")] = None,
    actor: Annotated[
        str | None,
        Query(
            max_length=MAX_TEXT,
            description='a user name, "token:<name>" or "cli"',
            json_schema_extra=NO_NUL,
        ),
    ] = None,
    action: Annotated[
        str | None,
        Query(
            max_length=64,
            description=f"one of {', '.join(ACTIONS)}, or a prefix ending in '.' (e.g. 'user.')",
            pattern=r"^[a-z]+\.[a-z_]*$",
        ),
    ] = None,
    outcome: Annotated[Outcome | None, Query()] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    f = AuditFilter(
        since=since,
        until=until,
        actor=checked_text("actor", actor),
        action=checked_text("action", action),
        outcome=outcome,
        limit=limit,
        offset=offset,
    )
    return await page_json(request, response, services.audit.entries(f))


# -- operations: public --------------------------------------------------------------------------


@router.get(
    "/healthz",
    operation_id="healthz",
    response_model=HealthOut,
    tags=["operations"],
    summary="The process is up",
)
async def healthz() -> dict[str, Any]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    operation_id="readyz",
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "A dependency is unreachable"}},
    tags=["operations"],
    summary="PostgreSQL and Redis reachable, live subscription up",
)
async def readyz(services: Services) -> Response:
    checks = dict(await services.reads.ping())
    checks["live"] = services.fanout.connected
    ready = all(checks.values())
    body = {"status": "ready" if ready else "not ready", "checks": checks}
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get(
    "/metrics",
    operation_id="metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}}},
    tags=["operations"],
    summary="Prometheus metrics (text exposition format 0.0.4)",
)
async def metrics(services: Services) -> Response:
    return Response(services.metrics.render(services.fanout.stats), media_type=CONTENT_TYPE)


router.add_api_websocket_route(f"{API}/live", live)
# Routes of their own modules, before the catch-all below: the routes themselves, not
# `include_router` (which this FastAPI keeps as one nested entry), since `unknown_route` must
# see every route to answer a wrong method with 405.
router.routes.extend(alarms.router.routes)  # shelving, bulk actions, maintenance windows
router.routes.extend(rules_router.routes)  # alert rules, edits, versions
router.routes.extend(notifications_router.routes)  # notification channels, routes, attempts
router.routes.extend(metadata_router.routes)  # device metadata, asset hierarchy


# -- anything else under /api/v1: JSON, not the dashboard's HTML 404 ---------------------------

_METHODS: Final = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@router.api_route(f"{API}/{{rest:path}}", methods=_METHODS, include_in_schema=False)
async def unknown_route(request: Request, rest: str) -> Response:
    """Registered last, so it sees only what no route above matched. Starlette would answer a
    known path with the wrong method 405 by itself, but this route matches every method, so it
    works that out here, from the routes' own path patterns."""
    path = request.scope["path"]
    allowed = sorted(
        {
            method
            for route in router.routes
            if isinstance(route, APIRoute)
            and route.endpoint is not unknown_route
            and route.path_regex.match(path)
            for method in route.methods or ()
        }
    )
    if allowed:
        return error_response(
            ApiError(
                405,
                "method_not_allowed",
                f"{request.method} is not allowed on {path}; allowed: {', '.join(allowed)}",
                {"Allow": ", ".join(allowed)},
            )
        )
    return error_response(not_found(f"no API route {request.method} {path}"))
