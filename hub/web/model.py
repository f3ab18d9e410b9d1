"""What the web layer reads and shows: the stores' values (`hub.storage.web_model`), and who may
do what with them (the role policy). Pure, no I/O."""

from __future__ import annotations

from hub.storage.web_model import (
    ALERT_STATUSES,
    DEVICE_STATES,
    MAX_PAGE,
    ROLES,
    SEVERITIES,
    AlertFilter,
    AlertRow,
    AlertStatus,
    DeviceFilter,
    DeviceState,
    DeviceView,
    GatewayView,
    LiveReading,
    Page,
    Principal,
    Role,
    Series,
    Severity,
    check_role,
)

__all__ = [
    "ALERT_STATUSES",
    "DEVICE_STATES",
    "MAX_PAGE",
    "ROLES",
    "SEVERITIES",
    "AlertFilter",
    "AlertRow",
    "AlertStatus",
    "DeviceFilter",
    "DeviceState",
    "DeviceView",
    "GatewayView",
    "LiveReading",
    "Page",
    "Principal",
    "Role",
    "Series",
    "Severity",
    "can_acknowledge",
    "can_administer",
    "check_role",
    "has_role",
    "role_rank",
]


def role_rank(role: Role) -> int:
    return ROLES.index(role)


def has_role(role: Role, at_least: Role) -> bool:
    return role_rank(role) >= role_rank(at_least)


def can_acknowledge(role: Role) -> bool:
    """Acknowledge and clear alerts: operator and admin."""
    return has_role(role, "operator")


def can_administer(role: Role) -> bool:
    return role == "admin"
