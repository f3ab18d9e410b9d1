"""REST and WebSocket API of the web process (`/api/v1`), and `/healthz`, `/readyz`, `/metrics`.

Every `/api/v1` route needs `Authorization: Bearer <token>` (`iot-hub token create NAME --role
ROLE [--expires-in 30d]`): none gives 401 with `WWW-Authenticate: Bearer`, a wrong, revoked or
expired one 401 (an expired one says when it expired), a viewer acknowledging or clearing an
alert 403, anyone but an admin reading the audit log (`GET /api/v1/audit`) 403. Errors are
JSON `{"error": <code>, "detail": <message>}` with a message that names the parameter at
fault; the OpenAPI document (`/openapi.json`, `/docs`) describes every response, errors
included.

WebSocket `/api/v1/live?devices=a,b&alerts=true&token=...` (or the Authorization header) sends
`{"type": "readings", "readings": [...]}` and `{"type": "alert", "alert": {...}}` as the hub
publishes them (`hub.web.api_live`). Bodies are in `hub.web.api_models`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException  # what FastAPI raises, and its subclass

from hub.storage.audit_model import ACTIONS, AuditFilter, Outcome
from hub.storage.partitions import ms_to_datetime
from hub.storage.postgres import TRANSIENT_ERRORS
from hub.web.api_live import live
from hub.web.api_models import (
    NO_NUL,
    AckBody,
    AlertOut,
    AlertPage,
    AuditPage,
    DeviceOut,
    DevicePage,
    ErrorBody,
    GatewayOut,
    HealthOut,
    ReadyOut,
    SeriesOut,
)
from hub.web.container import WebServices, web_services
from hub.web.metrics import CONTENT_TYPE
from hub.web.model import (
    MAX_PAGE,
    AlertFilter,
    AlertStatus,
    DeviceFilter,
    DeviceState,
    DeviceView,
    Page,
    Principal,
    Severity,
    can_acknowledge,
    can_administer,
)

__all__ = ["ApiError", "router"]

log = logging.getLogger("hub.web.api")

API: Final = "/api/v1"
MAX_OFFSET: Final = 2**31 - 1
MAX_ALERT_ID: Final = 2**63 - 1  # bigserial
MAX_TS: Final = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last ms a datetime holds
HOUR_MS: Final = 3_600_000
MAX_TEXT: Final = 256  # query strings: device ids, sites, types, search


# -- errors -------------------------------------------------------------------------------------


class ApiError(Exception):
    def __init__(
        self, status: int, error: str, detail: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = dict(headers or {})


def _invalid(detail: str) -> ApiError:
    return ApiError(422, "invalid_request", detail)


def _not_found(detail: str) -> ApiError:
    return ApiError(404, "not_found", detail)


def _error_response(exc: ApiError) -> JSONResponse:
    return JSONResponse(
        {"error": exc.error, "detail": exc.detail}, status_code=exc.status, headers=exc.headers
    )


_LOCATIONS: Final = {"query": "query parameter", "path": "path parameter", "header": "header"}


def describe_validation_error(error: Mapping[str, Any]) -> str:
    """One pydantic/FastAPI validation error as a sentence naming the parameter at fault."""
    loc = [str(part) for part in error.get("loc", ())]
    where, rest = (loc[0], loc[1:]) if loc else ("request", [])
    if error.get("type") == "json_invalid":
        return (
            f"request body is not valid JSON: {error.get('ctx', {}).get('error', 'decode error')}"
        )
    if where in _LOCATIONS:
        subject = f"{_LOCATIONS[where]} {'.'.join(rest)!r}"
    elif where == "body":
        subject = f"body field {'.'.join(rest)!r}" if rest else "request body"
    else:
        subject = ".".join(loc) or "request"
    message = f"{subject}: {error.get('msg', 'invalid')}"
    value = error.get("input")
    if isinstance(value, str | int | float) and not isinstance(value, bool) and rest:
        shown = repr(value)
        message += f" (got {shown[:60] + '...' if len(shown) > 60 else shown})"
    return message


def _validation_response(exc: RequestValidationError) -> JSONResponse:
    detail = "; ".join(describe_validation_error(e) for e in exc.errors()) or "invalid request"
    return _error_response(_invalid(detail))


_HTTP_CODES: Final = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found"}


def _from_http_exception(exc: HTTPException) -> ApiError:
    if exc.status_code == 400:  # a body that is not UTF-8 JSON: invalid, like one that is not JSON
        return _invalid(f"request body: {exc.detail}")
    code = _HTTP_CODES.get(exc.status_code, "bad_request")
    return ApiError(exc.status_code, code, str(exc.detail), exc.headers)


UNAVAILABLE: Final = ApiError(
    503,
    "unavailable",
    "the database is unreachable or overloaded; try again shortly",
    {"Retry-After": "5"},
)


class _ApiRoute(APIRoute):
    """Errors in our shape, counted per route template, and headers every API answer carries."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        route, method_of = self.path, frozenset(self.methods or ())

        async def handle(request: Request) -> Response:
            started = time.perf_counter()
            status = 500
            try:
                try:
                    response = await handler(request)
                except ApiError as exc:
                    response = _error_response(exc)
                except RequestValidationError as exc:
                    response = _validation_response(exc)
                except HTTPException as exc:  # FastAPI's own, e.g. a body it cannot read
                    response = _error_response(_from_http_exception(exc))
                except TRANSIENT_ERRORS as exc:  # PostgreSQL away, restarting or overloaded
                    log.warning(
                        "database_unavailable",
                        extra={"route": route, "error": f"{type(exc).__name__}: {exc}"},
                    )
                    response = _error_response(UNAVAILABLE)
                status = response.status_code
                response.headers["X-Content-Type-Options"] = "nosniff"
                response.headers.setdefault("Cache-Control", "no-store")
                return response
            finally:
                method = request.method if request.method in method_of else "other"
                web_services(request).metrics.http_request(
                    method, route, status, time.perf_counter() - started
                )

        return handle


