"""`/healthz` and `/readyz` of a worker, on its Faust web server."""

from __future__ import annotations

import asyncio
from typing import Final

import faust

from hub.agents.retry import is_transient_db_error
from hub.worker.runtime import WorkerRuntime

READY_PING_TIMEOUT_S: Final = 2.0


def register_probes(app: faust.App, runtime: WorkerRuntime) -> None:
    """`/healthz` and `/readyz` on the worker's Faust web server (HUB_WORKER_WEB_PORT), for
    Kubernetes probes: alive while the event loop answers; ready once start-up is done (schema,
    restored alerts), PostgreSQL answers and no timer's last run failed. Kafka is not a check:
    Faust reconnects by itself, and a restart would not bring the broker back."""

    @app.page("/healthz")
    async def healthz(view: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return view.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(view: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        shared = runtime.current
        checks = {
            "started": shared is not None,
            "postgres": False,
            "timers": not runtime.failing_timers,
        }
        if shared is not None:
            try:
                await asyncio.wait_for(shared.db.ping(), READY_PING_TIMEOUT_S)
                checks["postgres"] = True
            except Exception as exc:
                # Unreachable or overloaded: not ready (the agents log the outage themselves).
                if not (isinstance(exc, TimeoutError) or is_transient_db_error(exc)):
                    raise
        ready = all(checks.values())
        body: dict[str, object] = {"status": "ready" if ready else "not ready", "checks": checks}
        if runtime.failing_timers:
            body["failing_timers"] = dict(runtime.failing_timers)
        return view.json(body, status=200 if ready else 503)
