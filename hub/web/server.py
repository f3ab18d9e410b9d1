"""The web process: one NiceGUI app (FastAPI underneath) serving the pages and the API.

`build` wires it up once per process; the stores open at startup (`open_context`, usable by
tests as well) and close at shutdown. `run` hands the process to uvicorn, which stops cleanly
on SIGTERM and Ctrl-C and runs the shutdown handlers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from nicegui import app, ui

from hub.settings import HubSettings
from hub.storage.accounts import PostgresAccounts
from hub.storage.audit_log import PostgresAuditLog
from hub.storage.migrations import missing_tables
from hub.storage.postgres import Database
from hub.storage.read_model import (
    PostgresReadModel,
    RedisAlertEvents,
    connect_pool,
    redis_client,
)
from hub.storage.throttle_store import RedisThrottleStore
from hub.web.context import WebContext, clear_context, has_context, set_context
from hub.web.fanout import LiveFanout
from hub.web.headers import SecurityHeadersMiddleware
from hub.web.metrics import METRICS
from hub.web.services import AlertService, AuthService, build_throttle

__all__ = ["SchemaMissingError", "build", "check_schema", "open_context", "run"]

log = logging.getLogger(__name__)

TITLE: Final = "IoT Hub"
FAVICON: Final = "📈"
_built = False
_stack: contextlib.AsyncExitStack | None = None


WEB_TABLES: Final = ("users", "api_tokens", "devices", "alerts", "web_sessions", "audit_log")


class SchemaMissingError(RuntimeError):
    """The database has not been migrated for the web app (`iot-hub migrate`)."""


async def check_schema(dsn: str) -> None:
    """SchemaMissingError unless the web tables exist; the connection errors of asyncpg
    otherwise (unreachable, refused, bad credentials)."""
    missing = await missing_tables(dsn, WEB_TABLES)
    if missing:
        raise SchemaMissingError(
            f"database has no table {', '.join(missing)}: run `iot-hub migrate` first"
        )


@contextlib.asynccontextmanager
async def open_context(settings: HubSettings) -> AsyncIterator[WebContext]:
    """Open the pool, the Redis clients and the fan-out, set the process's context, and undo
    all of it on exit."""
    async with contextlib.AsyncExitStack() as stack:
        pool = await connect_pool(settings.database_url)
        stack.push_async_callback(pool.close)
        redis = redis_client(settings.redis_url)
        stack.push_async_callback(redis.aclose)
        fanout = LiveFanout.from_url(settings.redis_url, queue_size=settings.web_client_queue)
        stack.push_async_callback(fanout.stop)
        await fanout.start()
        audit = PostgresAuditLog(pool)
        throttle = build_throttle(settings, RedisThrottleStore(redis))
        context = WebContext(
            settings=settings,
            reads=PostgresReadModel(
                pool, redis, gateway_offline_after_s=settings.gateway_offline_after_s
            ),
            alerts=AlertService(Database(pool), RedisAlertEvents(redis), audit),
            auth=AuthService(
                PostgresAccounts(pool), throttle, audit, settings.web_session_hours, METRICS
            ),
            audit=audit,
            fanout=fanout,
            started_at=int(time.time() * 1000),
        )
        set_context(context)
        stack.callback(clear_context)
        yield context


async def _startup(settings: HubSettings) -> None:
    global _stack
    stack = contextlib.AsyncExitStack()
    await stack.enter_async_context(open_context(settings))
    _stack = stack
    log.info("web_started", extra={"host": settings.web_host, "port": settings.http_port})


async def _shutdown() -> None:
    global _stack
    stack, _stack = _stack, None
    if stack is not None:
        await stack.aclose()
    log.info("web_stopped")


# Served while the context is being opened: NiceGUI runs startup handlers as tasks, so uvicorn
# accepts requests before the pool and Redis are ready. /healthz only says the process is up.
_ALWAYS_SERVED: Final = frozenset({"/healthz"})


async def _starting_up(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    if has_context() or request.url.path in _ALWAYS_SERVED:
        return await call_next(request)
    return JSONResponse(
        {"error": "starting", "detail": "the web app is starting; try again in a moment"},
        status_code=503,
        headers={"Retry-After": "1"},
    )


def build(settings: HubSettings) -> None:
    """Register the startup and shutdown handlers, the API routes and the pages (once)."""
    global _built
    if _built:
        return
    from hub.web import api
    from hub.web.pages import register_pages

    async def startup() -> None:
        await _startup(settings)

    app.on_startup(startup)
    app.on_shutdown(_shutdown)
    app.middleware("http")(_starting_up)
    # Added last, so outermost: the headers go on every answer, the 503s above included.
    app.add_middleware(SecurityHeadersMiddleware)
    app.include_router(api.router)
    register_pages()
    _built = True


def _after_shutdown(signum: int, frame: object) -> None:
    log.info("web_exit", extra={"signal": signal.Signals(signum).name})


def run(settings: HubSettings) -> None:
    """Serve until SIGTERM or Ctrl-C. The storage secret must be set (the CLI checks first)."""
    if settings.web_storage_secret is None:
        raise ValueError("HUB_WEB_STORAGE_SECRET is not set")
    build(settings)
    # NiceGUI switches to its test harness when it sees this variable; a server a test starts
    # as a subprocess inherits it, yet must run as the real thing.
    os.environ.pop("PYTEST_CURRENT_TEST", None)
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal to whatever
    # handler was there before it; with the default one the process would die of the signal
    # (exit -15) or a KeyboardInterrupt traceback. Shutdown is complete by then: exit 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _after_shutdown)
    ui.run(
        host=settings.web_host,
        port=settings.http_port,
        storage_secret=settings.web_storage_secret.get_secret_value(),
        # Session cookie lifetime; the login page may also expire sessions on its own.
        session_middleware_kwargs={"max_age": int(settings.web_session_hours * 3600)},
        title=TITLE,
        dark=None,  # follow the browser
        favicon=FAVICON,
        reload=False,
        show=False,
        fastapi_docs=True,  # /docs, /redoc, /openapi.json
        show_welcome_message=False,
        uvicorn_logging_level="warning",
    )
