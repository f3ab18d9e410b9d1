"""The API's errors: one JSON shape `{"error", "detail"}` for everything that goes wrong,
messages that name the parameter at fault, and the route class that answers in that shape,
counts each request per route template and sets the headers every answer carries."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Final

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException  # what FastAPI raises, and its subclass

from hub.storage.postgres import TRANSIENT_ERRORS
from hub.web.api.models import (
    ErrorBody,
)
from hub.web.container import web_services

# The API's lines keep the logger name they have always had.
log = logging.getLogger("hub.web.api")


class ApiError(Exception):
    def __init__(
        self, status: int, error: str, detail: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = dict(headers or {})


def invalid(detail: str) -> ApiError:
    return ApiError(422, "invalid_request", detail)


def not_found(detail: str) -> ApiError:
    return ApiError(404, "not_found", detail)


def error_response(exc: ApiError) -> JSONResponse:
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


def validation_response(exc: RequestValidationError) -> JSONResponse:
    detail = "; ".join(describe_validation_error(e) for e in exc.errors()) or "invalid request"
    return error_response(invalid(detail))


_HTTP_CODES: Final = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found"}


def from_http_exception(exc: HTTPException) -> ApiError:
    if exc.status_code == 400:  # a body that is not UTF-8 JSON: invalid, like one that is not JSON
        return invalid(f"request body: {exc.detail}")
    code = _HTTP_CODES.get(exc.status_code, "bad_request")
    return ApiError(exc.status_code, code, str(exc.detail), exc.headers)


UNAVAILABLE: Final = ApiError(
    503,
    "unavailable",
    "the database is unreachable or overloaded; try again shortly",
    {"Retry-After": "5"},
)


class ApiRoute(APIRoute):
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
                    response = error_response(exc)
                except RequestValidationError as exc:
                    response = validation_response(exc)
                except HTTPException as exc:  # FastAPI's own, e.g. a body it cannot read
                    response = error_response(from_http_exception(exc))
                except TRANSIENT_ERRORS as exc:  # PostgreSQL away, restarting or overloaded
                    log.warning(
                        "database_unavailable",
                        extra={"route": route, "error": f"{type(exc).__name__}: {exc}"},
                    )
                    response = error_response(UNAVAILABLE)
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


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        401: "No token, or a wrong, revoked or expired one",
        403: "The token's role may not do this",
        404: "No such device, metric of the device, or alert",
        422: "A parameter or the body is invalid; the message names it",
        503: "The database is unreachable or overloaded; retry after the Retry-After seconds",
    }
    return {code: {"model": ErrorBody, "description": descriptions[code]} for code in (*codes, 503)}


def links(**links: tuple[str, dict[str, str]]) -> dict[int | str, dict[str, Any]]:
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
