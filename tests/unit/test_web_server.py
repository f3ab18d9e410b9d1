"""The web app's start-up gate: until its stores are open, requests get a clear 503."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from fastapi import FastAPI, Request, Response

from hub.web import server


def request(path: str, app: FastAPI) -> Request:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": path,
        "headers": [],
        "app": app,
    }
    return Request(scope)


async def passed_on(req: Request) -> Response:
    return Response("served", status_code=200)


async def test_requests_wait_for_the_stores_except_healthz() -> None:
    app = FastAPI()
    app.state.web = SimpleNamespace(ready=False)  # the app's services, not open yet
    starting = await server._starting_up(request("/api/v1/devices", app), passed_on)
    assert starting.status_code == 503
    assert starting.headers["Retry-After"] == "1"
    assert b"starting" in starting.body
    healthz = await server._starting_up(request("/healthz", app), passed_on)
    assert healthz.status_code == 200
    app.state.web.ready = True
    assert (
        await server._starting_up(request("/api/v1/devices", app), passed_on)
    ).status_code == 200
