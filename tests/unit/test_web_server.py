"""The web app's start-up gate: until the context is open, requests get a clear 503."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

from hub.web import server
from hub.web.context import clear_context, has_context


def request(path: str) -> Request:
    scope: dict[str, Any] = {"type": "http", "method": "GET", "path": path, "headers": []}
    return Request(scope)


async def passed_on(req: Request) -> Response:
    return Response("served", status_code=200)


async def test_requests_wait_for_the_context_except_healthz() -> None:
    clear_context()
    assert not has_context()
    starting = await server._starting_up(request("/api/v1/devices"), passed_on)
    assert starting.status_code == 503
    assert starting.headers["Retry-After"] == "1"
    assert b"starting" in starting.body
    healthz = await server._starting_up(request("/healthz"), passed_on)
    assert healthz.status_code == 200
