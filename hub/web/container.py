"""The app-scoped container: the services one web app is given, built once by the app factory
(`hub.web.server.build`) and handed to the API routes (FastAPI `Depends(web_services)`, from the
app's state) and to the pages (as arguments, from `hub.web.pages.register_pages`). No module
holds one: two apps, as tests build them, never share a store or a counter."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection

from hub.notify.store import NotifyStore
from hub.settings import HubSettings
from hub.storage.memory_metadata import MemoryMetadataStore
from hub.storage.metadata_store import MetadataStore
from hub.storage.web_ports import AuditTrail, ReadModel
from hub.web.metrics import WebMetrics

if TYPE_CHECKING:  # the services import the agents' event encoding; not needed to name them
    from hub.alarms.service import AlarmService
    from hub.web.fanout import LiveFanout
    from hub.web.metadata_service import MetadataService
    from hub.web.notify_service import NotificationService
    from hub.web.rules_service import RulesService
    from hub.web.services import AlertService, AuthService

__all__ = ["WebServices", "web_services"]


@dataclass(eq=False)
class WebServices:
    settings: HubSettings
    reads: ReadModel
    alerts: AlertService
    auth: AuthService
    audit: AuditTrail
    fanout: LiveFanout
    metrics: WebMetrics
    alarms: AlarmService  # shelving, bulk actions, maintenance windows (hub.alarms)
    rules: RulesService
    # Opens what the stores need (pools, connections, the live subscription) and pushes their
    # closing onto the stack; run at the app's startup.
    opener: Callable[[contextlib.AsyncExitStack], Awaitable[None]]
    # Notification channels, routes and attempts (hub.notify); None: not on this storage.
    notify_store: NotifyStore | None = None
    # Device metadata edits and edge reports (hub.metadata); PostgreSQL in production.
    metadata_store: MetadataStore = field(default_factory=MemoryMetadataStore)
    started_at: int = field(default_factory=lambda: int(time.time() * 1000))
    ready: bool = False
    _stack: contextlib.AsyncExitStack | None = None

    @property
    def notifications(self) -> NotificationService:
        from hub.web.notify_service import NotificationService

        return NotificationService(self.notify_store, self.audit, self.settings.public_url)

    @property
    def metadata(self) -> MetadataService:
        from hub.web.metadata_service import MetadataService

        return MetadataService(self.metadata_store, self.audit)

    async def open(self) -> None:
        stack = contextlib.AsyncExitStack()
        await self.opener(stack)
        self._stack = stack
        self.ready = True

    async def close(self) -> None:
        self.ready = False
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()


def web_services(connection: HTTPConnection) -> WebServices:
    """The app's container, for `Depends` (HTTP requests and WebSockets alike)."""
    services: WebServices = connection.app.state.web
    return services
