"""The web process: one NiceGUI app (FastAPI underneath) serving the pages and the API.

`build` is the app factory: it builds the app's services (`hub.web.container.WebServices`, on
PostgreSQL and Redis unless given others, e.g. the in-memory stores of the page tests), keeps
them in the app's state for the API's `Depends`, hands them to the pages, and opens and closes
their stores at the app's startup and shutdown. `run` hands the process to uvicorn, which stops
cleanly on SIGTERM and Ctrl-C and runs the shutdown handlers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from nicegui import app, ui

from hub.alarms.memory import MemoryAlarmStore
from hub.alarms.ports import AlarmStore
from hub.alarms.postgres import PostgresAlarmStore
from hub.alarms.service import AlarmService
from hub.rules.edits import load_seed
from hub.settings import HubSettings
from hub.storage.accounts import PostgresAccounts
from hub.storage.audit_log import PostgresAuditLog
from hub.storage.memory_rule_versions import MemoryRuleVersions
from hub.storage.memory_web import MemoryAccounts, MemoryAuditLog, MemoryHub
from hub.storage.metadata_store import PostgresMetadataStore
from hub.storage.migrations import missing_tables
from hub.storage.notify_memory import MemoryNotifyStore
from hub.storage.notify_postgres import PostgresNotifyStore
from hub.storage.postgres import Database
from hub.storage.read_model import PoolHandle, PostgresReadModel, RedisAlertEvents, redis_client
from hub.storage.rule_versions import PostgresRuleVersions, RuleVersions
from hub.storage.throttle_store import MemoryThrottleStore, RedisThrottleStore
from hub.storage.web_ports import (
    Accounts,
    AlertEvents,
    AlertWrites,
    AuditTrail,
    ReadModel,
    ThrottleStore,
)
from hub.web.container import WebServices, web_services
from hub.web.fanout import LiveFanout
from hub.web.headers import SecurityHeadersMiddleware
from hub.web.metrics import WebMetrics
from hub.web.rules_service import RulesService
from hub.web.services import AlertService, AuthService, build_throttle

__all__ = [
    "SchemaMissingError",
    "Stores",
    "assemble",
    "build",
    "check_schema",
    "memory_services",
    "postgres_services",
    "run",
]

log = logging.getLogger(__name__)

TITLE: Final = "IoT Hub"
FAVICON: Final = "📈"
WEB_TABLES: Final = (
    "users",
    "api_tokens",
    "devices",
    "alerts",
    "web_sessions",
    "audit_log",
    "rule_versions",
)


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


@dataclass(frozen=True, slots=True)
class Stores:
    """One adapter for each port the services need."""

    reads: ReadModel
    alerts: AlertWrites
    events: AlertEvents
    accounts: Accounts
    audit: AuditTrail
    throttle: ThrottleStore
    alarms: AlarmStore
    rule_versions: RuleVersions


def assemble(
    settings: HubSettings,
    stores: Stores,
    fanout: LiveFanout,
    opener: Callable[[contextlib.AsyncExitStack], Awaitable[None]],
) -> WebServices:
    """The app's services over ``stores``; ``opener`` opens what they need at startup."""
    metrics = WebMetrics()
    alerts = AlertService(stores.alerts, stores.events, stores.audit)
    return WebServices(
        settings=settings,
        reads=stores.reads,
        alerts=alerts,
        auth=AuthService(
            stores.accounts,
            build_throttle(settings, stores.throttle),
            stores.audit,
            settings.web_session_hours,
            metrics,
        ),
        audit=stores.audit,
        fanout=fanout,
        metrics=metrics,
        alarms=AlarmService(
            stores.alarms,
            reads=stores.reads,
            alerts=alerts,
            events=stores.events,
            audit=stores.audit,
            shelve_max_hours=settings.shelve_max_hours,
        ),
        # The same seed the workers build on: the same HUB_RULES_FILE must reach both.
        rules=RulesService(stores.rule_versions, load_seed(settings.rules_file), stores.audit),
        opener=opener,
    )


