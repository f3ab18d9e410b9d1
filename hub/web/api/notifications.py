"""The API of notifications: channels and routes (operators and admins read, admins change,
every change audited, secrets masked), "send test message", and the delivery attempts of an
alert (`hub.notify`; docs/notifications.md).

Entries of `HUB_NOTIFICATIONS_FILE` are listed with `"source": "file"` and are read-only here
(409): the file is their truth, and every worker start makes the database match it again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Final

from fastapi import APIRouter, Body, Depends, Path, Request, Response

from hub.notify.config import ConfigError
from hub.web.api.deps import API, MAX_ALERT_ID, Admin, Services, client_address, require_principal
from hub.web.api.errors import ApiError, ApiRoute, error_responses, invalid, not_found
from hub.web.api.models import ErrorBody
from hub.web.model import Principal, can_acknowledge
from hub.web.notify_service import Conflict, Missing, Unavailable

__all__ = ["router"]

router = APIRouter(route_class=ApiRoute, tags=["notifications"])

Name = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
AlertId = Annotated[int, Path(ge=1, le=MAX_ALERT_ID)]
SpecBody = Annotated[dict[str, Any], Body(description="the entry, as in the notifications file")]
_CONFLICT: Final[dict[int | str, dict[str, Any]]] = {
    409: {"model": ErrorBody, "description": "Defined in the file, or in use"}
}


async def _require_operator(
    principal: Annotated[Principal, Depends(require_principal)],
) -> Principal:
    if not can_acknowledge(principal.role):
        raise ApiError(
            403,
            "forbidden",
            f"role {principal.role!r} may not read notification settings; operator or admin",
        )
    return principal


Operator = Annotated[Principal, Depends(_require_operator)]


@asynccontextmanager
async def _errors() -> AsyncIterator[None]:
    """The service's refusals as API errors."""
    try:
        yield
    except ConfigError as exc:
        raise invalid(f"body field {exc}") from exc
    except Conflict as exc:
        raise ApiError(409, "conflict", str(exc)) from exc
    except Missing as exc:
        raise not_found(str(exc)) from exc
    except Unavailable as exc:
        raise ApiError(503, "unavailable", str(exc)) from exc


def _named(body: dict[str, Any], name: str) -> dict[str, Any]:
    if body.get("name", name) != name:
        raise invalid(f"body field 'name': {body.get('name')!r} differs from the path's {name!r}")
    return {**body, "name": name}


# -- channels -------------------------------------------------------------------------------------


@router.get(
    f"{API}/notification-channels",
    operation_id="listNotificationChannels",
    responses=error_responses(401, 403, 422),
    summary="Notification channels, secrets masked (operator or admin)",
)
async def list_channels(principal: Operator, services: Services) -> dict[str, Any]:
    async with _errors():
        return {"items": await services.notifications.channels(principal)}


@router.post(
    f"{API}/notification-channels",
    operation_id="createNotificationChannel",
    status_code=201,
    responses={**error_responses(401, 403, 404, 422), **_CONFLICT},
    summary="Create a notification channel (admin)",
)
async def create_channel(
    request: Request, principal: Admin, services: Services, body: SpecBody
) -> dict[str, Any]:
    async with _errors():
        out, _ = await services.notifications.save_channel(
            principal, body, client_address(request), create_only=True
        )
    return out


@router.put(
    f"{API}/notification-channels/{{name}}",
    operation_id="putNotificationChannel",
    responses={**error_responses(401, 403, 404, 422), **_CONFLICT},
    summary="Create or replace a notification channel (admin); masked secrets keep their value",
)
async def put_channel(
    request: Request,
    response: Response,
    principal: Admin,
    services: Services,
    name: Name,
    body: SpecBody,
) -> dict[str, Any]:
    async with _errors():
        out, created = await services.notifications.save_channel(
            principal, _named(body, name), client_address(request), create_only=False
        )
    if created:
        response.status_code = 201
    return out


@router.delete(
    f"{API}/notification-channels/{{name}}",
    operation_id="deleteNotificationChannel",
    status_code=204,
    responses={**error_responses(401, 403, 404, 422), **_CONFLICT},
    summary="Delete a notification channel no route uses (admin)",
)
async def delete_channel(
    request: Request, principal: Admin, services: Services, name: Name
) -> Response:
    async with _errors():
        await services.notifications.delete_channel(principal, name, client_address(request))
    return Response(status_code=204)


@router.post(
    f"{API}/notification-channels/{{name}}/test",
    operation_id="testNotificationChannel",
    responses=error_responses(401, 403, 404, 422),
    summary="Send a test message on a channel, now (admin)",
    description="The answer says whether the receiver took it, and why not; the attempt is "
    "recorded and audited. Nothing is retried.",
)
async def test_channel(
    request: Request, principal: Admin, services: Services, name: Name
) -> dict[str, Any]:
    async with _errors():
        result = await services.notifications.send_test(principal, name, client_address(request))
    return result.to_json()


# -- routes ---------------------------------------------------------------------------------------


@router.get(
    f"{API}/notification-routes",
    operation_id="listNotificationRoutes",
    responses=error_responses(401, 403, 422),
    summary="Notification routes, in order (operator or admin)",
)
async def list_routes(principal: Operator, services: Services) -> dict[str, Any]:
    async with _errors():
        return {"items": await services.notifications.routes(principal)}


@router.post(
    f"{API}/notification-routes",
    operation_id="createNotificationRoute",
    status_code=201,
    responses={**error_responses(401, 403, 404, 422), **_CONFLICT},
    summary="Add a notification route at the end of the list (admin)",
)
async def create_route(
    request: Request, principal: Admin, services: Services, body: SpecBody
) -> dict[str, Any]:
    async with _errors():
        out, _ = await services.notifications.save_route(
            principal, body, client_address(request), create_only=True
        )
    return out


@router.put(
    f"{API}/notification-routes/{{name}}",
    operation_id="putNotificationRoute",
    responses={**error_responses(401, 403, 404, 422), **_CONFLICT},
    summary="Create or replace a notification route (admin)",
)
async def put_route(
    request: Request,
    response: Response,
    principal: Admin,
    services: Services,
    name: Name,
    body: SpecBody,
) -> dict[str, Any]:
    async with _errors():
        out, created = await services.notifications.save_route(
            principal, _named(body, name), client_address(request), create_only=False
        )
    if created:
        response.status_code = 201
    return out


@router.delete(
    f"{API}/notification-routes/{{name}}",
    operation_id="deleteNotificationRoute",
    status_code=204,
    responses={**error_responses(401, 403, 404, 422), **_CONFLICT},
    summary="Delete a notification route (admin)",
)
async def delete_route(
    request: Request, principal: Admin, services: Services, name: Name
) -> Response:
    async with _errors():
        await services.notifications.delete_route(principal, name, client_address(request))
    return Response(status_code=204)


# -- attempts -------------------------------------------------------------------------------------


@router.get(
    f"{API}/alerts/{{alert_id}}/notifications",
    operation_id="listAlertNotifications",
    responses=error_responses(401, 404, 422),
    tags=["alerts"],
    summary="Who was told of an alert: every delivery attempt, oldest first",
)
async def alert_notifications(
    principal: Annotated[Principal, Depends(require_principal)],
    services: Services,
    alert_id: AlertId,
) -> dict[str, Any]:
    async with _errors():
        attempts = await services.notifications.attempts(alert_id)
    return {"alert_id": alert_id, "items": [a.to_json() for a in attempts]}