router = APIRouter(route_class=_ApiRoute)


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        401: "No token, or a wrong, revoked or expired one",
        403: "The token's role may not do this",
        404: "No such device, metric of the device, or alert",
        422: "A parameter or the body is invalid; the message names it",
        503: "The database is unreachable or overloaded; retry after the Retry-After seconds",
    }
    return {code: {"model": ErrorBody, "description": descriptions[code]} for code in (*codes, 503)}


def _links(**links: tuple[str, dict[str, str]]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI links of the 200 response: which operation takes what from this one's body
    (documentation for clients, and what a stateful fuzzer follows)."""
    return {
        200: {
            "links": {
                name: {"operationId": operation, "parameters": parameters}
                for name, (operation, parameters) in links.items()
            }
        }
    }


# -- authentication ----------------------------------------------------------------------------

_bearer = HTTPBearer(
    auto_error=False,
    description="An API token from `iot-hub token create NAME --role viewer|operator|admin`.",
)


Services = Annotated[WebServices, Depends(web_services)]


async def require_principal(
    request: Request,
    services: Services,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise ApiError(
            401,
            "unauthorized",
            "missing bearer token: send the header 'Authorization: Bearer <token>'",
            {"WWW-Authenticate": "Bearer"},
        )
    check = await services.auth.check_token(credentials.credentials)
    if check.expired_at is not None:
        expired = ms_to_datetime(check.expired_at).strftime("%Y-%m-%dT%H:%M:%SZ")
        log.warning("token_expired", extra={"client": client_address(request)})
        raise ApiError(
            401,
            "unauthorized",
            f"token expired at {expired}: create a new one with `iot-hub token create`",
            {"WWW-Authenticate": 'Bearer error="invalid_token", error_description="expired"'},
        )
    principal = check.principal
    if principal is None:
        raise ApiError(
            401,
            "unauthorized",
            "invalid or revoked token",
            {"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return principal


async def require_operator(
    principal: Annotated[Principal, Depends(require_principal)],
) -> Principal:
    if not can_acknowledge(principal.role):
        raise ApiError(
            403,
            "forbidden",
            f"role {principal.role!r} may not acknowledge or clear alerts; "
            "operator or admin is required",
        )
    return principal


async def require_admin(
    principal: Annotated[Principal, Depends(require_principal)],
) -> Principal:
    if not can_administer(principal.role):
        raise ApiError(
            403, "forbidden", f"role {principal.role!r} may not read the audit log; admin only"
        )
    return principal


def client_address(request: Request) -> str | None:
    """The peer's address as uvicorn reports it (behind a proxy listed in
    FORWARDED_ALLOW_IPS, the X-Forwarded-For address)."""
    return request.client.host if request.client is not None else None


Viewer = Annotated[Principal, Depends(require_principal)]
Operator = Annotated[Principal, Depends(require_operator)]
Admin = Annotated[Principal, Depends(require_admin)]


def _text(name: str, value: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL, so no stored value contains it: say so, rather than fail
    in the driver."""
    if value is not None and "\x00" in value:
        raise _invalid(f"query parameter {name!r} must not contain NUL characters")
    return value


TextQuery = Query(max_length=MAX_TEXT, json_schema_extra=NO_NUL)
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"page size, 1..{MAX_PAGE}")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="items to skip")]


async def _page_json(
    request: Request, response: Response, fetch: Awaitable[Page[Any]]
) -> dict[str, Any]:
    """A list endpoint's answer: the page, with a `Link: <...>; rel="next"` header while more
    pages follow; a filter the data layer refuses is 422."""
    try:
        page = await fetch
    except ValueError as exc:
        raise _invalid(str(exc)) from exc
    if page.offset + page.limit < page.total:
        url = request.url.include_query_params(offset=page.offset + page.limit, limit=page.limit)
        response.headers["Link"] = f'<{url.path}?{url.query}>; rel="next"'
    return page.to_json()


