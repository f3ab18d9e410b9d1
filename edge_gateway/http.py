"""Status endpoints on EDGE_HTTP_PORT: /healthz, /readyz, /metrics, /api/v1/status."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from edge_gateway.stats import GatewayStatus, prometheus_text


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    checks: dict[str, bool]


def build_app(
    status: Callable[[], GatewayStatus], readiness: Callable[[], Readiness]
) -> web.Application:
    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        # Kafka is not a check: without it the gateway is buffering, which is its job.
        result = readiness()
        body = {"status": "ready" if result.ready else "not ready", "checks": result.checks}
        return web.json_response(body, status=200 if result.ready else 503)

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(
            text=prometheus_text(status()),
            content_type="text/plain",
            charset="utf-8",
            headers={"X-Content-Type-Options": "nosniff"},
        )

    async def api_status(request: web.Request) -> web.Response:
        return web.json_response(status().to_json())

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/v1/status", api_status)
    return app


class StatusServer:
    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self._runner = web.AppRunner(app, access_log=None)
        self._host = host
        self._port = port
        self.port: int | None = None

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        # The bound port, which differs from the asked one when that was 0.
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        await self._runner.cleanup()
