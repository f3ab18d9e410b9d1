"""The web process's shared services, set once at startup by `hub.web.server`; pages and API
handlers fetch them at request time with `get_context()`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hub.settings import HubSettings

if TYPE_CHECKING:  # keeps this module importable without pulling in the I/O adapters
    from hub.storage.web_ports import AuditTrail, ReadModel
    from hub.web.fanout import LiveFanout
    from hub.web.services import AlertService, AuthService

__all__ = ["WebContext", "clear_context", "get_context", "has_context", "set_context"]


@dataclass(frozen=True, slots=True)
class WebContext:
    settings: HubSettings
    reads: ReadModel
    alerts: AlertService
    auth: AuthService
    audit: AuditTrail
    fanout: LiveFanout
    started_at: int  # epoch ms


_current: WebContext | None = None


def get_context() -> WebContext:
    """The running process's context; RuntimeError before startup (or after shutdown)."""
    if _current is None:
        raise RuntimeError("the web context is not set: hub.web.server has not started yet")
    return _current


def has_context() -> bool:
    return _current is not None


def set_context(context: WebContext) -> None:
    global _current
    _current = context


def clear_context() -> None:
    global _current
    _current = None
