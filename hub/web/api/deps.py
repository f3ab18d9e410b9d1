"""What the routes depend on: the bearer token's principal (and the role a route needs), the
app's services, the client's address, and the checked query parameters shared by the list
routes."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Annotated, Any, Final

from fastapi import Depends, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hub.storage.partitions import ms_to_datetime
from hub.web.api.errors import ApiError, invalid
from hub.web.api.models import (
    NO_NUL,
)
from hub.web.container import WebServices, web_services
from hub.web.model import (
    MAX_PAGE,
    Page,
    Principal,
    can_acknowledge,
    can_administer,
)

log = logging.getLogger("hub.web.api")

API: Final = "/api/v1"
MAX_OFFSET: Final = 2**31 - 1
MAX_ALERT_ID: Final = 2**63 - 1  # bigserial
MAX_TS: Final = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last ms a datetime holds
HOUR_MS: Final = 3_600_000
MAX_TEXT: Final = 256  # query strings: device ids, sites, types, search

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


def checked_text(name: str, value: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL, so no stored value contains it: say so, rather than fail
    in the driver."""
    if value is not None and "\x00" in value:
        raise invalid(f"query parameter {name!r} must not contain NUL characters")
    return value


TextQuery = Query(max_length=MAX_TEXT, json_schema_extra=NO_NUL)
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"page size, 1..{MAX_PAGE}")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="items to skip")]


async def page_json(
    request: Request, response: Response, fetch: Awaitable[Page[Any]]
) -> dict[str, Any]:
    """A list endpoint's answer: the page, with a `Link: <...>; rel="next"` header while more
    pages follow; a filter the data layer refuses is 422."""
    try:
        page = await fetch
    except ValueError as exc:
        raise invalid(str(exc)) from exc
    if page.offset + page.limit < page.total:
        url = request.url.include_query_params(offset=page.offset + page.limit, limit=page.limit)
        response.headers["Link"] = f'<{url.path}?{url.query}>; rel="next"'
    return page.to_json()