# -- devices and gateways -----------------------------------------------------------------------


@router.get(
    f"{API}/devices",
    operation_id="listDevices",
    response_model=DevicePage,
    responses={
        **_errors(401, 422),
        **_links(
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
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    f = DeviceFilter(
        site=_text("site", site),
        type=_text("type", type),
        state=state,
        search=_text("search", search),
        limit=limit,
        offset=offset,
    )
    return await _page_json(request, response, services.reads.devices(f))


DeviceId = Annotated[str, Path(max_length=MAX_TEXT)]


async def _device(services: WebServices, device_id: str) -> DeviceView:
    """The device, or 404. An id holding NUL cannot be stored, so no such device exists."""
    device = None if "\x00" in device_id else await services.reads.device(device_id)
    if device is None:
        raise _not_found(f"no device {device_id!r}")
    return device


@router.get(
    f"{API}/devices/{{device_id}}",
    operation_id="getDevice",
    response_model=DeviceOut,
    responses={
        **_errors(401, 404, 422),
        **_links(
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
    responses=_errors(401, 404, 422),
    tags=["devices"],
    summary="One metric of a device over a time range, downsampled to max_points",
    description="Readings in [start, end), from the raw table for ranges up to 6 hours and "
    "from 1-minute rollups (each minute's min and max) beyond; downsampled to about max_points "
    "with every pixel column's min and max kept. start must be before end (422 otherwise); "
    "an unknown device or a metric the device never reported is 404.",
)
async def get_readings(
    principal: Viewer,
    services: Services,
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
        raise _not_found(
            f"query parameter 'metric': device {device_id!r} has no metric {metric!r} "
            f"(it reports: {known})"
        )
    end_ms = int(time.time() * 1000) if end is None else end
    start_ms = max(0, end_ms - HOUR_MS) if start is None else start
    if start_ms >= end_ms:
        raise _invalid(f"query parameter 'start' ({start_ms}) must be before 'end' ({end_ms})")
    try:
        series = await services.reads.series(device_id, metric, start_ms, end_ms, max_points)
    except ValueError as exc:
        raise _invalid(str(exc)) from exc
    return series.to_json()


@router.get(
    f"{API}/gateways",
    operation_id="listGateways",
    response_model=list[GatewayOut],
    responses=_errors(401),
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
        **_errors(401, 422),
        **_links(
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
        device_id=_text("device_id", device_id),
        limit=limit,
        offset=offset,
    )
    return await _page_json(request, response, services.reads.alerts(f))


AlertId = Annotated[int, Path(ge=1, le=MAX_ALERT_ID)]


@router.post(
    f"{API}/alerts/{{alert_id}}/ack",
    operation_id="acknowledgeAlert",
    response_model=AlertOut,
    responses={
        **_errors(401, 403, 404, 422),
        **_links(Clear=("clearAlert", {"alert_id": "$response.body#/id"})),
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
) -> AlertOut:
    comment = None if body is None else body.comment
    if comment is not None and "\x00" in comment:
        raise _invalid("body field 'comment' must not contain NUL characters")
    try:
        row = await services.alerts.acknowledge(
            alert_id, principal, comment, client=client_address(request)
        )
    except ValueError as exc:
        raise _invalid(f"body field 'comment': {exc}") from exc
    if row is None:
        raise _not_found(f"no alert {alert_id}")
    services.metrics.alert_actions["ack"] += (
        1  # AlertService logs the acknowledgement (alert, rule, by)
    )
    return AlertOut.model_validate(row)


@router.post(
    f"{API}/alerts/{{alert_id}}/clear",
    operation_id="clearAlert",
    response_model=AlertOut,
    responses=_errors(401, 403, 404, 422),
    tags=["alerts"],
    summary="Clear an alert by hand (operator or admin)",
)
async def clear_alert(
    request: Request, principal: Operator, services: Services, alert_id: AlertId
) -> AlertOut:
    row = await services.alerts.clear(alert_id, principal, client=client_address(request))
    if row is None:
        raise _not_found(f"no alert {alert_id}")
    services.metrics.alert_actions["clear"] += 1  # AlertService logs the clearing
    return AlertOut.model_validate(row)


# -- audit log ----------------------------------------------------------------------------------


@router.get(
    f"{API}/audit",
    operation_id="listAudit",
    response_model=AuditPage,
    responses=_errors(401, 403, 422),
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
        actor=_text("actor", actor),
        action=_text("action", action),
        outcome=outcome,
        limit=limit,
        offset=offset,
    )
    return await _page_json(request, response, services.audit.entries(f))


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
        return _error_response(
            ApiError(
                405,
                "method_not_allowed",
                f"{request.method} is not allowed on {path}; allowed: {', '.join(allowed)}",
                {"Allow": ", ".join(allowed)},
            )
        )
    return _error_response(_not_found(f"no API route {request.method} {path}"))
