"""The API of notifications: channels and routes (operators and admins read, admins change,
every change audited, secrets masked), "send test message", and the delivery attempts of an
alert (`hub.notify`; docs/notifications.md).

Entries of `HUB_NOTIFICATIONS_FILE` are listed with `"source": "file"` and are read-only here
(409): the file is their truth, and every worker start makes the database match it again.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Annotated, Any, Final

from fastapi import APIRouter, Body, Depends, Path, Request, Response

from hub.notify.config import ConfigError, masked, parse_channel, parse_route, unmask
from hub.notify.content import notice_for
from hub.notify.senders import ChannelSender
from hub.notify.store import ConfigEntry, NotifyStore, Outcome
from hub.storage.audit_model import Action, Actor, AuditEvent
from hub.storage.model import AlertRow
from hub.web.api.deps import API, MAX_ALERT_ID, Admin, Services, client_address, require_principal
from hub.web.api.errors import ApiError, ApiRoute, error_responses, invalid, not_found
from hub.web.api.models import ErrorBody
from hub.web.container import WebServices
from hub.web.model import Principal, can_acknowledge

__all__ = ["router"]

log = logging.getLogger("hub.web.api")
router = APIRouter(route_class=ApiRoute, tags=["notifications"])

Name = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
AlertId = Annotated[int, Path(ge=1, le=MAX_ALERT_ID)]
SpecBody = Annotated[dict[str, Any], Body(description="the entry, as in the notifications file")]
_CONFLICT: Final[dict[int | str, dict[str, Any]]] = {
    409: {"model": ErrorBody, "description": "Defined in the file, or in use"}
}
_UNAVAILABLE: Final = "notifications need the PostgreSQL storage"


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


def _store(services: WebServices) -> NotifyStore:
    if services.notify is None:
        raise ApiError(503, "unavailable", _UNAVAILABLE)
    return services.notify


def _entry_json(entry: ConfigEntry, *, channel: bool) -> dict[str, Any]:
    spec = entry.spec
    if channel:
        try:
            spec = masked(parse_channel(spec))
        except ConfigError:
            spec = {"name": entry.name, "type": spec.get("type")}  # never echo unparsed secrets
    return {"name": entry.name, "source": entry.source, "spec": spec}


async def _audit(
    services: WebServices,
    request: Request,
    by: Principal,
    action: Action,
    target: str,
    details: dict[str, Any] | None = None,
    *,
    outcome: str = "success",
) -> None:
    await services.audit.record(
        AuditEvent(
            Actor(by.name, client_address(request)),
            action,
            outcome="success" if outcome == "success" else "failure",
            target=target,
            details=details or {},
        )
    )


def _conflict(exc: ConfigError) -> ApiError:
    return ApiError(409, "conflict", str(exc))


# -- channels -------------------------------------------------------------------------------------


@router.get(
    f"{API}/notification-channels",
    operation_id="listNotificationChannels",
    responses=error_responses(401, 403, 422),
    summary="Notification channels, secrets masked (operator or admin)",
)
async def list_channels(principal: Operator, services: Services) -> dict[str, Any]:
    entries = await _store(services).channel_entries()
    return {"items": [_entry_json(e, channel=True) for e in entries]}


async def _put_channel(
    request: Request, principal: Principal, services: WebServices, name: str, body: dict[str, Any]
) -> tuple[dict[str, Any], bool]:
    store = _store(services)
    if body.get("name", name) != name:
        raise invalid(f"body field 'name': {body.get('name')!r} differs from the path's {name!r}")
    old = next((e for e in await store.channel_entries() if e.name == name), None)
    previous = None
    if old is not None:
        try:
            previous = parse_channel(old.spec)
        except ConfigError:
            previous = None
    try:
        channel = parse_channel(unmask({**body, "name": name}, previous))
    except ConfigError as exc:
        raise invalid(f"body field {exc}") from exc
    try:
        created = await store.put_channel(channel)
    except ConfigError as exc:
        raise _conflict(exc) from exc
    action: Action = "notification.channel.create" if created else "notification.channel.update"
    await _audit(services, request, principal, action, name, {"type": channel.type})
    log.info("notification_channel_saved", extra={"channel": name, "by": principal.name})
    return {"name": name, "source": "api", "spec": masked(channel)}, created


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
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise invalid("body field 'name': required")
    if any(e.name == name for e in await _store(services).channel_entries()):
        raise ApiError(409, "conflict", f"name: channel {name!r} exists; PUT to change it")
    out, _ = await _put_channel(request, principal, services, name, body)
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
    out, created = await _put_channel(request, principal, services, name, body)
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
    try:
        deleted = await _store(services).delete_channel(name)
    except ConfigError as exc:
        raise _conflict(exc) from exc
    if not deleted:
        raise not_found(f"no notification channel {name!r}")
    await _audit(services, request, principal, "notification.channel.delete", name)
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
    store = _store(services)
    config = await store.load_config()
    channel = config.channel(name)
    if channel is None:
        raise not_found(f"no notification channel {name!r}")
    now = int(time.time() * 1000)
    key = f"test-{uuid.uuid4().hex}"
    sample = AlertRow(
        id=0,
        device_id="test-device",
        gateway_id="test-gateway",
        rule="notification_test",
        severity="warning",
        state="active",
        acknowledged=False,
        ack_by=None,
        ack_at=None,
        ack_comment=None,
        metric=None,
        value=None,
        message=f"test message from the IoT hub, sent by {principal.name}",
        raised_at=now,
        updated_at=now,
        cleared_at=None,
        cleared_by=None,
        occurrences=1,
    )
    notice = notice_for(
        sample,
        event="test",
        idempotency_key=key,
        site="test-site",
        device_type=None,
        public_url=services.settings.public_url,
    )
    sender = ChannelSender(public_url=services.settings.public_url)
    try:
        result = await sender.send(channel, [notice], route=None)
    finally:
        await sender.close()
    outcome: Outcome = "delivered" if result.delivered else "failed"
    await store.record_test(name, key, outcome, result.detail)
    await _audit(
        services,
        request,
        principal,
        "notification.channel.test",
        name,
        {"delivered": result.delivered},
        outcome="success" if result.delivered else "failure",
    )
    log.info(
        "notification_test",
        extra={"channel": name, "outcome": outcome, "detail": result.detail, "by": principal.name},
    )
    return {
        "channel": name,
        "delivered": result.delivered,
        "detail": result.detail,
        "idempotency_key": key,
    }


# -- routes ---------------------------------------------------------------------------------------


@router.get(
    f"{API}/notification-routes",
    operation_id="listNotificationRoutes",
    responses=error_responses(401, 403, 422),
    summary="Notification routes, in order (operator or admin)",
)
async def list_routes(principal: Operator, services: Services) -> dict[str, Any]:
    entries = await _store(services).route_entries()
    return {"items": [_entry_json(e, channel=False) for e in entries]}


async def _save_route(
    request: Request, principal: Principal, services: WebServices, name: str, body: dict[str, Any]
) -> bool:
    if body.get("name", name) != name:
        raise invalid(f"body field 'name': {body.get('name')!r} differs from the path's {name!r}")
    try:
        route = parse_route({**body, "name": name})
    except ConfigError as exc:
        raise invalid(f"body field {exc}") from exc
    try:
        created = await _store(services).put_route(route)
    except ConfigError as exc:
        if "HUB_NOTIFICATIONS_FILE" in str(exc):
            raise _conflict(exc) from exc
        raise invalid(f"body field {exc}") from exc
    action: Action = "notification.route.create" if created else "notification.route.update"
    await _audit(services, request, principal, action, name, {"channels": ",".join(route.channels)})
    return created


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
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise invalid("body field 'name': required")
    if any(e.name == name for e in await _store(services).route_entries()):
        raise ApiError(409, "conflict", f"name: route {name!r} exists; PUT to change it")
    await _save_route(request, principal, services, name, body)
    return {"name": name, "source": "api", "spec": {**body, "name": name}}


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
    if await _save_route(request, principal, services, name, body):
        response.status_code = 201
    return {"name": name, "source": "api", "spec": {**body, "name": name}}


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
    try:
        deleted = await _store(services).delete_route(name)
    except ConfigError as exc:
        raise _conflict(exc) from exc
    if not deleted:
        raise not_found(f"no notification route {name!r}")
    await _audit(services, request, principal, "notification.route.delete", name)
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
    attempts = await _store(services).attempts_for_alert(alert_id)
    return {"alert_id": alert_id, "items": [a.to_json() for a in attempts]}