def postgres_services(settings: HubSettings) -> WebServices:
    """The services on PostgreSQL and Redis; their pool, clients and live subscription open at
    startup."""
    pool = PoolHandle(settings.database_url)
    redis = redis_client(settings.redis_url)
    fanout = LiveFanout.from_url(settings.redis_url, queue_size=settings.web_client_queue)

    async def opener(stack: contextlib.AsyncExitStack) -> None:
        await pool.open()
        stack.push_async_callback(pool.close)
        stack.push_async_callback(redis.aclose)
        stack.push_async_callback(fanout.stop)
        await fanout.start()

    stores = Stores(
        reads=PostgresReadModel(
            pool, redis, gateway_offline_after_s=settings.gateway_offline_after_s
        ),
        alerts=Database(pool),
        events=RedisAlertEvents(redis),
        accounts=PostgresAccounts(pool),
        audit=PostgresAuditLog(pool),
        throttle=RedisThrottleStore(redis),
        alarms=PostgresAlarmStore(pool),
        rule_versions=PostgresRuleVersions(pool),
    )
    web = assemble(settings, stores, fanout, opener)
    web.notify_store = PostgresNotifyStore(pool)
    web.metadata_store = PostgresMetadataStore(pool)
    return web


def memory_services(
    settings: HubSettings,
    hub: MemoryHub,
    accounts: MemoryAccounts,
    audit: MemoryAuditLog,
    rule_versions: RuleVersions | None = None,
) -> WebServices:
    """The services on the in-memory stores (`hub.storage.memory_web`): what ``hub`` publishes
    reaches the live pages and clients once the app has started."""
    fanout = LiveFanout(None, queue_size=settings.web_client_queue)

    async def opener(stack: contextlib.AsyncExitStack) -> None:
        stack.callback(hub.subscribe(fanout.feed))
        stack.push_async_callback(fanout.stop)
        await fanout.start()

    stores = Stores(
        reads=hub,
        alerts=hub,
        events=hub,
        accounts=accounts,
        audit=audit,
        throttle=MemoryThrottleStore(),
        alarms=MemoryAlarmStore(hub.database),
        rule_versions=rule_versions or MemoryRuleVersions(),
    )
    web = assemble(settings, stores, fanout, opener)
    web.notify_store = MemoryNotifyStore(hub.database)
    return web


# Served while the stores are being opened: NiceGUI runs startup handlers as tasks, so uvicorn
# accepts requests before the pool and Redis are ready. /healthz only says the process is up.
_ALWAYS_SERVED: Final = frozenset({"/healthz"})


async def _starting_up(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    if web_services(request).ready or request.url.path in _ALWAYS_SERVED:
        return await call_next(request)
    return JSONResponse(
        {"error": "starting", "detail": "the web app is starting; try again in a moment"},
        status_code=503,
        headers={"Retry-After": "1"},
    )


def build(settings: HubSettings, services: WebServices | None = None) -> WebServices:
    """The app factory: the services (``services``, or those of `postgres_services`), the
    startup and shutdown handlers, the API routes and the pages, on NiceGUI's app."""
    from hub.web import api
    from hub.web.pages import register_pages

    web = postgres_services(settings) if services is None else services
    app.state.web = web

    async def startup() -> None:
        await web.open()
        log.info("web_started", extra={"host": settings.web_host, "port": settings.http_port})

    async def shutdown() -> None:
        await web.close()
        log.info("web_stopped")

    app.on_startup(startup)
    app.on_shutdown(shutdown)
    app.middleware("http")(_starting_up)
    # Added last, so outermost: the headers go on every answer, the 503s above included.
    app.add_middleware(SecurityHeadersMiddleware)
    app.include_router(api.router)
    register_pages(web)
    return web


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
