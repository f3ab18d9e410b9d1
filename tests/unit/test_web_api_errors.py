"""The API's route wrapper: a database outage is a 503 in the error shape, not a 500."""

from __future__ import annotations

from types import SimpleNamespace

import asyncpg
import httpx
import pytest
from fastapi import APIRouter, FastAPI

from hub.web.api.errors import ApiRoute
from hub.web.metrics import WebMetrics


def client_raising(exc: BaseException) -> httpx.AsyncClient:
    router = APIRouter(route_class=ApiRoute)

    @router.get("/api/v1/thing")
    async def thing() -> dict[str, str]:
        raise exc

    app = FastAPI()
    app.state.web = SimpleNamespace(metrics=WebMetrics())  # what the route wrapper counts into
    app.include_router(router)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://hub")


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "refused"),
        TimeoutError(),
        asyncpg.CannotConnectNowError("the database system is starting up"),
    ],
)
async def test_an_unreachable_database_is_a_503_with_retry_after(exc: BaseException) -> None:
    async with client_raising(exc) as client:
        response = await client.get("/api/v1/thing")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.json() == {
        "error": "unavailable",
        "detail": "the database is unreachable or overloaded; try again shortly",
    }


async def test_a_bug_is_still_a_500() -> None:
    async with client_raising(KeyError("bug")) as client:
        assert (await client.get("/api/v1/thing")).status_code == 500
